"""Interoperability with the reference implementations, in both directions.

* What gwexchange signs verifies with Debian's ``xmlsec1`` (chain checked against the root with ``--trusted-pem``)
  and with signxml; a tampered copy fails in both. A joint document's last signature verifies as it stands, the
  first once the later (Signing, Signature) block is removed.
* What ``xmlsec1`` and signxml sign — our draft plus a ``gw:Signing`` element, enveloped signature in our profile —
  verifies with ``verify_document``; joint documents may be signed by any mix of gwexchange, xmlsec1 and signxml.
* Every draft and signed document validates with ``xmllint --schema gwexchange/schemas/gongwen.xsd`` (libxml2 on
  its own).

Run for an EC P-256 PKI (the session PKI of conftest) and for one whose departments hold RSA-2048 keys. Keys stay
encrypted under the test passphrase; ``xmlsec1`` gets it with ``--pwd``. The reference tools check certificates at
the tests' fixed clock (``--verification-time``, ``verification_time``), never at the real one. Debian's xmlsec1
1.2.37 takes no CRL (``--crl-pem`` is not compiled in), so revocation is checked by gwexchange alone.

The XML-DSig URIs and the signature templates here are written out from the W3C specifications on purpose,
not taken from gwexchange, so that a wrong constant in the library cannot agree with itself.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureConstructionMethod,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)
from signxml.exceptions import InvalidSignature

from gwexchange.crypto.certificates import Usage
from gwexchange.crypto.keys import KeyAlgorithm
from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document
from gwexchange.errors import SignatureError

GW = "urn:gwexchange:document:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"

# The last ds:Signature child of the document element: the signature of the department that signed last.
LAST_SIGNATURE = f"/*/*[local-name()='Signature' and namespace-uri()='{DS}'][last()]"

SIGNERS_OF = {  # department codes in signing order, per example
    "notice": ("gd.gov.office",),
    "request": ("gd.gov.czt",),
    "letter": ("gd.gov.gxt",),
    "joint-notice": ("gd.gov.czt", "gd.gov.gxt"),
}
TOOLS = ("gwexchange", "xmlsec1", "xmlsec1-indented", "signxml")


# --- the two PKIs --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InteropPki:
    """A conftest PKI seen by the interop tests: which algorithm its departments sign with, and the clock."""

    pki: Any  # conftest's Pki (not imported: see conftest's docstring)
    algorithm: KeyAlgorithm
    passphrase: bytes
    now: datetime

    @property
    def root_pem(self) -> Path:
        return self.pki.home / "root.crt"

    @property
    def method_uri(self) -> str:
        return ECDSA_SHA256 if self.algorithm is KeyAlgorithm.EC_P256 else RSA_SHA256

    @property
    def signxml_method(self) -> SignatureMethod:
        return SignatureMethod(self.method_uri)

    def key_path(self, code: str) -> Path:
        path: Path = self.pki.files(code, Usage.SIGNING).key
        return path

    def cert_path(self, code: str) -> Path:
        path: Path = self.pki.files(code, Usage.SIGNING).certificate
        return path

    def cert(self, code: str) -> x509.Certificate:
        cert: x509.Certificate = self.pki.cert(code)
        return cert

    def cert_pem(self, code: str) -> str:
        return self.cert(code).public_bytes(serialization.Encoding.PEM).decode("ascii")

    def signing_time(self, position: int) -> datetime:
        """When the ``position``-th department (0: lead) signs: an hour apart, before the verifier's clock."""
        return self.now - timedelta(hours=3) + timedelta(hours=position)

    def verify(self, data: bytes) -> VerifiedDocument:
        return verify_document(data, self.pki.trust(), now=self.now)


