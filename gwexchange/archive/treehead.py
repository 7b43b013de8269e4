"""Signed tree heads: a node's signed statement "my log had SIZE entries with root ROOT at TIME".

**What is signed.** Exactly these ASCII bytes, five lines each ending in LF, nothing else::

    gwexchange-tree-head-v1
    node gd-hub
    size 1000000
    root 5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328
    time 2026-11-20T08:00:00.123Z

the node id (lower-case letters, digits and '-': ``codes.NODE_ID``), the size in decimal without
leading zeros, the RFC 9162 root hash (SHA-256) in lower-case hex and the time in UTC. The first line names the
format and, with it, the tree's hashing (RFC 9162, SHA-256). The bytes are signed with the node's key under its
suite (ECDSA-SHA256 with r‖s, or RSA-SHA256 PKCS#1 v1.5, as in XML-DSig) and verified with the certificate that
travels with the head, which the trust policy must accept for ``Usage.NODE`` at the head's time and whose
identity code must be the node id.

**Time.** Whole milliseconds, UTC (RFC 9162 counts tree-head time in milliseconds too): ``sign_tree_head`` rounds
the given time down to the millisecond, and a node signs heads at strictly increasing times, so two heads of one
node never share a time. Written ``YYYY-MM-DDTHH:MM:SS.mmmZ`` — always three digits — everywhere.

**Keeping heads** and checking them against what peers saw: ``head_store``.

**On the wire** (envelopes will carry the sending node's latest head)::

    <th:TreeHead xmlns:th="urn:gwexchange:treehead:1" node="gd-hub" size="1000000"
                 time="2026-11-20T08:00:00.123Z">
      <th:RootHash>5dc9…4328</th:RootHash>
      <th:Signature Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256">base64</th:Signature>
      <th:Certificate>base64 DER</th:Certificate>
    </th:TreeHead>

parsed only through ``xmlsafe.parse`` and refused unless it is exactly this shape.

"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from gwexchange import xmlsafe
from gwexchange.archive.merkle import HASH_SIZE, TreeState, verify_consistency
from gwexchange.codes import check_node_id
from gwexchange.crypto.algorithms import SignatureMethod
from gwexchange.crypto.certificates import Role, Usage, identity_of
from gwexchange.crypto.suite import INTERNATIONAL, Suite
from gwexchange.crypto.trust import TrustPolicy, ValidatedCertificate
from gwexchange.crypto.xmldsig import Signer
from gwexchange.errors import ConfigError, InputError, SignatureError, TrustError, VerificationError

SIGNED_FORMAT = b"gwexchange-tree-head-v1"
TREEHEAD_NS = "urn:gwexchange:treehead:1"
_Q = "{" + TREEHEAD_NS + "}"
MAX_TREE_SIZE = (1 << 63) - 1
MAX_CERTIFICATE_BYTES = 16 * 1024
MAX_SIGNATURE_BYTES = 1024
MAX_XML_BYTES = 64 * 1024
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_JSON_KEYS = ("node", "size", "root", "time", "method", "signature", "certificate")


# --- time ------------------------------------------------------------------------------------------------------


def head_time(at: datetime) -> datetime:
    """``at`` in UTC, rounded down to the whole millisecond: the resolution of tree-head times."""
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InputError("a tree head's time must be a timezone-aware datetime")
    at = at.astimezone(UTC)
    return at.replace(microsecond=at.microsecond - at.microsecond % 1000)


def format_head_time(t: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{t.microsecond // 1000:03d}Z"


def parse_head_time(text: str) -> datetime:
    """The time ``text`` names in exactly the form ``format_head_time`` writes; ``InputError`` otherwise."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise InputError(f"tree head time {text!r} is not of the form 2026-11-20T08:00:00.000Z")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as e:
        raise InputError(f"tree head time {text!r} is not a real time") from e


# --- the signed tree head --------------------------------------------------------------------------------------


