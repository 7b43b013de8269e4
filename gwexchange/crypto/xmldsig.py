"""Our XML-DSig profile: enveloped signatures over the whole document, and nothing else.

Signing and verifying both accept exactly one shape::

    <ds:Signature>
      <ds:SignedInfo>
        <ds:CanonicalizationMethod Algorithm="…xml-exc-c14n#"/>
        <ds:SignatureMethod Algorithm="…ecdsa-sha256 | …rsa-sha256"/>
        <ds:Reference URI="">
          <ds:Transforms>
            <ds:Transform Algorithm="…#enveloped-signature"/>
            <ds:Transform Algorithm="…xml-exc-c14n#"/>
          </ds:Transforms>
          <ds:DigestMethod Algorithm="…xmlenc#sha256"/>
          <ds:DigestValue>…</ds:DigestValue>
        </ds:Reference>
      </ds:SignedInfo>
      <ds:SignatureValue>…</ds:SignatureValue>
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>…</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </ds:Signature>

placed as a child of the document element. Any other algorithm, transform, reference, attribute or element is
refused before any digest is computed, so XSLT, XPath, external references, SHA-1 and MD5 never run. The
certificate in KeyInfo is only a claim: ``verify_enveloped`` hands it to the trust policy before returning.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gwexchange.crypto.algorithms import Canonicalization, Digest, SignatureMethod, Transform
from gwexchange.crypto.certificates import Usage
from gwexchange.crypto.suite import INTERNATIONAL, PrivateKey, Suite
from gwexchange.crypto.trust import TrustPolicy, ValidatedCertificate
from gwexchange.errors import ConfigError, SignatureError

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
_DS = "{" + DSIG_NS + "}"
SIGNATURE_TAG = _DS + "Signature"
_SIGNATURE_ATTRS = frozenset({"Id"})
_REFERENCE_ATTRS = frozenset({"URI", "Id"})
_TRANSFORMS = (Transform.ENVELOPED_SIGNATURE.value, Transform.EXCLUSIVE_C14N.value)


@dataclass(frozen=True)
class Signer:
    """A private key with the certificate that vouches for it, and the suite to sign under."""

    key: PrivateKey
    certificate: x509.Certificate
    suite: Suite = INTERNATIONAL

    certificate_base64: str = field(init=False, repr=False)  # as X509Certificate carries it, made once

    def __post_init__(self) -> None:
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if self.key.public_key().public_bytes(*spki) != self.certificate.public_key().public_bytes(*spki):
            raise ConfigError("the private key does not belong to the certificate")
        self.suite.signature_method_for(self.key)
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        object.__setattr__(self, "certificate_base64", base64.b64encode(der).decode("ascii"))


def _canonicalize(element: etree._Element) -> bytes:
    """Exclusive XML Canonicalization 1.0, without comments."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def sign_enveloped(root: etree._Element, signer: Signer) -> etree._Element:
    """Append an enveloped signature over ``root``'s whole document to ``root``; return the Signature element."""
    suite = signer.suite
    method = suite.signature_method_for(signer.key)
    signature = etree.SubElement(root, SIGNATURE_TAG, nsmap={"ds": DSIG_NS})
    signed_info = etree.SubElement(signature, _DS + "SignedInfo")
    etree.SubElement(signed_info, _DS + "CanonicalizationMethod", Algorithm=suite.canonicalization.value)
    etree.SubElement(signed_info, _DS + "SignatureMethod", Algorithm=method.value)
    reference = etree.SubElement(signed_info, _DS + "Reference", URI="")
    transforms = etree.SubElement(reference, _DS + "Transforms")
    for algorithm in _TRANSFORMS:
        etree.SubElement(transforms, _DS + "Transform", Algorithm=algorithm)
    etree.SubElement(reference, _DS + "DigestMethod", Algorithm=suite.digest.value)
    digest_value = etree.SubElement(reference, _DS + "DigestValue")
    signature_value = etree.SubElement(signature, _DS + "SignatureValue")
    key_info = etree.SubElement(signature, _DS + "KeyInfo")
    x509_data = etree.SubElement(key_info, _DS + "X509Data")
    etree.SubElement(x509_data, _DS + "X509Certificate").text = signer.certificate_base64

    digest_value.text = base64.b64encode(suite.digest_bytes(_document_without(root, signature))).decode("ascii")
    _, value = suite.sign(signer.key, _canonicalize(signed_info))
    signature_value.text = base64.b64encode(value).decode("ascii")
    return signature


