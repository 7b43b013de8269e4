"""Signed documents: every example signs and verifies; joint signing order; times; attachments; certificates
that must not sign (node, encryption, expired, revoked)."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from gwexchange import xmlsafe
from gwexchange.crypto.certificates import RevocationReason, Role, Usage
from gwexchange.crypto.keys import KeyAlgorithm
from gwexchange.crypto.suite import PrivateKey
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import DSIG_NS, SIGNATURE_TAG, Signer, sign_enveloped, verify_enveloped
from gwexchange.envelope.model import Department
from gwexchange.envelope.signing import (
    CLOCK_SKEW,
    SIGNING_TAG,
    VerifiedDocument,
    sign_document,
    verify_attachment,
    verify_document,
)
from gwexchange.envelope.times import TIME_FORMAT
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import (
    ConfigError,
    DocumentError,
    SignatureError,
    TrustError,
    VerificationError,
)


def sign_all(xml: bytes, pki, codes, at) -> bytes:
    for code in codes:
        xml = sign_document(xml, pki.signer(code), at=at)
    return xml


def sign_raw(xml: bytes, signer: Signer, department: str, time: str) -> bytes:
    """Sign without ``sign_document``'s checks: add the Signing element and an enveloped signature as it would."""
    root = xmlsafe.parse(xml)
    etree.SubElement(root, SIGNING_TAG, department=department, time=time)
    sign_enveloped(root, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- every example -------------------------------------------------------------------------------------------


def test_sign_and_verify_every_example(examples, example_name, pki, trust, now) -> None:
    doc = examples[example_name]
    codes = [d.code for d in doc.issuers]
    signed = sign_all(document_to_xml(doc), pki, codes, now)
    verified = verify_document(signed, trust, now=now)
    assert isinstance(verified, VerifiedDocument)
    assert verified.document == doc
    assert [s.department for s in verified.signatures] == codes
    assert [s.signer_name for s in verified.signatures] == [pki.DEPARTMENTS[c] for c in codes]
    assert all(s.signed_at == now for s in verified.signatures)
    for s, code in zip(verified.signatures, codes, strict=True):
        assert s.certificate == pki.cert(code)
        assert s.certificate_serial == pki.cert(code).serial_number
    assert verified.signed_bytes == signed
    assert verified.digest == hashlib.sha256(signed).hexdigest()


def test_signed_bytes_are_returned_unchanged(example_xml, pki, trust, now) -> None:
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    # Re-serialising would change these bytes: blank lines and a different XML declaration are kept as they are.
    variant = signed.replace(b"<?xml version='1.0' encoding='UTF-8'?>", b'<?xml version="1.0" encoding="UTF-8"?>')
    assert variant != signed
    for data in (signed, variant):
        verified = verify_document(data, trust, now=now)
        assert verified.signed_bytes == data
        assert verified.digest == hashlib.sha256(data).hexdigest()


def test_signed_form(example_xml, pki, now) -> None:
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    root = etree.fromstring(signed)
    signing, signature = list(root)[-2:]
    assert signing.tag == SIGNING_TAG
    assert dict(signing.attrib) == {"department": "gd.gov.office", "time": "2026-11-20T08:00:00Z"}
    assert signature.tag == SIGNATURE_TAG
    assert f'<ds:Signature xmlns:ds="{DSIG_NS}">'.encode() in signed  # the form docs/wire-formats.md shows
    assert signed.startswith(b"<?xml")


def test_verify_unsigned_draft(example_xml, trust, now) -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify_document(example_xml["notice"], trust, now=now)


def test_signing_twice_is_refused(example_xml, pki, now) -> None:
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    with pytest.raises(DocumentError, check=lambda e: e.element == "发文机关"):
        sign_document(signed, pki.signer("gd.gov.office"), at=now)


def test_wrong_department_cannot_sign(example_xml, pki, now) -> None:
    with pytest.raises(ConfigError, match=re.escape("gd.gov.office")):
        sign_document(example_xml["notice"], pki.signer("gd.gov.czt"), at=now)


def test_tampered_content_fails(example_xml, pki, trust, now) -> None:
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    tampered = signed.replace("粤办发〔2026〕12号".encode(), "粤办发〔2026〕13号".encode())
    assert tampered != signed
    with pytest.raises(SignatureError, match="digest"):
        verify_document(tampered, trust, now=now)


def test_tampered_signing_time_fails(example_xml, pki, trust, now) -> None:
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    tampered = signed.replace(b'time="2026-11-20T08:00:00Z"', b'time="2026-11-19T08:00:00Z"')
    assert tampered != signed
    with pytest.raises(SignatureError):
        verify_document(tampered, trust, now=now)


def resigned(xml: bytes, signer: Signer, change: Callable[[etree._Element], object]) -> bytes:
    """``xml`` with ``change`` made to its last signature's SignedInfo, and that SignedInfo signed again with
    ``signer``'s EC key: a correctly made signature of another shape (independent of the library's signer)."""
    root = xmlsafe.parse(xml)
    signature = root.findall(SIGNATURE_TAG)[-1]
    signed_info = signature.find(f"{{{DSIG_NS}}}SignedInfo")
    assert signed_info is not None
    change(signed_info)
    assert isinstance(signer.key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(
        signer.key.sign(etree.tostring(signed_info, method="c14n", exclusive=True), ec.ECDSA(hashes.SHA256()))
    )
    value = signature.find(f"{{{DSIG_NS}}}SignatureValue")
    assert value is not None
    value.text = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode("ascii")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _transforms(order: tuple[int, ...]) -> Callable[[etree._Element], None]:
    def change(signed_info: etree._Element) -> None:
        transforms = signed_info.find(f"{{{DSIG_NS}}}Reference/{{{DSIG_NS}}}Transforms")
        assert transforms is not None
        found = list(transforms)
        for t in found:
            transforms.remove(t)
        for k in order:
            transforms.append(copy.deepcopy(found[k]))

    return change


def test_a_signedinfo_signed_again_by_this_helper_verifies(example_xml, pki, trust, now) -> None:
    """The helper below makes signatures that verify: what the next test refuses, it refuses for the order."""
    signer = pki.signer("gd.gov.office")
    signed = sign_document(example_xml["notice"], signer, at=now)
    same = resigned(signed, signer, _transforms((0, 1)))
    assert same != signed  # a fresh ECDSA signature value
    assert verify_document(same, trust, now=now).document.title


@pytest.mark.parametrize(
    "order", [(1, 0), (0, 0), (1, 1)], ids=["c14n-then-enveloped", "enveloped-twice", "c14n-twice"]
)
def test_transforms_in_another_order_are_refused_though_correctly_signed(
    example_xml, pki, trust, now, order: tuple[int, int]
) -> None:
    signer = pki.signer("gd.gov.office")
    signed = resigned(sign_document(example_xml["notice"], signer, at=now), signer, _transforms(order))
    with pytest.raises(SignatureError, match="transforms must be exactly enveloped-signature then exclusive C14N"):
        verify_document(signed, trust, now=now)


@pytest.mark.parametrize("element", ["SignatureValue", "X509Certificate", "DigestValue"])
@pytest.mark.parametrize(
    ("damage", "refusal"),
    [("stray", "is not valid base64"), ("child", "must hold only base64 text")],
)
def test_a_base64_value_must_be_strict_base64_text(
    example_xml, pki, trust, now, element: str, damage: str, refusal: str
) -> None:
    """Strict base64: a lenient decoder would drop a stray '!' (or read only the text before a child element) and
    verify the very same bytes, so a signature could carry anything beside them. The DigestValue is inside
    SignedInfo: that one is signed again after the change, so only the base64 check can refuse it."""
    signer = pki.signer("gd.gov.office")
    signed = sign_document(example_xml["notice"], signer, at=now)

    def spoil(within: etree._Element) -> None:
        found = next(within.iter(f"{{{DSIG_NS}}}{element}"))
        if damage == "stray":
            found.text = (found.text or "")[:8] + "!" + (found.text or "")[8:]
        else:
            etree.SubElement(found, "{urn:example}extra")

    if element == "DigestValue":
        changed = resigned(signed, signer, spoil)
    else:
        root = xmlsafe.parse(signed)
        spoil(root)
        changed = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    with pytest.raises(SignatureError, match=f"^ds:{element} {refusal}$"):
        verify_document(changed, trust, now=now)


@pytest.mark.parametrize(
    ("element", "what"),
    [("CanonicalizationMethod", "canonicalization"), ("SignatureMethod", "signature"), ("Transform", "transform")],
)
def test_an_algorithm_left_unnamed_is_refused_by_name(example_xml, pki, trust, now, element: str, what: str) -> None:
    signer = pki.signer("gd.gov.office")

    def unnamed(signed_info: etree._Element) -> None:
        del next(signed_info.iter(f"{{{DSIG_NS}}}{element}")).attrib["Algorithm"]

    changed = resigned(sign_document(example_xml["notice"], signer, at=now), signer, unnamed)
    with pytest.raises(SignatureError, match=rf"^{what} algorithm \(none\) is not accepted$"):
        verify_document(changed, trust, now=now)


def test_verify_enveloped_takes_only_a_signature_that_is_a_child_of_the_document(example_xml, pki, trust, now) -> None:
    root = xmlsafe.parse(sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now))
    signature = root.findall(SIGNATURE_TAG)[-1]
    root[0].append(signature)  # moved inside the first element: no longer enveloping the whole document
    with pytest.raises(SignatureError, match=r"^a signature must be a direct child of the document element$"):
        verify_enveloped(root, signature, trust=trust, at=now)


def test_signing_element_naming_another_department(example_xml, pki, trust, now) -> None:
    """The Signing element must name the certificate's department, even if the signature itself is sound."""
    signed = sign_raw(example_xml["notice"], pki.signer("gd.gov.czt"), "gd.gov.office", "2026-11-20T08:00:00Z")
    with pytest.raises(SignatureError, match=re.escape("gd.gov.czt")):
        verify_document(signed, trust, now=now)


# --- joint documents -----------------------------------------------------------------------------------------


def test_joint_document_needs_both_signatures(example_xml, pki, trust, now) -> None:
    draft = example_xml["joint-notice"]
    lead = sign_document(draft, pki.signer("gd.gov.czt"), at=now)
    with pytest.raises(SignatureError, match="not fully signed"):
        verify_document(lead, trust, now=now)
    partial = verify_document(lead, trust, now=now, complete=False)
    assert [s.department for s in partial.signatures] == ["gd.gov.czt"]

    both = sign_document(lead, pki.signer("gd.gov.gxt"), at=now + timedelta(hours=1), trust=trust)
    verified = verify_document(both, trust, now=now + timedelta(hours=1))
    assert [s.department for s in verified.signatures] == ["gd.gov.czt", "gd.gov.gxt"]
    assert [s.signed_at for s in verified.signatures] == [now, now + timedelta(hours=1)]
    assert both.startswith(lead[: lead.rindex(b"</gw:Document>")])  # the lead's block is kept as it was


def test_joint_document_second_department_cannot_sign_first(example_xml, pki, now) -> None:
    with pytest.raises(ConfigError, match=re.escape("gd.gov.czt")):
        sign_document(example_xml["joint-notice"], pki.signer("gd.gov.gxt"), at=now)


def test_joint_document_out_of_order_signatures_fail(example_xml, pki, trust, now) -> None:
    """Even built by hand, a co-signer's signature before the lead's does not verify."""
    first = sign_raw(example_xml["joint-notice"], pki.signer("gd.gov.gxt"), "gd.gov.gxt", now.strftime(TIME_FORMAT))
    with pytest.raises(SignatureError):
        verify_document(first, trust, now=now, complete=False)
    both = sign_raw(first, pki.signer("gd.gov.czt"), "gd.gov.czt", now.strftime(TIME_FORMAT))
    with pytest.raises(SignatureError):
        verify_document(both, trust, now=now)


def test_joint_document_co_signer_claims_earlier_time(example_xml, pki, trust, now) -> None:
    lead = sign_document(example_xml["joint-notice"], pki.signer("gd.gov.czt"), at=now)
    both = sign_document(lead, pki.signer("gd.gov.gxt"), at=now - timedelta(hours=1))
    with pytest.raises(SignatureError, match="before"):
        verify_document(both, trust, now=now)


def test_co_signing_with_trust_checks_the_lead(example_xml, pki, trust, now) -> None:
    lead = sign_document(example_xml["joint-notice"], pki.signer("gd.gov.czt"), at=now)
    tampered = lead.replace("绩效评价".encode(), "绩效考核".encode(), 1)
    with pytest.raises(SignatureError):
        sign_document(tampered, pki.signer("gd.gov.gxt"), at=now, trust=trust)


def test_removing_the_co_signature_leaves_a_partly_signed_document(example_xml, pki, trust, now) -> None:
    lead = sign_document(example_xml["joint-notice"], pki.signer("gd.gov.czt"), at=now)
    both = sign_document(lead, pki.signer("gd.gov.gxt"), at=now)
    root = xmlsafe.parse(both)
    for child in list(root)[-2:]:
        root.remove(child)
    stripped = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    with pytest.raises(SignatureError, match="not fully signed"):
        verify_document(stripped, trust, now=now)


# --- signing time --------------------------------------------------------------------------------------------


def test_future_signing_time_refused(example_xml, pki, trust, now) -> None:
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now + timedelta(hours=1))
    with pytest.raises(SignatureError, match="future"):
        verify_document(signed, trust, now=now)
    assert verify_document(signed, trust, now=now + timedelta(hours=1)).signatures[0].signed_at == now + timedelta(
        hours=1
    )