def signed_bytes(node_id: str, size: int, root_hash: bytes, timestamp: datetime) -> bytes:
    """The exact bytes a tree head's signature covers (see the module docstring)."""
    return (
        f"{SIGNED_FORMAT.decode('ascii')}\nnode {node_id}\nsize {size}\nroot {root_hash.hex()}\n"
        f"time {format_head_time(timestamp)}\n"
    ).encode("ascii")


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """A tree head as signed: who, how many entries, which root, when; the signature and the signer's certificate.

    Constructing one checks the form of every field (``InputError``), not the signature: that is
    ``verify_tree_head``'s job.
    """

    node_id: str
    size: int
    root_hash: bytes
    timestamp: datetime  # UTC, whole milliseconds
    method: SignatureMethod
    signature: bytes
    certificate: bytes  # DER

    def __post_init__(self) -> None:
        check_node_id(self.node_id)
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise InputError(f"tree size {self.size!r} is not a whole number from 0 to 2^63 - 1")
        if type(self.root_hash) is not bytes or len(self.root_hash) != HASH_SIZE:
            raise InputError("a tree head's root hash is 32 bytes")
        if not isinstance(self.timestamp, datetime) or head_time(self.timestamp) != self.timestamp:
            raise InputError("a tree head's time is a UTC datetime in whole milliseconds")
        if self.timestamp.tzinfo is not UTC:
            object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))
        if not isinstance(self.method, SignatureMethod):
            raise InputError(f"signature method {self.method!r} is not one gwexchange knows")
        if type(self.signature) is not bytes or not 0 < len(self.signature) <= MAX_SIGNATURE_BYTES:
            raise InputError("a tree head's signature is missing or too long")
        if type(self.certificate) is not bytes or not 0 < len(self.certificate) <= MAX_CERTIFICATE_BYTES:
            raise InputError("a tree head's certificate is missing or too long")

    @property
    def signed_bytes(self) -> bytes:
        return signed_bytes(self.node_id, self.size, self.root_hash, self.timestamp)

    @property
    def time_text(self) -> str:
        return format_head_time(self.timestamp)

    @property
    def state(self) -> TreeState:
        return TreeState(self.size, self.root_hash)


@dataclass(frozen=True, slots=True)
class VerifiedTreeHead:
    """A tree head whose signature verified with a certificate the trust policy accepted for this node."""

    head: SignedTreeHead
    signer: ValidatedCertificate

    @property
    def node_id(self) -> str:
        return self.head.node_id

    @property
    def size(self) -> int:
        return self.head.size

    @property
    def root_hash(self) -> bytes:
        return self.head.root_hash

    @property
    def timestamp(self) -> datetime:
        return self.head.timestamp


def sign_tree_head(state: TreeState, signer: Signer, node_id: str, at: datetime) -> SignedTreeHead:
    """Sign ``state`` as node ``node_id`` at ``at`` (rounded down to the millisecond) with the node's signer.

    The signer's certificate must name ``node_id`` (its identity code): a head another node's key signed
    would never verify. Sign committed states only (``MerkleLog.flush`` returns one).
    """
    check_node_id(node_id)
    try:
        identity = identity_of(signer.certificate)
    except TrustError as e:
        raise ConfigError(f"the signer's certificate does not name a node: {e}") from e
    if identity.role is not Role.NODE:
        raise ConfigError(f"the signer's certificate is a {identity.role} certificate, not a node's")
    if identity.code != node_id:
        raise ConfigError(f"the signer's certificate is {identity.code}'s, not node {node_id}'s")
    timestamp = head_time(at)
    method, signature = signer.suite.sign(signer.key, signed_bytes(node_id, state.size, state.root, timestamp))
    return SignedTreeHead(
        node_id=node_id,
        size=state.size,
        root_hash=state.root,
        timestamp=timestamp,
        method=method,
        signature=signature,
        certificate=signer.certificate.public_bytes(serialization.Encoding.DER),
    )


