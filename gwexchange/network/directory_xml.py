"""The directory's XML form (``gwexchange/schemas/directory.xsd``): written, signed by the authority, read back and
verified by a node against the one it holds.

Who signs the directory
    The root key only certifies (keyCertSign, cRLSign) and ``TrustPolicy.validate`` never accepts the root
    certificate as a signer, so the security centre signs directories with a department-style signing certificate
    issued to its *own* code — the root certificate's UID, e.g. ``gwx pki issue --code gd.gov.ca --name …
    --role department``. No role or usage is added to the PKI. ``verify_directory`` requires the signer's code to
    equal ``authority_code`` (``authority_code_of(root)``): the CA issues certificates under its own code to
    nobody but itself, so no department can publish a directory. The signer's certificate is validated at the
    verifier's clock ``now``, not at ``issued``: a directory is live data, and once its signing key is revoked or
    expired no directory it signed is taken any more.

Which directory a node takes (``verify_directory`` with the one it ``held``)
    Refused: an unsigned one, a bad signature, a signer other than the authority, one not yet valid (``issued``
    later than ``now`` plus five minutes of clock skew), an expired one (``now`` after ``expires``), an older
    serial (rollback), and the held serial with other content (two directories under one serial: the authority
    must raise the serial). The held serial with the *same* content — a re-delivery, even re-signed — is accepted
    as the same directory (``VerifiedDirectory.is_update`` is False: keep the one held). Only a higher serial is an
    update.

Errors: inconsistent content is a ``ConfigError``; a missing or broken signature a ``SignatureError``; the wrong
signer, a stale or future directory and a rollback are each a ``TrustError``, as a stale CRL is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import warnings
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gwexchange import xmlsafe
from gwexchange.crypto.certificates import Identity, Role, Usage, identity_of
from gwexchange.crypto.trust import TrustPolicy, ValidatedCertificate
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, Signer, sign_enveloped, verify_enveloped
from gwexchange.envelope import schema
from gwexchange.envelope.model import Classification
from gwexchange.envelope.times import format_utc, parse_utc
from gwexchange.errors import ConfigError, SignatureError, TrustError
from gwexchange.network.directory import (
    CLOCK_SKEW,
    DIRECTORY_NS,
    MAX_DIRECTORY_BYTES,
    DepartmentEntry,
    Directory,
    Link,
    NodeEntry,
    Zone,
    ZonePolicy,
    parse_endpoint,
)


def _q(local: str) -> str:
    """The qualified name of a directory element."""
    return _Q + local


_Q = "{" + DIRECTORY_NS + "}"


def directory_to_element(directory: Directory) -> etree._Element:
    """The unsigned ``dir:Directory`` element."""
    root = etree.Element(_q("Directory"), nsmap={"dir": DIRECTORY_NS})
    etree.SubElement(root, _q("Serial")).text = str(directory.serial)
    etree.SubElement(root, _q("Issued")).text = format_utc(directory.issued)
    etree.SubElement(root, _q("Expires")).text = format_utc(directory.expires)
    policy = etree.SubElement(root, _q("Policy"))
    for zone, limit in directory.policy.limits.items():
        etree.SubElement(policy, _q("Zone"), name=zone.value, max=limit.value)
    nodes = etree.SubElement(root, _q("Nodes"))
    for node in directory.nodes:
        el = etree.SubElement(nodes, _q("Node"), id=node.node_id, smtp=node.smtp_endpoint, zone=node.zone.value)
        etree.SubElement(el, _q("Certificate")).text = _cert_base64(node.certificate)
    departments = etree.SubElement(root, _q("Departments"))
    for dept in directory.departments:
        el = etree.SubElement(departments, _q("Department"), code=dept.code, name=dept.name, node=dept.home_node)
        etree.SubElement(el, _q("SigningCertificate")).text = _cert_base64(dept.signing_certificate)
        etree.SubElement(el, _q("EncryptionCertificate")).text = _cert_base64(dept.encryption_certificate)
    links = etree.SubElement(root, _q("Links"))
    for link in directory.links:
        etree.SubElement(links, _q("Link"), a=link.a, b=link.b, zone=link.zone.value)
    return root


def directory_to_xml(directory: Directory) -> bytes:
    """The unsigned XML form, as ``gwx directory build`` writes it."""
    root = directory_to_element(directory)
    schema.check_directory(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sign_directory(directory: Directory, signer: Signer, *, authority_code: str | None = None) -> bytes:
    """The signed XML form. The signer's certificate must be a department signing certificate; with
    ``authority_code``, one issued to that code (the check ``verify_directory`` makes)."""
    try:
        identity = identity_of(signer.certificate)
    except TrustError as e:
        raise ConfigError(f"the signing certificate is not one of this PKI's: {e}") from e
    if identity.role is not Role.DEPARTMENT:
        raise ConfigError(
            f"a directory is signed with the authority's department signing certificate, not a {identity.role} one"
        )
    if authority_code is not None and identity.code != authority_code:
        raise ConfigError(f"this is the certificate of {identity.code}; directories are signed by {authority_code}")
    root = directory_to_element(directory)
    sign_enveloped(root, signer)
    schema.check_directory(root)  # never hand out a directory a verifier would refuse
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sign_directory_xml(xml: bytes, signer: Signer, *, authority_code: str | None = None) -> bytes:
    """Sign the unsigned XML form that ``directory_to_xml`` wrote (read and checked again first)."""
    root = _parse(xml)
    if _signatures(root):
        raise ConfigError("this directory is already signed; build it again to change it")
    return sign_directory(_read(root), signer, authority_code=authority_code)


def read_unverified_directory(xml: bytes) -> Directory:
    """UNVERIFIED: the directory an XML form describes, signed or not, without looking at any signature.

    For showing a file and for signing a built one; a node takes a directory only from ``verify_directory``.
    """
    root = _parse(xml)
    signatures = _signatures(root)
    if signatures and (len(signatures) != 1 or signatures[0] is not root[-1]):
        raise SignatureError("a directory carries one signature, as its last element")
    return _read(root)


@dataclass(frozen=True, slots=True)
class VerifiedDirectory:
    """What ``verify_directory`` proved: this directory, signed by the authority, as these exact bytes."""

    directory: Directory
    signed_bytes: bytes
    signer: ValidatedCertificate
    is_update: bool
    """True when newer than the directory held (or none was held); False for the held one delivered again."""

    @property
    def signer_identity(self) -> Identity:
        return self.signer.identity

    @property
    def digest(self) -> str:
        """SHA-256 of the exact signed bytes."""
        return hashlib.sha256(self.signed_bytes).hexdigest()


def verify_directory(
    xml: bytes,
    trust: TrustPolicy,
    *,
    authority_code: str,
    now: datetime,
    held: Directory | None,
) -> VerifiedDirectory:
    """Verify a published directory before using it, against the one ``held`` (None: the first one).

    Raises ``SignatureError`` (unsigned, altered), ``TrustError`` (not the authority's, not yet valid, expired,
    older than or conflicting with the one held) or ``ConfigError`` (not a consistent directory).
    """
    root = _parse(xml)
    signatures = _signatures(root)
    if not signatures:
        raise SignatureError("the directory is not signed: a node takes only a directory the authority signed")
    if len(signatures) != 1 or signatures[0] is not root[-1]:
        raise SignatureError("a directory carries one signature, as its last element")
    signer = verify_enveloped(root, signatures[0], trust=trust, at=now, usage=Usage.SIGNING)
    if signer.identity.code != authority_code:
        raise TrustError(
            f"the directory is signed by {signer.identity.code}; only the authority {authority_code} publishes it"
        )
    directory = _read(root)
    if now < directory.issued - CLOCK_SKEW:
        raise TrustError(
            f"directory {directory.serial} is not valid yet: issued {format_utc(directory.issued)}, "
            f"now is {format_utc(now)}"
        )
    if now > directory.expires:
        raise TrustError(
            f"directory {directory.serial} expired on {format_utc(directory.expires)}: "
            "get the current directory from the security centre"
        )
    is_update = True
    if held is not None:
        if directory.serial < held.serial:
            raise TrustError(
                f"directory {directory.serial} is older than directory {held.serial} held here: refused (rollback)"
            )
        if directory.serial == held.serial:
            if directory != held:
                raise TrustError(
                    f"directory {directory.serial} differs from the directory {held.serial} held here under the same "
                    "serial: refused (the authority raises the serial with every change)"
                )
            is_update = False
    return VerifiedDirectory(directory=directory, signed_bytes=xml, signer=signer, is_update=is_update)


def _parse(xml: bytes) -> etree._Element:
    root = xmlsafe.parse(xml, max_bytes=MAX_DIRECTORY_BYTES)
    if root.tag != _q("Directory"):
        raise ConfigError(f"not a gwexchange directory (the root element must be dir:Directory in {DIRECTORY_NS})")
    schema.check_directory(root)
    return root


def _signatures(root: etree._Element) -> list[etree._Element]:
    return list(root.iter(SIGNATURE_TAG))


def _read(root: etree._Element) -> Directory:
    """The ``Directory`` of a schema-valid element (any signature is ignored here)."""

    def text(local: str) -> str:
        el = root.find(_q(local))
        return "" if el is None or el.text is None else el.text

    def time(local: str) -> datetime:
        t = parse_utc(text(local))
        if t is None:
            raise ConfigError(f"the directory's {local} time is malformed")
        return t

    def cert(parent: etree._Element, local: str, place: str) -> x509.Certificate:
        el = parent.find(_q(local))
        try:
            der = base64.b64decode("".join(((el.text or "") if el is not None else "").split()), validate=True)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return x509.load_der_x509_certificate(der)
        except (binascii.Error, ValueError, Warning) as e:
            raise ConfigError(f"{place}: the certificate is not DER X.509 in base64") from e

    limits = {
        Zone(z.get("name", "")): Classification(z.get("max", "")) for z in root.iterfind(f"{_q('Policy')}/{_q('Zone')}")
    }
    nodes = []
    for el in root.iterfind(f"{_q('Nodes')}/{_q('Node')}"):
        node_id = el.get("id", "")
        host, port = parse_endpoint(el.get("smtp", ""), f"node {node_id}")
        nodes.append(
            NodeEntry(
                node_id=node_id,
                smtp_host=host,
                smtp_port=port,
                zone=Zone(el.get("zone", "")),
                certificate=cert(el, "Certificate", f"node {node_id}"),
            )
        )
    departments = []
    for el in root.iterfind(f"{_q('Departments')}/{_q('Department')}"):
        code = el.get("code", "")
        departments.append(
            DepartmentEntry(
                code=code,
                name=el.get("name", ""),
                home_node=el.get("node", ""),
                signing_certificate=cert(el, "SigningCertificate", f"department {code}"),
                encryption_certificate=cert(el, "EncryptionCertificate", f"department {code}"),
            )
        )
    links = tuple(
        Link(el.get("a", ""), el.get("b", ""), Zone(el.get("zone", "")))
        for el in root.iterfind(f"{_q('Links')}/{_q('Link')}")
    )
    return Directory(
        serial=int(text("Serial")),
        issued=time("Issued"),
        expires=time("Expires"),
        policy=ZonePolicy(limits),
        nodes=tuple(nodes),
        departments=tuple(departments),
        links=links,
    )


def _cert_base64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


__all__ = [
    "VerifiedDirectory",
    "directory_to_element",
    "directory_to_xml",
    "read_unverified_directory",
    "sign_directory",
    "sign_directory_xml",
    "verify_directory",
]