def test_small_clock_skew_tolerated(example_xml, pki, trust, now) -> None:
    within = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now + CLOCK_SKEW)
    verify_document(within, trust, now=now)
    beyond = sign_document(
        example_xml["notice"], pki.signer("gd.gov.office"), at=now + CLOCK_SKEW + timedelta(seconds=1)
    )
    with pytest.raises(SignatureError):
        verify_document(beyond, trust, now=now)


@pytest.mark.parametrize("time", ["2026-11-20 08:00:00", "2026-11-20T08:00:00+08:00", "yesterday", ""])
def test_malformed_signing_time(example_xml, pki, trust, now, time: str) -> None:
    signed = sign_raw(example_xml["notice"], pki.signer("gd.gov.office"), "gd.gov.office", time)
    with pytest.raises(
        SignatureError, match=f"signing time '{re.escape(time)}' is not of the form 2026-11-20T08:00:00Z"
    ):
        verify_document(signed, trust, now=now)


# --- attachments ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verified_letter(example_xml, pki, trust, now) -> VerifiedDocument:
    signed = sign_document(example_xml["letter"], pki.signer("gd.gov.gxt"), at=now)
    return verify_document(signed, trust, now=now)


def test_verify_attachment_accepts_real_bytes(verified_letter, examples_dir) -> None:
    for name in ("share-catalogue.csv", "contacts.txt"):
        data = (examples_dir / "attachments" / name).read_bytes()
        entry = verify_attachment(verified_letter, name, [data])
        assert entry.file_name == name
        # any chunking gives the same answer
        verify_attachment(verified_letter, name, (data[i : i + 7] for i in range(0, len(data), 7)))