@pytest.fixture(scope="module", params=[KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048], ids=["ec-p256", "rsa-2048"])
def ipki(
    request: pytest.FixtureRequest, pki: Any, make_pki: Callable[..., Any], passphrase: bytes, now: datetime
) -> InteropPki:
    if request.param is KeyAlgorithm.EC_P256:
        return InteropPki(pki, KeyAlgorithm.EC_P256, passphrase, now)
    # The same departments, but holding RSA-2048 signing keys (the root stays EC; that does not matter here).
    rsa_pki = make_pki(departments={}, rsa_department=False, node=False)
    start = rsa_pki.root.not_valid_before_utc
    for code, name in pki.DEPARTMENTS.items():
        rsa_pki.issue(code, name, usages=[Usage.SIGNING], now=start, algorithm=KeyAlgorithm.RSA_2048)
    return InteropPki(rsa_pki, KeyAlgorithm.RSA_2048, passphrase, now)


# --- the reference tools -------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed: ./dev.sh test installs it (Debian xmlsec1, libxml2-utils)"
    return path


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a reference tool; its stdout and stderr together, in UTC so --verification-time means UTC."""
    env = {**os.environ, "TZ": "UTC"}
    return subprocess.run(
        [_tool(args[0]), *args[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def xmlsec1_verify(ipki: InteropPki, path: Path, *, last: bool = False, root: Path | None = None) -> tuple[int, str]:
    """``xmlsec1 --verify`` trusting only the root; ``last`` picks the last signature instead of the first."""
    args = ["xmlsec1", "--verify", "--trusted-pem", str(root or ipki.root_pem)]
    args += ["--verification-time", ipki.now.strftime("%Y-%m-%d %H:%M:%S")]
    if last:
        args += ["--node-xpath", LAST_SIGNATURE]
    result = run_tool(*args, str(path))
    return result.returncode, result.stdout


def assert_xmlsec1_ok(ipki: InteropPki, path: Path, *, last: bool = False) -> None:
    rc, out = xmlsec1_verify(ipki, path, last=last)
    assert rc == 0, out
    assert "OK" in out.split(), out
    assert "SignedInfo References (ok/all): 1/1" in out, out


DIGEST_MISMATCH = "data and digest do not match"


def assert_xmlsec1_fails(
    ipki: InteropPki, path: Path, *, last: bool = False, root: Path | None = None, reason: str = DIGEST_MISMATCH
) -> None:
    """xmlsec1 refuses, and for the expected ``reason`` (not, say, because it was called wrongly)."""
    rc, out = xmlsec1_verify(ipki, path, last=last, root=root)
    assert rc != 0, out
    assert "OK" not in out.split(), out
    assert reason in out, out


def signxml_verify(ipki: InteropPki, data: bytes, code: str) -> Any:
    """signxml, restricted to our algorithms, the signature a child of the root, the certificate given out of band."""
    config = SignatureConfiguration(
        location="./",
        expect_references=1,
        signature_methods=frozenset({ipki.signxml_method}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        verification_time=ipki.now,
    )
    return XMLVerifier().verify(data, x509_cert=ipki.cert_pem(code), expect_config=config)


def xmllint_validate(path: Path, schema_file: Path) -> None:
    result = run_tool("xmllint", "--noout", "--schema", str(schema_file), str(path))
    assert result.returncode == 0, result.stdout
    assert f"{path} validates" in result.stdout, result.stdout


# --- signing with each tool ----------------------------------------------------------------------------------


def _parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _append_signing(root: etree._Element, code: str, at: datetime) -> etree._Element:
    return etree.SubElement(root, f"{{{GW}}}Signing", department=code, time=at.strftime("%Y-%m-%dT%H:%M:%SZ"))


def signature_template(method_uri: str, *, certificate_placeholder: bool) -> etree._Element:
    """A ds:Signature template in our exact profile, DigestValue and SignatureValue left for the signer."""

    def ds(parent: etree._Element | None, local: str, **attrs: str) -> etree._Element:
        tag = f"{{{DS}}}{local}"
        if parent is None:
            return etree.Element(tag, attrs, nsmap={"ds": DS})
        return etree.SubElement(parent, tag, attrs)

    signature = ds(None, "Signature")
    signed_info = ds(signature, "SignedInfo")
    ds(signed_info, "CanonicalizationMethod", Algorithm=EXC_C14N)
    ds(signed_info, "SignatureMethod", Algorithm=method_uri)
    reference = ds(signed_info, "Reference", URI="")
    transforms = ds(reference, "Transforms")
    ds(transforms, "Transform", Algorithm=ENVELOPED)
    ds(transforms, "Transform", Algorithm=EXC_C14N)
    ds(reference, "DigestMethod", Algorithm=SHA256)
    ds(reference, "DigestValue")
    ds(signature, "SignatureValue")
    x509_data = ds(ds(signature, "KeyInfo"), "X509Data")
    if certificate_placeholder:
        ds(x509_data, "X509Certificate")
    return signature


def sign_with_gwexchange(ipki: InteropPki, xml: bytes, code: str, at: datetime, tmp: Path) -> bytes:
    # With trust: a co-signer first verifies the signatures already there, whichever tool made them.
    return sign_document(xml, ipki.pki.signer(code), at=at, trust=ipki.pki.trust())


def sign_with_xmlsec1(
    ipki: InteropPki,
    xml: bytes,
    code: str,
    at: datetime,
    tmp: Path,
    *,
    indented: bool = False,
    certificate_placeholder: bool = False,
) -> bytes:
    """``xmlsec1 --sign`` of our template: the document + Signing + an empty signature in our profile.

    ``indented`` puts line breaks and indentation inside the new block (never before it: text there would change
    what an earlier signature signed), including a line break after ds:Signature, before </gw:Document>.
    """
    root = _parse(xml)
    signing = _append_signing(root, code, at)
    signature = signature_template(ipki.method_uri, certificate_placeholder=certificate_placeholder)
    root.append(signature)
    if indented:
        etree.indent(signature, space="  ", level=1)
        signing.tail = "\n  "
        signature.tail = "\n"
    template = tmp / f"template-{code}.xml"
    signed = tmp / f"xmlsec1-signed-{code}.xml"
    template.write_bytes(_serialise(root))
    result = run_tool(
        "xmlsec1",
        "--sign",
        "--pwd",
        ipki.passphrase.decode("ascii"),
        "--privkey-pem",
        f"{ipki.key_path(code)},{ipki.cert_path(code)}",
        "--node-xpath",
        LAST_SIGNATURE,
        "--output",
        str(signed),
        str(template),
    )
    assert result.returncode == 0, result.stdout
    return signed.read_bytes()


def sign_with_signxml(ipki: InteropPki, xml: bytes, code: str, at: datetime, tmp: Path) -> bytes:
    """signxml, enveloped, our algorithms; the root has no Id attribute, so signxml references it as URI=""."""
    root = _parse(xml)
    assert root.get("Id") is None and root.get("ID") is None
    _append_signing(root, code, at)
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=ipki.signxml_method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(
        root, key=ipki.key_path(code).read_bytes(), passphrase=ipki.passphrase, cert=ipki.cert_pem(code)
    )
    return _serialise(signed)


SIGN_WITH: dict[str, Callable[[InteropPki, bytes, str, datetime, Path], bytes]] = {
    "gwexchange": sign_with_gwexchange,
    "xmlsec1": sign_with_xmlsec1,
    "xmlsec1-indented": functools.partial(sign_with_xmlsec1, indented=True, certificate_placeholder=True),
    "signxml": sign_with_signxml,
}


def sign_all(ipki: InteropPki, name: str, drafts: dict[str, bytes], tmp: Path, tools: tuple[str, ...]) -> bytes:
    """The example ``name`` signed by its departments in order, department i with ``tools[i]``."""
    xml = drafts[name]
    for position, (code, tool) in enumerate(zip(SIGNERS_OF[name], tools, strict=True)):
        xml = SIGN_WITH[tool](ipki, xml, code, ipki.signing_time(position), tmp)
    return xml


def without_last_block(data: bytes) -> bytes:
    """The document as it stood before its last department signed: the last (Signing, Signature) removed."""
    root = _parse(data)
    signature, signing = root[-1], root[-2]
    assert signature.tag == f"{{{DS}}}Signature" and signing.tag == f"{{{GW}}}Signing"
    root.remove(signature)  # lxml removes an element together with its tail text
    root.remove(signing)
    return _serialise(root)


def replace_once(data: bytes, old: str, new: str) -> bytes:
    assert data.count(old.encode()) == 1, f"{old!r} must occur exactly once"
    return data.replace(old.encode(), new.encode())


def tamper(data: bytes, how: str, examples: dict[str, Any], name: str) -> bytes:
    """A copy changed where a signature must notice: the title, or the signing time inside gw:Signing."""
    if how == "title":
        title: str = examples[name].title
        return replace_once(data, f">{title}<", f">{title}（修订稿）<")
    root = _parse(data)
    signing = root.findall(f"{{{GW}}}Signing")[-1]
    time = signing.get("time", "")
    assert time.endswith(":00Z")
    return replace_once(data, f'time="{time}"', f'time="{time[:-3]}59Z"')


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def check_verified(ipki: InteropPki, verified: VerifiedDocument, name: str, examples: dict[str, Any]) -> None:
    """The right document, signed by the right departments, at the times they claimed, with their certificates."""
    assert verified.document == examples[name]
    codes = SIGNERS_OF[name]
    assert [s.department for s in verified.signatures] == list(codes)
    for position, (s, code) in enumerate(zip(verified.signatures, codes, strict=True)):
        assert s.signer_name == ipki.pki.DEPARTMENTS[code]
        assert s.signed_at == ipki.signing_time(position)
        assert s.certificate == ipki.cert(code)


# --- a. gwexchange signs; xmlsec1 and signxml verify ---------------------------------------------------------


@pytest.mark.parametrize("name", ["notice", "letter"])
def test_gwexchange_signature_verifies_with_xmlsec1(
    ipki: InteropPki, example_xml: dict[str, bytes], name: str, tmp_path: Path
) -> None:
    signed = sign_all(ipki, name, example_xml, tmp_path, ("gwexchange",))
    assert_xmlsec1_ok(ipki, write(tmp_path, "signed.xml", signed))


@pytest.mark.parametrize("how", ["title", "signing-time"])
@pytest.mark.parametrize("name", ["notice", "letter"])
def test_tampered_gwexchange_signature_fails_with_xmlsec1(
    ipki: InteropPki, example_xml: dict[str, bytes], examples: dict[str, Any], name: str, how: str, tmp_path: Path
) -> None:
    signed = sign_all(ipki, name, example_xml, tmp_path, ("gwexchange",))
    assert_xmlsec1_fails(ipki, write(tmp_path, "tampered.xml", tamper(signed, how, examples, name)))


def test_xmlsec1_checks_the_chain_to_the_given_root(
    ipki: InteropPki, example_xml: dict[str, bytes], make_pki: Callable[..., Any], tmp_path: Path
) -> None:
    """The xmlsec1 checks above mean something: with another root, the same good document is refused."""
    signed = write(tmp_path, "signed.xml", sign_all(ipki, "notice", example_xml, tmp_path, ("gwexchange",)))
    stranger = make_pki(departments={}, rsa_department=False, node=False)
    assert_xmlsec1_fails(ipki, signed, root=stranger.home / "root.crt", reason="unable to get local issuer certificate")


@pytest.mark.parametrize("name", ["notice", "letter"])
def test_gwexchange_signature_verifies_with_signxml(
    ipki: InteropPki, example_xml: dict[str, bytes], examples: dict[str, Any], name: str, tmp_path: Path
) -> None:
    signed = sign_all(ipki, name, example_xml, tmp_path, ("gwexchange",))
    (code,) = SIGNERS_OF[name]
    result = signxml_verify(ipki, signed, code)
    # What signxml says was signed is our whole Document, its Signing element included, the signature excised.
    signed_xml = result.signed_xml
    assert signed_xml.tag == f"{{{GW}}}Document"
    assert signed_xml.find(f"{{{DS}}}Signature") is None
    signing = signed_xml.findall(f"{{{GW}}}Signing")
    assert [(s.get("department"), s.get("time")) for s in signing] == [
        (code, ipki.signing_time(0).strftime("%Y-%m-%dT%H:%M:%SZ"))
    ]
    assert signed_xml.findtext(f"{{{GW}}}DocNumber") == examples[name].doc_number.text
    assert signed_xml.findtext(f"{{{GW}}}Title") == examples[name].title
    assert result.signature_key == ipki.cert(code).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("how", ["title", "signing-time"])
@pytest.mark.parametrize("name", ["notice", "letter"])
def test_tampered_gwexchange_signature_fails_with_signxml(
    ipki: InteropPki, example_xml: dict[str, bytes], examples: dict[str, Any], name: str, how: str, tmp_path: Path
) -> None:
    signed = sign_all(ipki, name, example_xml, tmp_path, ("gwexchange",))
    (code,) = SIGNERS_OF[name]
    with pytest.raises(InvalidSignature, match="Digest mismatch"):
        signxml_verify(ipki, tamper(signed, how, examples, name), code)


def test_joint_notice_signed_by_gwexchange_verifies_with_xmlsec1_and_signxml(
    ipki: InteropPki, example_xml: dict[str, bytes], examples: dict[str, Any], tmp_path: Path
) -> None:
    lead, cosigner = SIGNERS_OF["joint-notice"]
    signed = sign_all(ipki, "joint-notice", example_xml, tmp_path, ("gwexchange", "gwexchange"))
    full = write(tmp_path, "joint.xml", signed)
    # The co-signer's signature covers the lead's block: it verifies as the document stands.
    assert_xmlsec1_ok(ipki, full, last=True)
    # The lead's signature (the one xmlsec1 picks by default) covers the document as the lead left it, so it
    # does not verify with the co-signer's block present ...
    assert_xmlsec1_fails(ipki, full)
    # ... and does once that block is removed.
    first = without_last_block(signed)
    assert_xmlsec1_ok(ipki, write(tmp_path, "joint-first.xml", first))
    result = signxml_verify(ipki, first, lead)
    assert result.signed_xml.findall(f"{{{GW}}}Signing")[0].get("department") == lead
    # Changing the lead's signing time breaks the co-signer's signature too.
    root = _parse(signed)
    lead_time = root.findall(f"{{{GW}}}Signing")[0].get("time", "")
    tampered = replace_once(signed, f'"{lead}" time="{lead_time}"', f'"{lead}" time="{lead_time[:-3]}59Z"')
    assert_xmlsec1_fails(ipki, write(tmp_path, "joint-tampered.xml", tampered), last=True)
    assert [s.department for s in ipki.verify(signed).signatures] == [lead, cosigner]


# --- b. xmlsec1 and signxml sign; gwexchange verifies --------------------------------------------------------


@pytest.mark.parametrize("certificate_placeholder", [False, True], ids=["empty-X509Data", "X509Certificate"])
@pytest.mark.parametrize("indented", [False, True], ids=["compact", "indented"])
@pytest.mark.parametrize("name", ["notice", "letter"])
def test_xmlsec1_signature_verifies_with_gwexchange(
    ipki: InteropPki,
    example_xml: dict[str, bytes],
    examples: dict[str, Any],
    schema_file: Path,
    name: str,
    indented: bool,
    certificate_placeholder: bool,
    tmp_path: Path,
) -> None:
    (code,) = SIGNERS_OF[name]
    signed = sign_with_xmlsec1(
        ipki,
        example_xml[name],
        code,
        ipki.signing_time(0),
        tmp_path,
        indented=indented,
        certificate_placeholder=certificate_placeholder,
    )
    check_verified(ipki, ipki.verify(signed), name, examples)
    xmllint_validate(write(tmp_path, "signed.xml", signed), schema_file)


@pytest.mark.parametrize("how", ["title", "signing-time"])
def test_tampered_xmlsec1_signature_fails_with_gwexchange(
    ipki: InteropPki, example_xml: dict[str, bytes], examples: dict[str, Any], how: str, tmp_path: Path
) -> None:
    signed = sign_all(ipki, "notice", example_xml, tmp_path, ("xmlsec1",))
    with pytest.raises(SignatureError, match="digest does not match"):
        ipki.verify(tamper(signed, how, examples, "notice"))


@pytest.mark.parametrize("name", ["notice", "letter"])
def test_signxml_signature_verifies_with_gwexchange(
    ipki: InteropPki,
    example_xml: dict[str, bytes],
    examples: dict[str, Any],
    schema_file: Path,
    name: str,
    tmp_path: Path,
) -> None:
    signed = sign_all(ipki, name, example_xml, tmp_path, ("signxml",))
    reference = _parse(signed).find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert reference is not None and reference.get("URI") == ""
    check_verified(ipki, ipki.verify(signed), name, examples)
    xmllint_validate(write(tmp_path, "signed.xml", signed), schema_file)


@pytest.mark.parametrize("how", ["title", "signing-time"])
def test_tampered_signxml_signature_fails_with_gwexchange(
    ipki: InteropPki, example_xml: dict[str, bytes], examples: dict[str, Any], how: str, tmp_path: Path
) -> None:
    signed = sign_all(ipki, "notice", example_xml, tmp_path, ("signxml",))
    with pytest.raises(SignatureError, match="digest does not match"):
        ipki.verify(tamper(signed, how, examples, "notice"))


@pytest.mark.parametrize("cosigner_tool", TOOLS)
@pytest.mark.parametrize("lead_tool", TOOLS)
def test_joint_notice_signed_by_any_mix_of_tools(
    ipki: InteropPki,
    example_xml: dict[str, bytes],
    examples: dict[str, Any],
    schema_file: Path,
    lead_tool: str,
    cosigner_tool: str,
    tmp_path: Path,
) -> None:
    """Lead and co-signer each with any of the tools; every tool agrees on both signatures."""
    signed = sign_all(ipki, "joint-notice", example_xml, tmp_path, (lead_tool, cosigner_tool))
    check_verified(ipki, ipki.verify(signed), "joint-notice", examples)
    assert_xmlsec1_ok(ipki, write(tmp_path, "joint.xml", signed), last=True)
    first = without_last_block(signed)
    assert_xmlsec1_ok(ipki, write(tmp_path, "joint-first.xml", first))
    signxml_verify(ipki, first, SIGNERS_OF["joint-notice"][0])
    partly = verify_document(first, ipki.pki.trust(), now=ipki.now, complete=False)
    assert [s.department for s in partly.signatures] == [SIGNERS_OF["joint-notice"][0]]
    xmllint_validate(write(tmp_path, "joint-validated.xml", signed), schema_file)


# --- c. every draft and signed document validates with xmllint ------------------------------------------------


def test_every_draft_validates_with_xmllint(example_xml: dict[str, bytes], schema_file: Path, tmp_path: Path) -> None:
    assert set(example_xml) == {"notice", "request", "letter", "joint-notice"}
    for name, draft in example_xml.items():
        xmllint_validate(write(tmp_path, f"{name}.draft.xml", draft), schema_file)


def test_every_signed_document_validates_with_xmllint(
    ipki: InteropPki, example_xml: dict[str, bytes], schema_file: Path, tmp_path: Path
) -> None:
    for name in ("notice", "request", "letter"):
        signed = sign_all(ipki, name, example_xml, tmp_path, ("gwexchange",))
        xmllint_validate(write(tmp_path, f"{name}.signed.xml", signed), schema_file)
    joint = sign_all(ipki, "joint-notice", example_xml, tmp_path, ("gwexchange", "gwexchange"))
    xmllint_validate(write(tmp_path, "joint-notice.signed.xml", joint), schema_file)
    xmllint_validate(write(tmp_path, "joint-notice.lead-signed.xml", without_last_block(joint)), schema_file)


def test_xmllint_rejects_what_the_schema_forbids(
    example_xml: dict[str, bytes], schema_file: Path, tmp_path: Path
) -> None:
    """The validation tests can fail: a Signing element without its signature is not a valid document."""
    root = _parse(example_xml["notice"])
    _append_signing(root, "gd.gov.office", datetime(2026, 11, 20, 8, 0))
    bad = write(tmp_path, "bad.xml", _serialise(root))
    result = run_tool("xmllint", "--noout", "--schema", str(schema_file), str(bad))
    assert result.returncode != 0
    assert f"{bad} fails to validate" in result.stdout
