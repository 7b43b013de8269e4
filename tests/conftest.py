"""Shared fixtures of the gwexchange test suite.

* ``NOW`` — the fixed clock of the tests (timezone-aware UTC). Nothing here reads the real clock.
* A throw-away PKI made with ``Authority`` in a temporary folder: a root, signing and encryption certificates for
  the departments of the examples (EC P-256), one RSA-2048 department and one node. ``pki`` is shared by the
  whole session and must not be changed (no revocation, no re-issue); tests that revoke or issue odd
  certificates make their own with ``make_pki``.
* The four example documents of ``examples/``, loaded with ``files.load_description_file``, and
  ``make_document``, a builder of a small valid ``Document`` with any element overridden.

Test modules get everything through fixtures and do not import this file: with several conftest.py files in
folders without ``__init__.py``, the module named ``conftest`` is not always this one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from gwexchange.crypto.certificates import Role, Usage
from gwexchange.crypto.keys import KeyAlgorithm, Protection, UnsafeUnencrypted, key_from_pem
from gwexchange.crypto.suite import PrivateKey
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.description import load_description_file
from gwexchange.envelope.model import Classification, Department, DocKind, DocNumber, Document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.pki.authority import CERT_LIFETIME, Authority, IssuedFiles

# --- fixed facts ---------------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
"""The tests' clock: every signature, verification and certificate is dated relative to it."""

PKI_START = NOW - timedelta(days=10)
"""When the session PKI's root and certificates become valid; its first CRL is good for 30 days from then."""

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SCHEMA = REPO / "gwexchange" / "schemas" / "gongwen.xsd"
EXAMPLE_NAMES = ("notice", "request", "letter", "joint-notice")

PASSPHRASE = b"test-passphrase-not-secret"
ROOT_CODE = "gd.gov.ca"
ROOT_NAME = "广东省电子政务安全中心（测试）"

# Departments of the examples, all with EC P-256 keys.
DEPARTMENTS = {
    "gd.gov.office": "广东省人民政府办公厅",
    "gd.gov.czt": "广东省财政厅",
    "gd.gov.gxt": "广东省工业和信息化厅",
}
RSA_DEPARTMENT = "gd.gov.rsa"
RSA_DEPARTMENT_NAME = "广东省测试厅（RSA-2048）"
NODE = "gd-hub"
NODE_NAME = "广东省公文交换节点（测试）"


# --- a PKI in a folder ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Pki:
    """An ``Authority`` home plus conveniences to get certificates, keys, signers and trust policies from it."""

    home: Path
    authority: Authority
    protection: Protection

    # The holders ``build_pki`` issues to by default.
    DEPARTMENTS = DEPARTMENTS
    RSA_DEPARTMENT = RSA_DEPARTMENT
    NODE = NODE
    _keys: dict[tuple[str, Usage], PrivateKey] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def root(self) -> x509.Certificate:
        return self.authority.root

    @property
    def crl_path(self) -> Path:
        return self.home / "crl.pem"

    def files(self, code: str, usage: Usage = Usage.SIGNING) -> IssuedFiles:
        folder = self.home / "issued" / code
        return IssuedFiles(certificate=folder / f"{usage.value}.crt", key=folder / f"{usage.value}.key")

    def cert(self, code: str, usage: Usage = Usage.SIGNING) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.files(code, usage).certificate.read_bytes())

    def key(self, code: str, usage: Usage = Usage.SIGNING) -> PrivateKey:
        cached = self._keys.get((code, usage))
        if cached is None:
            passphrase = None if isinstance(self.protection, UnsafeUnencrypted) else self.protection
            cached = key_from_pem(self.files(code, usage).key.read_bytes(), passphrase)
            self._keys[(code, usage)] = cached
        return cached

    def signer(self, code: str, usage: Usage = Usage.SIGNING) -> Signer:
        """The signer of ``code`` with its certificate for ``usage`` (signing unless said otherwise)."""
        return Signer(self.key(code, usage), self.cert(code, usage))

    def serial(self, code: str, usage: Usage = Usage.SIGNING) -> str:
        """The certificate's serial as the authority's index writes it (lowercase hex)."""
        return f"{self.cert(code, usage).serial_number:x}"

    def crl(self) -> x509.CertificateRevocationList:
        """The CRL as it is now on disk (read again after every revocation)."""
        return x509.load_pem_x509_crl(self.crl_path.read_bytes())

    def trust(self, *, check_revocation: bool = True) -> TrustPolicy:
        """A trust policy for this root with the current CRL."""
        return TrustPolicy(self.root, (self.crl(),), unsafe_skip_revocation=not check_revocation, now=NOW)

    def issue(
        self,
        code: str,
        name: str,
        role: Role = Role.DEPARTMENT,
        usages: Iterable[Usage] | None = None,
        *,
        now: datetime,
        algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
        lifetime: timedelta = CERT_LIFETIME,
    ) -> None:
        """Issue certificates (a department's signing + encryption pair, or a node's one) like ``gwx pki issue``."""
        if usages is None:
            usages = [Usage.NODE] if role is Role.NODE else [Usage.SIGNING, Usage.ENCRYPTION]
        for usage in usages:
            self.authority.issue(
                code=code,
                name=name,
                role=role,
                usage=usage,
                protection=self.protection,
                now=now,
                algorithm=algorithm,
                lifetime=lifetime,
            )
            self._keys.pop((code, usage), None)