def test_verify_attachment_rejects_changed_bytes(verified_letter, examples_dir) -> None:
    data = (examples_dir / "attachments" / "share-catalogue.csv").read_bytes()
    changed = bytes([data[0] ^ 1]) + data[1:]
    with pytest.raises(VerificationError, match=re.escape("share-catalogue.csv")):
        verify_attachment(verified_letter, "share-catalogue.csv", [changed])
    with pytest.raises(VerificationError):
        verify_attachment(verified_letter, "share-catalogue.csv", [data[:-1]])
    with pytest.raises(VerificationError):
        verify_attachment(verified_letter, "share-catalogue.csv", [data, b"\n"])
    contacts = (examples_dir / "attachments" / "contacts.txt").read_bytes()
    with pytest.raises(VerificationError):
        verify_attachment(verified_letter, "share-catalogue.csv", [contacts])


def test_verify_attachment_unknown_name(verified_letter) -> None:
    with pytest.raises(VerificationError, match="no attachment"):
        verify_attachment(verified_letter, "other.pdf", [b""])


def test_tampered_attachment_digest_in_document(example_xml, examples, pki, trust, now) -> None:
    signed = sign_document(example_xml["letter"], pki.signer("gd.gov.gxt"), at=now)
    digest = examples["letter"].attachments[0].sha256.encode()
    tampered = signed.replace(digest, hashlib.sha256(b"other").hexdigest().encode())
    with pytest.raises(SignatureError):
        verify_document(tampered, trust, now=now)


