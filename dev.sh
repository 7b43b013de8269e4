#!/usr/bin/env bash
# The jobs of README.md, from a machine that has only python3:
#   ./dev.sh demo            set up (.venv, from uv.lock), then run `gwx demo`: six nodes, four documents to 签收
#   ./dev.sh test            set up (Debian's reference tools and fonts included), then lint, type-check, run every test
#   ./dev.sh test --latest   the same in .venv-latest with the newest versions pyproject.toml allows (not CI)
#   ./dev.sh mutate [GLOB]   mutation testing of the security-critical modules with the fast tests (on demand, slow)
#   ./dev.sh lock [--upgrade] bring uv.lock in line with pyproject.toml (--upgrade: every pin to its newest allowed
#                            version), and uv itself with tools/uv-requirements.in
#
# Everything installed comes from a lock with hashes: uv itself from tools/uv-requirements.txt (pip, --require-hashes),
# every other package, the build backend included, from uv.lock (uv checks each hash). `--locked` refuses a lock that
# no longer matches pyproject.toml, so a dependency changed without its lock fails here and in CI.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${GWX_VENV:-.venv}"
UV_VENV=".uv"
export UV_PYTHON_DOWNLOADS=never  # the machine's python3, never one uv would download
export UV_PROJECT_ENVIRONMENT="$VENV"

setup_uv() {
  local stamp="$UV_VENV/.gwx-installed"
  if [ ! -x "$UV_VENV/bin/uv" ] || [ tools/uv-requirements.txt -nt "$stamp" ]; then
    echo "== installing uv (tools/uv-requirements.txt, hash-checked) into $UV_VENV"
    [ -x "$UV_VENV/bin/python" ] || python3 -m venv "$UV_VENV"
    "$UV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
      -r tools/uv-requirements.txt
    touch "$stamp"
  fi
  UV="$UV_VENV/bin/uv"
}

# Debian packages: xmlsec1 and libxml2-utils (xmllint) are the reference tools of the interop tests; the fonts stand
# in for GB/T 9704's faces in every PDF; poppler-utils (pdfsig, pdftotext) and qpdf check the PDFs independently.
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

run_checks() {  # run_checks VENV [pytest arguments]: the same checks for the locked and the latest environment
  local venv="$1"
  shift
  echo "== ruff"
  "$venv/bin/ruff" check gwexchange tests bench campaign
  echo "== mypy --strict gwexchange campaign"
  "$venv/bin/mypy" gwexchange campaign
  echo "== lint-imports (the layering of the parts)"
  "$venv/bin/lint-imports"
  echo "== pytest"
  exec "$venv/bin/pytest" -q "$@"
}

case "${1:-}" in
  demo)
    # Python only: the network demo renders no PDF, so it needs none of the Debian packages. --inexact keeps the
    # test tools of an earlier ./dev.sh test; --no-dev leaves them out of a first install.
    setup_uv
    "$UV" sync --quiet --locked --no-dev --inexact
    exec "$VENV/bin/gwx" demo "${@:2}"
    ;;
  test)
    setup_system_tools
    setup_uv
    if [ "${2:-}" = "--latest" ]; then
      # What a fresh `pip install gwexchange` would get today: every dependency at its newest allowed version,
      # into an environment of its own, so a coming break shows before it reaches the lock.
      latest=".venv-latest"
      echo "== installing the newest allowed versions into $latest (uv.lock is not read)"
      "$UV" venv --quiet --allow-existing --python python3 "$latest"
      "$UV" pip install --quiet --python "$latest" --upgrade --refresh --group build --group dev -r pyproject.toml
      "$UV" pip install --quiet --python "$latest" --no-deps --editable .  # built by the hatchling just installed
      "$UV" sync --quiet --locked
      echo "== newer than uv.lock ('<' locked, '>' latest):"
      diff <("$UV" pip list --python "$VENV" --format freeze | grep -v '^gwexchange') \
           <("$UV" pip list --python "$latest" --format freeze | grep -v '^gwexchange') || true
      run_checks "$latest" "${@:3}"
    else
      "$UV" sync --quiet --locked
      run_checks "$VENV" "${@:2}"
    fi
    ;;
  mutate)
    # Mutation testing, on demand (not CI): mutmut mutates the modules [tool.mutmut] names in pyproject.toml and runs,
    # for each mutant, the fast tests that reach it; then it lists what survived. Arguments: mutant name globs.
    setup_system_tools
    setup_uv
    "$UV" sync --quiet --locked --group mutation
    "$VENV/bin/mutmut" run --max-children "$(nproc)" "${@:2}"
    "$VENV/bin/mutmut" results
    ;;
  lock)
    setup_uv
    "$UV" pip compile --quiet --universal --generate-hashes tools/uv-requirements.in -o tools/uv-requirements.txt
    # Plain: uv.lock follows a changed pyproject.toml, moving no other pin. --upgrade: every pin to its newest.
    "$UV" lock "${@:2}"
    echo "== uv.lock and tools/uv-requirements.txt refreshed: run ./dev.sh test, then commit them with the change"
    ;;
  *)
    echo "usage: ./dev.sh demo [--dir DIR] [--timeout SECONDS] | ./dev.sh test [--latest] [pytest arguments]" \
         "| ./dev.sh mutate [mutant name globs] | ./dev.sh lock [--upgrade]" >&2
    exit 2
    ;;
esac