def build_pki(
    home: Path,
    *,
    start: datetime = PKI_START,
    protection: Protection = PASSPHRASE,
    departments: dict[str, str] | None = None,
    rsa_department: bool = True,
    node: bool = True,
) -> Pki:
    """A root at ``start``; signing + encryption certificates for ``departments`` (default: those of the
    examples), an RSA-2048 department and a node, all valid from ``start`` for the default lifetime."""
    authority = Authority.create(home, code=ROOT_CODE, name=ROOT_NAME, protection=protection, now=start)
    pki = Pki(home=home, authority=authority, protection=protection)
    for code, name in (DEPARTMENTS if departments is None else departments).items():
        pki.issue(code, name, now=start)
    if rsa_department:
        pki.issue(RSA_DEPARTMENT, RSA_DEPARTMENT_NAME, now=start, algorithm=KeyAlgorithm.RSA_2048)
    if node:
        pki.issue(NODE, NODE_NAME, Role.NODE, now=start)
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The session's PKI (read-only by convention: make your own with ``make_pki`` to revoke or re-issue)."""
    return build_pki(tmp_path_factory.mktemp("pki") / "ca")


@pytest.fixture(scope="session")
def make_pki(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Pki]:
    """A factory of fresh, private PKIs: ``make_pki(start=..., departments=..., ...)`` (see ``build_pki``)."""

    def make(**kwargs: object) -> Pki:
        return build_pki(tmp_path_factory.mktemp("pki") / "ca", **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def trust(pki: Pki) -> TrustPolicy:
    """Trust in the session root, with its CRL (revocation checked)."""
    return pki.trust()


@pytest.fixture(scope="session")
def signer(pki: Pki) -> Callable[..., Signer]:
    """``signer(code)``: the signing ``Signer`` of a department of the session PKI."""
    return pki.signer


@pytest.fixture(scope="session")
def now() -> datetime:
    """``NOW``, the fixed clock (session-scoped, so it can be used with hypothesis)."""
    return NOW


@pytest.fixture(scope="session")
def passphrase() -> bytes:
    """The passphrase of every private key of ``pki`` and ``make_pki`` (unless told otherwise)."""
    return PASSPHRASE


@pytest.fixture(scope="session")
def schema_file() -> Path:
    """``schemas/gongwen.xsd`` of the source tree."""
    return SCHEMA


# --- the examples --------------------------------------------------------------------------------------------


def example_path(name: str) -> Path:
    """``examples/<name>.toml``."""
    return EXAMPLES / f"{name}.toml"


def load_example(name: str) -> Document:
    """The document described by ``examples/<name>.toml`` (names from ``examples/departments.toml``)."""
    return load_description_file(example_path(name))


def make_document(**overrides: object) -> Document:
    """A small valid 通知 from gd.gov.office to gd.gov.czt; any element can be overridden by keyword."""
    fields: dict[str, object] = {
        "kind": DocKind.NOTICE,
        "classification": Classification.PUBLIC,
        "issuers": (Department("gd.gov.office", "广东省人民政府办公厅"),),
        "issuer_mark": "广东省人民政府办公厅文件",
        "doc_number": DocNumber("粤办发〔2026〕12号"),
        "title": "广东省人民政府办公厅关于开展测试工作的通知",
        "body": ("一、总体要求", "请按要求开展测试。"),
        "signature_names": ("广东省人民政府办公厅",),
        "date": date(2026, 11, 20),
        "main_recipients": (Department("gd.gov.czt", "广东省财政厅"),),
    }
    fields.update(overrides)
    return Document(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def document_builder() -> Callable[..., Document]:
    """``make_document``: ``document_builder(title=..., ...)`` gives a valid document with those elements."""
    return make_document


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """The ``examples/`` folder (read-only: copy it before changing anything)."""
    return EXAMPLES


@pytest.fixture(scope="session")
def example_loader() -> Callable[[str], Document]:
    """``example_loader("letter")`` loads ``examples/letter.toml`` afresh."""
    return load_example


@pytest.fixture(scope="session")
def examples() -> dict[str, Document]:
    """Every example document by name: notice, request, letter, joint-notice."""
    return {name: load_example(name) for name in EXAMPLE_NAMES}


@pytest.fixture(scope="session")
def example_xml(examples: dict[str, Document]) -> dict[str, bytes]:
    """The draft XML of every example document by name."""
    return {name: document_to_xml(doc) for name, doc in examples.items()}


@pytest.fixture(params=EXAMPLE_NAMES)
def example_name(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over the four examples."""
    name: str = request.param
    return name