# --- keys and certificates -----------------------------------------------------------------------------------


def test_rsa_2048_department(document_builder, pki, trust, now) -> None:
    assert pki.key(pki.RSA_DEPARTMENT).key_size == 2048
    doc = document_builder(issuers=(Department(pki.RSA_DEPARTMENT, "测试厅"),), signature_names=("测试厅",))
    signed = sign_document(document_to_xml(doc), pki.signer(pki.RSA_DEPARTMENT), at=now)
    assert b"rsa-sha256" in signed
    verified = verify_document(signed, trust, now=now)
    assert verified.document == doc
    assert verified.signatures[0].department == pki.RSA_DEPARTMENT


def test_ec_signature_method(example_xml, pki, now) -> None:
    assert b"ecdsa-sha256" in sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)


def test_node_certificate_cannot_sign_documents(document_builder, pki, trust, now) -> None:
    doc = document_builder(issuers=(Department("gd.gov.office"),), signature_names=("办公厅",))
    with pytest.raises(ConfigError, match="department certificate"):
        sign_document(document_to_xml(doc), pki.signer(pki.NODE, Usage.NODE), at=now)
    # and a signature made with it anyway, in the department's name, does not verify
    node = pki.signer(pki.NODE, Usage.NODE)
    forged = sign_raw(document_to_xml(doc), node, "gd.gov.office", now.strftime(TIME_FORMAT))
    with pytest.raises(TrustError):
        verify_document(forged, trust, now=now)