def verify_tree_head(
    head: SignedTreeHead, trust: TrustPolicy, *, at: datetime | None = None, suite: Suite = INTERNATIONAL
) -> VerifiedTreeHead:
    """Verify ``head``'s signature and signer: a node certificate the trust policy accepts at ``at`` (default:
    the head's own time) whose identity code is the head's node id. Raises ``TrustError`` or ``SignatureError``.
    """
    try:
        validated = trust.validate(head.certificate, usage=Usage.NODE, at=head.timestamp if at is None else at)
    except x509.InvalidVersion as e:  # not a ValueError: cryptography raises it for a bad version field
        raise TrustError("the tree head's certificate is not valid DER X.509") from e
    if validated.identity.code != head.node_id:
        raise SignatureError(
            f"the tree head names node {head.node_id}, but node {validated.identity.code}'s certificate signed it"
        )
    key = validated.certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise SignatureError("the tree head's certificate holds a key type gwexchange does not verify")
    suite.verify(key, head.method, head.signature, head.signed_bytes)
    return VerifiedTreeHead(head=head, signer=validated)


def verify_consistent_heads(
    older: SignedTreeHead, newer: SignedTreeHead, proof: list[bytes] | tuple[bytes, ...], trust: TrustPolicy
) -> tuple[VerifiedTreeHead, VerifiedTreeHead]:
    """Verify two heads of one node and the RFC 9162 proof that ``older``'s tree is a prefix of ``newer``'s.

    What a peer holding ``older`` does with the node's latest head and the proof it gets: a failure means the
    node rewrote or forked its history after signing ``older`` (both heads carry its signature).
    """
    first, second = verify_tree_head(older, trust), verify_tree_head(newer, trust)
    if older.node_id != newer.node_id:
        raise VerificationError(f"the heads are of two nodes, {older.node_id} and {newer.node_id}")
    if newer.timestamp < older.timestamp or (newer.timestamp == older.timestamp and newer != older):
        raise VerificationError(
            f"node {older.node_id} signed a head at {newer.time_text} that is not later than {older.time_text}"
        )
    if newer.size < older.size:
        raise VerificationError(
            f"node {older.node_id} signed {older.size} entries at {older.time_text} and only {newer.size} "
            f"later at {newer.time_text}: its log lost entries"
        )
    try:
        verify_consistency(older.size, newer.size, older.root_hash, newer.root_hash, proof)
    except VerificationError as e:
        raise VerificationError(
            f"node {older.node_id}'s heads of {older.time_text} (size {older.size}) and {newer.time_text} "
            f"(size {newer.size}) are not consistent — a forked or rewritten history: {e}"
        ) from e
    return first, second


# --- the heads a node keeps ------------------------------------------------------------------------------------


