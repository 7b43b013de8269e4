"""The library's face: ``import gwexchange`` gives the pinned names, each loaded when first used, typed
(``py.typed``), versioned; and README's library example runs as written."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import gwexchange

REPO = Path(__file__).resolve().parent.parent

PUBLIC = [
    "Classification",
    "ConfigError",
    "DecryptionError",
    "Document",
    "DocumentError",
    "EnvelopeError",
    "GwxError",
    "InputError",
    "NodeConfig",
    "OpenedEnvelope",
    "Receipt",
    "ReceiptKind",
    "Sealed",
    "SignatureError",
    "Signer",
    "TransientError",
    "TrustError",
    "TrustPolicy",
    "VerificationError",
    "VerifiedDocument",
    "__version__",
    "answer_document",
    "document_to_xml",
    "inspect",
    "key_from_pem",
    "load_certificate",
    "load_context",
    "load_description_file",
    "load_keypair",
    "make_receipt",
    "open_envelope",
    "seal",
    "send_document",
    "sign_document",
    "sign_receipt",
    "verify_document",
    "verify_receipt",
]


def test_the_public_names_are_pinned() -> None:
    """A name added or dropped is a change of the library's face: made here on purpose, or not at all."""
    assert gwexchange.__all__ == PUBLIC
    assert set(PUBLIC) <= set(dir(gwexchange))


def test_each_name_is_the_object_of_its_part() -> None:
    for name in PUBLIC:
        if name == "__version__":
            continue
        value = getattr(gwexchange, name)
        home = importlib.import_module(value.__module__)
        assert getattr(home, name) is value, name
        assert value.__module__.startswith("gwexchange."), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        gwexchange.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("an unknown name resolved")


def test_importing_the_package_loads_no_part() -> None:
    """``gwx`` and a library user pay for what they use: the package alone imports none of its parts' libraries."""
    code = (
        "import sys, gwexchange\n"
        "heavy = [m for m in ('lxml', 'cryptography', 'sqlalchemy', 'reportlab', 'gwexchange.envelope.sealing')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_version_and_typing() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert gwexchange.__version__ == project["version"]
    assert (Path(gwexchange.__file__).parent / "py.typed").is_file()


def test_the_readme_library_example_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## As a library") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    out = subprocess.run(
        [sys.executable, "-c", block.group(1)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "广东省财政厅关于申请政务外网安全改造专项资金的请示 → gd.gov.office", out.stdout


def test_every_module_says_what_it_exports() -> None:
    """Each module's ``__all__`` names what other parts may use, and every name in it exists."""
    import pkgutil

    missing, dangling = [], []
    for info in pkgutil.walk_packages(gwexchange.__path__, "gwexchange."):
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        if names is None:
            if not info.ispkg:
                missing.append(info.name)
            continue
        dangling += [f"{info.name}.{name}" for name in names if not hasattr(module, name)]
    assert missing == [] and dangling == []