@pytest.mark.parametrize("code", ["gd.gov.office", "gd.gov.rsa"])
def test_encryption_certificate_signature_does_not_verify(document_builder, pki, trust, now, code: str) -> None:
    doc = document_builder(issuers=(Department(code),), signature_names=("某厅",))
    encryption = pki.signer(code, Usage.ENCRYPTION)
    signed = sign_raw(document_to_xml(doc), encryption, code, now.strftime(TIME_FORMAT))
    with pytest.raises(TrustError, match="not a signing certificate"):
        verify_document(signed, trust, now=now)


def test_key_must_match_certificate(pki) -> None:
    with pytest.raises(ConfigError, match=r"^the private key does not belong to the certificate$"):
        Signer(pki.key("gd.gov.office"), pki.cert("gd.gov.czt"))


def test_certificate_from_another_root(make_pki, example_xml, trust, now) -> None:
    other = make_pki(departments={"gd.gov.office": "冒名的办公厅"}, rsa_department=False, node=False)
    signed = sign_document(example_xml["notice"], other.signer("gd.gov.office"), at=now)
    with pytest.raises(TrustError, match="root"):
        verify_document(signed, trust, now=now)
    assert verify_document(signed, other.trust(), now=now).signatures[0].signer_name == "冒名的办公厅"


# --- expiry and revocation -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def expiring_pki(make_pki, now):
    """A PKI started 400 days ago; gd.gov.office's signing certificate lived from 300 to 270 days ago."""
    pki = make_pki(start=now - timedelta(days=400), departments={}, rsa_department=False, node=False)
    pki.issue(
        "gd.gov.office", "广东省人民政府办公厅", usages=[Usage.SIGNING], now=now - timedelta(days=300),
        lifetime=timedelta(days=30),
    )  # fmt: skip
    pki.authority.publish_crl(now=now - timedelta(days=1), lifetime=timedelta(days=30))
    return pki