def verify_enveloped(
    root: etree._Element,
    signature: etree._Element,
    *,
    trust: TrustPolicy,
    at: datetime,
    usage: Usage = Usage.SIGNING,
    suite: Suite = INTERNATIONAL,
) -> ValidatedCertificate:
    """Verify one enveloped signature (a child of ``root``) made at time ``at``.

    Returns the signer's certificate, validated by ``trust`` for ``usage`` at ``at``; raises ``SignatureError``
    or ``TrustError`` otherwise. The caller removes from ``root`` anything added after this signature.
    """
    if signature.getparent() is not root:
        raise SignatureError("a signature must be a direct child of the document element")
    _only_attributes(signature, _SIGNATURE_ATTRS)
    signed_info, signature_value, key_info = _children(signature, ("SignedInfo", "SignatureValue", "KeyInfo"))
    _only_attributes(signed_info, frozenset())
    c14n_method, signature_method, reference = _children(
        signed_info, ("CanonicalizationMethod", "SignatureMethod", "Reference")
    )
    _algorithm(c14n_method, {suite.canonicalization.value}, "canonicalization")
    method = SignatureMethod(_algorithm(signature_method, {m.value for m in suite.signature_methods}, "signature"))
    _only_attributes(reference, _REFERENCE_ATTRS)
    if reference.get("URI") != "":
        raise SignatureError(
            'the reference must be URI="" (the whole document); external and ID references are refused'
        )
    transforms, digest_method, digest_value = _children(reference, ("Transforms", "DigestMethod", "DigestValue"))
    _only_attributes(transforms, frozenset())
    found = tuple(_algorithm(t, set(_TRANSFORMS), "transform") for t in _children(transforms, ("Transform",) * 2))
    if found != _TRANSFORMS:
        raise SignatureError("transforms must be exactly enveloped-signature then exclusive C14N")
    _algorithm(digest_method, {suite.digest.value}, "digest")
    expected_digest = _base64(digest_value, "DigestValue")
    _only_attributes(key_info, frozenset())
    (x509_data,) = _children(key_info, ("X509Data",))
    _only_attributes(x509_data, frozenset())
    (x509_certificate,) = _children(x509_data, ("X509Certificate",))
    _only_attributes(x509_certificate, frozenset())
    cert_der = _base64(x509_certificate, "X509Certificate")
    value = _base64(signature_value, "SignatureValue")
    _only_attributes(signature_value, _SIGNATURE_ATTRS)

    if suite.digest_bytes(_document_without(root, signature)) != expected_digest:
        raise SignatureError("the document's digest does not match: the signed content was changed")
    validated = trust.validate(cert_der, usage=usage, at=at)
    public = validated.certificate.public_key()
    suite.verify(public, method, value, _canonicalize(signed_info))  # type: ignore[arg-type]
    return validated


def _document_without(root: etree._Element, signature: etree._Element) -> bytes:
    """The enveloped-signature transform then exclusive C14N: the document as if ``signature`` were not there.

    lxml keeps an element's tail text with the element; in the XPath data model the text after the Signature
    stays in the document, so it is moved to the previous node for the duration of the canonicalization.
    """
    parent = signature.getparent()
    if parent is None:
        raise SignatureError("a signature must sit inside the document it signs")
    index = parent.index(signature)
    previous = signature.getprevious()
    tail = signature.tail
    saved = previous.tail if previous is not None else parent.text
    if tail:
        if previous is not None:
            previous.tail = (saved or "") + tail
        else:
            parent.text = (saved or "") + tail
    parent.remove(signature)
    try:
        return _canonicalize(root)
    finally:
        parent.insert(index, signature)
        signature.tail = tail
        if previous is not None:
            previous.tail = saved
        else:
            parent.text = saved


def _children(element: etree._Element, names: tuple[str, ...]) -> list[etree._Element]:
    """Exactly the named ds: children, in order; only whitespace text around them."""
    if element.text and element.text.strip():
        raise SignatureError(f"unexpected text inside ds:{etree.QName(element).localname}")
    children = list(element)
    tags = [c.tag for c in children]
    if tags != [_DS + n for n in names]:
        got = ", ".join(etree.QName(c).localname if isinstance(c.tag, str) else "?" for c in children)
        raise SignatureError(
            f"ds:{etree.QName(element).localname} must contain exactly {', '.join(names)}; found {got or 'nothing'}"
        )
    for child in children:
        if child.tail and child.tail.strip():
            raise SignatureError(f"unexpected text after ds:{etree.QName(child).localname}")
    return children


def _only_attributes(element: etree._Element, allowed: frozenset[str]) -> None:
    extra = set(element.attrib) - allowed
    if extra:
        raise SignatureError(f"ds:{etree.QName(element).localname} has attributes outside the profile: {sorted(extra)}")


def _algorithm(element: etree._Element, allowed: set[str], what: str) -> str:
    _only_attributes(element, frozenset({"Algorithm"}))
    if len(element) or (element.text and element.text.strip()):
        raise SignatureError(f"the {what} algorithm element must be empty (no parameters are accepted)")
    algorithm = element.get("Algorithm", "")
    if algorithm not in allowed:
        raise SignatureError(f"{what} algorithm {algorithm or '(none)'} is not accepted")
    return algorithm


def _base64(element: etree._Element, what: str) -> bytes:
    if len(element):
        raise SignatureError(f"ds:{what} must hold only base64 text")
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except ValueError as e:  # binascii.Error, or non-ASCII characters
        raise SignatureError(f"ds:{what} is not valid base64") from e


__all__ = [
    "DSIG_NS",
    "SIGNATURE_TAG",
    "Canonicalization",
    "Digest",
    "Signer",
    "sign_enveloped",
    "verify_enveloped",
]
