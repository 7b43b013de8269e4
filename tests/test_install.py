"""gwexchange installed as a user installs it: from the wheel, outside the checkout.

The wheel and the sdist are built by the hatchling of the lock; the wheel goes into a fresh virtual environment in a
temporary folder, its dependencies at the lock's versions with their hashes checked (what README's "Installed from
the wheel" says); then ``gwx --help``, ``gwx demo`` and ``gwx render`` run from a folder that is not the checkout, so
nothing is found through it: a schema or an example missing from the wheel fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LIMIT = 300  # seconds for any one step: only so that a hang fails instead of blocking


def _uv() -> str:
    """The uv that ./dev.sh installed from tools/uv-requirements.txt (or one on PATH)."""
    beside = REPO / ".uv" / "bin" / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    assert found, "uv is not installed: ./dev.sh test installs it into .uv/"
    return found


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: no virtual environment of ours, no variable of gwexchange's."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GWX_")}


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True, check=False, timeout=LIMIT
    )
    assert done.returncode == 0, f"{command[:3]} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the fresh environment's bin folder, the built dist folder)."""
    work = tmp_path_factory.mktemp("install")
    dist = work / "dist"
    hatchling = Path(sys.executable).with_name("hatchling")
    _run([str(hatchling), "build", "-t", "wheel", "-t", "sdist", "-d", str(dist)], cwd=REPO)
    requirements = work / "requirements.txt"
    _run([_uv(), "export", "--quiet", "--locked", "--no-dev", "--no-emit-project", "-o", str(requirements)], cwd=REPO)
    venv = work / "venv"
    _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=work)
    python = str(venv / "bin" / "python")
    install = [_uv(), "pip", "install", "--quiet", "--python", python]
    _run([*install, "--require-hashes", "-r", str(requirements)], cwd=work)
    (wheel,) = dist.glob("gwexchange-*.whl")
    _run([*install, "--no-deps", str(wheel)], cwd=work)
    return venv / "bin", dist


def test_the_wheel_and_sdist_carry_what_an_installed_gwx_reads(installed: tuple[Path, Path]) -> None:
    _, dist = installed
    (wheel,) = dist.glob("gwexchange-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    for name in ("gongwen.xsd", "envelope.xsd", "receipt.xsd", "directory.xsd"):
        assert f"gwexchange/schemas/{name}" in names
    assert "gwexchange/py.typed" in names  # type checkers read the package's annotations
    for name in ("network.toml", "notice.toml", "request.toml", "letter.toml", "joint-notice.toml"):
        assert f"gwexchange/examples/{name}" in names
    assert not any(n.startswith(("tests/", "campaign/", "bench/")) for n in names)
    (sdist,) = dist.glob("gwexchange-*.tar.gz")
    with tarfile.open(sdist) as t:
        members = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name}
    assert {
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "gwexchange/schemas/gongwen.xsd",
        "gwexchange/cli/app.py",
    } <= members


def test_installed_gwx_runs_outside_the_checkout(installed: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, _ = installed
    gwx = str(bin_dir / "gwx")
    where = _run([str(bin_dir / "python"), "-c", "import gwexchange; print(gwexchange.__file__)"], cwd=tmp_path)
    assert str(bin_dir.parent) in where.stdout and str(REPO) not in where.stdout

    done = _run([gwx, "--help"], cwd=tmp_path)
    assert "公文交换" in done.stdout and done.stderr == ""

    done = _run([gwx, "demo", "--dir", str(tmp_path / "demo")], cwd=tmp_path)
    assert "签收" in done.stdout

    # One document rendered: the examples inside the installed package, a PKI made by the installed gwx.
    site = tmp_path / "site"
    examples = next((bin_dir.parent / "lib").glob("python3*/site-packages/gwexchange/examples"))
    shutil.copytree(examples, site)
    env = _clean_env() | {"GWX_CA_PASSPHRASE": "install-test-ca", "GWX_KEY_PASSPHRASE": "install-test-key"}
    key = ["--key", "ca/issued/gd.gov.office/signing.key", "--cert", "ca/issued/gd.gov.office/signing.crt"]
    home = ["--home", "ca"]
    for step in (
        ["pki", "init", "--name", "广东省电子政务安全中心", "--code", "gd.gov.ca", *home],
        ["pki", "issue", "--code", "gd.gov.office", "--name", "广东省人民政府办公厅", "--role", "department", *home],
        ["doc", "new", "notice.toml", "-o", "notice.xml"],
        ["doc", "sign", "notice.xml", *key],
    ):
        _run([gwx, *step], cwd=site, env=env)
    trust = ["--root", "ca/root.crt", "--crl", "ca/crl.pem"]
    done = _run([gwx, "render", "notice.signed.xml", "-o", "notice.pdf", *key, *trust], cwd=site, env=env)
    assert "已生成：notice.pdf" in done.stdout and done.stderr == ""
    done = _run([gwx, "verify", "notice.pdf", *trust], cwd=site, env=env)
    assert done.stdout.startswith("验证通过")