def _crl_covering(pki, at) -> TrustPolicy:
    """Trust with a CRL published just before ``at`` (a CRL must not have expired at the signing time)."""
    pki.authority.publish_crl(now=at - timedelta(hours=1), lifetime=timedelta(days=30))
    return pki.trust()


def test_expired_certificate_refused(expiring_pki, example_xml, now) -> None:
    cert: x509.Certificate = expiring_pki.cert("gd.gov.office")
    assert cert.not_valid_after_utc == now - timedelta(days=270)
    signer = expiring_pki.signer("gd.gov.office")
    after = cert.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(ConfigError, match="not valid"):
        sign_document(example_xml["notice"], signer, at=after)
    forged = sign_raw(example_xml["notice"], signer, "gd.gov.office", after.strftime(TIME_FORMAT))
    with pytest.raises(TrustError, match="not valid"):
        verify_document(forged, expiring_pki.trust(), now=now)


def test_signature_made_while_valid_still_verifies(expiring_pki, example_xml, now) -> None:
    """Validity is judged at the signing time: a document signed during the certificate's life stays valid."""
    at = expiring_pki.cert("gd.gov.office").not_valid_before_utc + timedelta(days=1)
    signed = sign_document(example_xml["notice"], expiring_pki.signer("gd.gov.office"), at=at)
    assert verify_document(signed, expiring_pki.trust(), now=now).signatures[0].signed_at == at


def test_signature_before_certificate_validity(expiring_pki, example_xml, now) -> None:
    signer = expiring_pki.signer("gd.gov.office")
    before = signer.certificate.not_valid_before_utc - timedelta(days=1)
    with pytest.raises(ConfigError):
        sign_document(example_xml["notice"], signer, at=before)
    forged = sign_raw(example_xml["notice"], signer, "gd.gov.office", before.strftime(TIME_FORMAT))
    with pytest.raises(TrustError):
        verify_document(forged, expiring_pki.trust(), now=now)


def test_expired_crl_refused(make_pki, example_xml, now) -> None:
    """A CRL past its next update is stale: it cannot say the certificate was not revoked since."""
    pki = make_pki(start=now - timedelta(days=100), rsa_department=False, node=False)
    stale = pki.trust()  # the CRL published at creation, good for 30 days
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    with pytest.raises(TrustError, match="CRL"):
        verify_document(signed, stale, now=now)
    assert verify_document(signed, _crl_covering(pki, now), now=now).signatures


def test_a_backdated_signature_does_not_get_past_a_stale_crl(make_pki, example_xml, now) -> None:
    """CRL freshness is judged on the verifier's clock, not on the signing time the signature claims: a document
    dated back to when the old CRL was current is still refused until a current CRL is at hand."""
    pki = make_pki(start=now - timedelta(days=100), rsa_department=False, node=False)
    stale = pki.trust()  # the CRL published at creation, good for 30 days: current 99 days ago, stale now
    back_then = now - timedelta(days=99)
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=back_then)
    with pytest.raises(TrustError, match="the CRL expired on"):
        verify_document(signed, stale, now=now)
    current = _crl_covering(pki, now)
    assert verify_document(signed, current, now=now).signatures[0].signed_at == back_then


@pytest.fixture
def revocable_pki(make_pki, now):
    return make_pki(start=now - timedelta(days=20), rsa_department=False, node=False)


def revoke(pki, code: str, reason: RevocationReason, at) -> None:
    entry = pki.authority.revoke(pki.serial(code), reason=reason, now=at)
    assert entry.reason == reason.value


def test_revoked_certificate_refused(revocable_pki, example_xml, now) -> None:
    pki = revocable_pki
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    before = pki.trust()
    assert verify_document(signed, before, now=now).signatures
    revoke(pki, "gd.gov.office", RevocationReason.UNSPECIFIED, now - timedelta(hours=1))
    with pytest.raises(TrustError, match="revoked"):
        verify_document(signed, pki.trust(), now=now)
    # the other departments are not affected
    other = sign_document(example_xml["request"], pki.signer("gd.gov.czt"), at=now)
    assert verify_document(other, pki.trust(), now=now).signatures


