#!/usr/bin/env bash
# The two jobs of README.md, from a machine that has only python3:
#   ./dev.sh demo   set up (.venv), then run `gwx demo`: six nodes on this machine, four documents to 签收
#   ./dev.sh test   set up (Debian's xmlsec1 and xmllint included), then lint, type-check and run every test
set -euo pipefail
cd "$(dirname "$0")"
VENV="${GWX_VENV:-.venv}"

setup_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
  fi
  # Reinstall only when the dependency list changed since the last setup.
  local stamp="$VENV/.gwx-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "== installing gwexchange and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    touch "$stamp"
  fi
}

# Debian packages: xmlsec1 and libxml2-utils (xmllint) are the reference tools the interop tests run.
APT_PACKAGES="xmlsec1 libxml2-utils fonts-arphic-uming fonts-arphic-ukai fonts-wqy-zenhei poppler-utils qpdf"

setup_system_tools() {
  local missing=""
  for pkg in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
  [ -n "$missing" ] || return 0
  echo "== installing Debian packages:$missing"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

case "${1:-}" in
  demo)
    # Python only: the network demo renders no PDF, so it needs none of the Debian packages.
    setup_python
    exec "$VENV/bin/gwx" demo "${@:2}"
    ;;
  test)
    setup_system_tools
    setup_python
    echo "== ruff"
    "$VENV/bin/ruff" check gwexchange tests bench
    echo "== mypy --strict gwexchange"
    "$VENV/bin/mypy" gwexchange
    echo "== pytest"
    exec "$VENV/bin/pytest" -q "${@:2}"
    ;;
  *)
    echo "usage: ./dev.sh demo [--dir DIR] [--timeout SECONDS] | ./dev.sh test [pytest arguments]" >&2
    exit 2
    ;;
esac