def head_to_line(head: SignedTreeHead) -> bytes:
    """The canonical JSON line of ``head`` (without the newline): fixed key order, no spaces, lower-case hex."""
    record = {
        "node": head.node_id,
        "size": head.size,
        "root": head.root_hash.hex(),
        "time": head.time_text,
        "method": head.method.value,
        "signature": head.signature.hex(),
        "certificate": head.certificate.hex(),
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def parse_head_line(line: bytes) -> SignedTreeHead:
    """The head a ``heads`` file line holds; ``VerificationError`` unless the line is exactly its canonical form."""
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or tuple(record) != _JSON_KEYS:
            raise VerificationError("a tree head line must have exactly the keys " + ", ".join(_JSON_KEYS))
        texts = {k: record[k] for k in _JSON_KEYS if k != "size"}
        if not all(type(v) is str for v in texts.values()) or not _HEX_HASH.fullmatch(texts["root"]):
            raise VerificationError("a tree head line has a field of the wrong form")
        head = SignedTreeHead(
            node_id=texts["node"],
            size=record["size"],
            root_hash=bytes.fromhex(texts["root"]),
            timestamp=parse_head_time(texts["time"]),
            method=SignatureMethod(texts["method"]),
            signature=bytes.fromhex(texts["signature"]),
            certificate=bytes.fromhex(texts["certificate"]),
        )
    except (ValueError, InputError, RecursionError) as e:  # JSONDecodeError and bad hex are ValueErrors; deep nesting
        raise VerificationError(f"a tree head line is malformed: {e}") from e
    if head_to_line(head) != line:
        raise VerificationError("a tree head line is not in its canonical form: it was changed")
    return head


# --- XML ---------------------------------------------------------------------------------------------------------


def tree_head_to_element(head: SignedTreeHead) -> etree._Element:
    """``th:TreeHead``, to stand alone or inside an envelope."""
    el = etree.Element(
        _Q + "TreeHead",
        {"node": head.node_id, "size": str(head.size), "time": head.time_text},
        nsmap={"th": TREEHEAD_NS},
    )
    etree.SubElement(el, _Q + "RootHash").text = head.root_hash.hex()
    etree.SubElement(el, _Q + "Signature", Algorithm=head.method.value).text = base64.b64encode(head.signature).decode(
        "ascii"
    )
    etree.SubElement(el, _Q + "Certificate").text = base64.b64encode(head.certificate).decode("ascii")
    return el


def tree_head_to_xml(head: SignedTreeHead) -> bytes:
    return etree.tostring(tree_head_to_element(head), xml_declaration=True, encoding="UTF-8")


def tree_head_from_xml(data: bytes) -> SignedTreeHead:
    """Parse a standalone ``th:TreeHead`` (through ``xmlsafe.parse``); ``InputError`` unless it is exactly our form.

    The signature is not checked here: ``verify_tree_head``.
    """
    return tree_head_from_element(xmlsafe.parse(data, max_bytes=MAX_XML_BYTES, max_depth=4))


def tree_head_from_element(el: etree._Element) -> SignedTreeHead:
    """Read a ``th:TreeHead`` element already parsed by ``xmlsafe.parse`` (e.g. inside an envelope)."""
    if el.tag != _Q + "TreeHead":
        raise InputError(f"not a tree head (expected th:TreeHead in {TREEHEAD_NS})")
    if set(el.attrib) != {"node", "size", "time"}:
        raise InputError("th:TreeHead has exactly the attributes node, size and time")
    if (el.text and el.text.strip()) or (el.tail and el.tail.strip()):
        raise InputError("th:TreeHead holds only its three child elements")
    children = list(el)
    if [c.tag for c in children] != [_Q + "RootHash", _Q + "Signature", _Q + "Certificate"]:
        raise InputError("th:TreeHead must contain exactly RootHash, Signature and Certificate, in that order")
    root_el, signature_el, certificate_el = children
    for child, allowed in ((root_el, set()), (signature_el, {"Algorithm"}), (certificate_el, set())):
        if set(child.attrib) != allowed or len(child) or (child.tail and child.tail.strip()):
            raise InputError(f"th:{etree.QName(child).localname} has unexpected attributes or content")
    size_text = el.get("size", "")
    if not _DECIMAL.fullmatch(size_text):
        raise InputError(f"tree size {el.get('size')!r} is not a decimal number without leading zeros")
    root_text = root_el.text or ""
    if not _HEX_HASH.fullmatch(root_text):
        raise InputError("th:RootHash is 64 lower-case hex digits")
    try:
        method = SignatureMethod(signature_el.get("Algorithm", ""))
    except ValueError as e:
        raise InputError(f"signature algorithm {signature_el.get('Algorithm')!r} is not accepted") from e
    return SignedTreeHead(
        node_id=el.get("node", ""),
        size=int(size_text),
        root_hash=bytes.fromhex(root_text),
        timestamp=parse_head_time(el.get("time", "")),
        method=method,
        signature=_canonical_base64(signature_el.text, "th:Signature"),
        certificate=_canonical_base64(certificate_el.text, "th:Certificate"),
    )


def _canonical_base64(text: str | None, what: str) -> bytes:
    text = text or ""
    try:
        value = base64.b64decode(text, validate=True)
    except ValueError as e:  # binascii.Error, or a non-ASCII character
        raise InputError(f"{what} is not base64") from e
    if base64.b64encode(value).decode("ascii") != text:
        raise InputError(f"{what} is not canonical base64 (one line, no spaces, padded, no stray bits)")
    return value


__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "MAX_SIGNATURE_BYTES",
    "MAX_TREE_SIZE",
    "MAX_XML_BYTES",
    "SIGNED_FORMAT",
    "TREEHEAD_NS",
    "SignedTreeHead",
    "VerifiedTreeHead",
    "format_head_time",
    "head_time",
    "head_to_line",
    "parse_head_line",
    "parse_head_time",
    "sign_tree_head",
    "signed_bytes",
    "tree_head_from_element",
    "tree_head_from_xml",
    "tree_head_to_element",
    "tree_head_to_xml",
    "verify_consistent_heads",
    "verify_tree_head",
]