@pytest.mark.parametrize("reason", [RevocationReason.KEY_COMPROMISE, RevocationReason.UNSPECIFIED])
def test_compromised_key_voids_earlier_signatures(revocable_pki, example_xml, now, reason) -> None:
    pki = revocable_pki
    earlier = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now - timedelta(days=2))
    revoke(pki, "gd.gov.office", reason, now - timedelta(days=1))
    with pytest.raises(TrustError, match=reason.value):
        verify_document(earlier, pki.trust(), now=now)


@pytest.mark.parametrize(
    "reason",
    [RevocationReason.SUPERSEDED, RevocationReason.CESSATION_OF_OPERATION, RevocationReason.AFFILIATION_CHANGED],
)
def test_benign_revocation_keeps_earlier_signatures(revocable_pki, example_xml, now, reason) -> None:
    pki = revocable_pki
    earlier = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now - timedelta(days=2))
    later = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    revoke(pki, "gd.gov.office", reason, now - timedelta(days=1))
    trust = pki.trust()
    assert verify_document(earlier, trust, now=now).signatures[0].signed_at == now - timedelta(days=2)
    with pytest.raises(TrustError, match="revoked"):
        verify_document(later, trust, now=now)


def test_revocation_not_checked_only_when_told(revocable_pki, example_xml, now) -> None:
    pki = revocable_pki
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    revoke(pki, "gd.gov.office", RevocationReason.KEY_COMPROMISE, now - timedelta(hours=1))
    unchecked = TrustPolicy(pki.root, (), unsafe_skip_revocation=True)
    assert verify_document(signed, unchecked, now=now).signatures
    with pytest.raises(TrustError):
        verify_document(signed, pki.trust(), now=now)


def test_co_signing_refused_when_lead_is_revoked(revocable_pki, example_xml, now) -> None:
    pki = revocable_pki
    lead = sign_document(example_xml["joint-notice"], pki.signer("gd.gov.czt"), at=now - timedelta(days=2))
    revoke(pki, "gd.gov.czt", RevocationReason.KEY_COMPROMISE, now - timedelta(days=1))
    with pytest.raises(TrustError):
        sign_document(lead, pki.signer("gd.gov.gxt"), at=now, trust=pki.trust())


def test_reissued_key_signs_again(revocable_pki, example_xml, now) -> None:
    pki = revocable_pki
    revoke(pki, "gd.gov.office", RevocationReason.SUPERSEDED, now - timedelta(days=1))
    pki.issue("gd.gov.office", "广东省人民政府办公厅", usages=[Usage.SIGNING], now=now - timedelta(hours=2))
    signed = sign_document(example_xml["notice"], pki.signer("gd.gov.office"), at=now)
    assert verify_document(signed, pki.trust(), now=now).signatures[0].department == "gd.gov.office"


# --- loose ends ----------------------------------------------------------------------------------------------


def test_root_certificate_cannot_sign(pki, example_xml, now) -> None:
    root_key: PrivateKey = pki.authority._key
    with pytest.raises(ConfigError):
        sign_document(example_xml["notice"], Signer(root_key, pki.root), at=now)


def test_rsa_3072_department(make_pki, document_builder, now) -> None:
    pki = make_pki(departments={}, rsa_department=False, node=False)
    pki.issue("gd.gov.big", "大密钥厅", Role.DEPARTMENT, [Usage.SIGNING], now=now - timedelta(days=1),
              algorithm=KeyAlgorithm.RSA_3072)  # fmt: skip
    doc = document_builder(issuers=(Department("gd.gov.big"),), signature_names=("大密钥厅",))
    signed = sign_document(document_to_xml(doc), pki.signer("gd.gov.big"), at=now)
    assert verify_document(signed, pki.trust(), now=now).signatures[0].department == "gd.gov.big"
