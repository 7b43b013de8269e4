"""Signed tree heads: a node's signed statement "my log had SIZE entries with root ROOT at TIME".

**What is signed.** Exactly these ASCII bytes, five lines each ending in LF, nothing else::

    gwexchange-tree-head-v1
    node gd-hub.gov
    size 1000000
    root 5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328
    time 2026-11-20T08:00:00.123Z

the node id (lower-case letters, digits, '-' and '.', as directory codes are), the size in decimal without
leading zeros, the RFC 9162 root hash (SHA-256) in lower-case hex and the time in UTC. The first line names the
format and, with it, the tree's hashing (RFC 9162, SHA-256). The bytes are signed with the node's key under its
suite (ECDSA-SHA256 with r‖s, or RSA-SHA256 PKCS#1 v1.5, as in XML-DSig) and verified with the certificate that
travels with the head, which the trust policy must accept for ``Usage.NODE`` at the head's time and whose
identity code must be the node id.

**Time.** Whole milliseconds, UTC (RFC 9162 counts tree-head time in milliseconds too): ``sign_tree_head`` rounds
the given time down to the millisecond, and a node signs heads at strictly increasing times, so two heads of one
node never share a time. Written ``YYYY-MM-DDTHH:MM:SS.mmmZ`` — always three digits — everywhere.

**Keeping heads.** ``TreeHeadStore`` is the append-only file of the heads a node signed (``heads`` in the log
directory): one canonical JSON line per head, fsync'd before ``add`` returns, so no head leaves the node that
is not kept. It refuses a head that is not strictly later than the last, covers fewer entries, or — given the log
— whose root is not the log's at its size or is not consistent with the last head. A line that differs from the
canonical form of what it parses to in any byte is damaged: a kept head has exactly one encoding.

**On the wire** (envelopes will carry the sending node's latest head)::

    <th:TreeHead xmlns:th="urn:gwexchange:treehead:1" node="gd-hub.gov" size="1000000"
                 time="2026-11-20T08:00:00.123Z">
      <th:RootHash>5dc9…4328</th:RootHash>
      <th:Signature Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256">base64</th:Signature>
      <th:Certificate>base64 DER</th:Certificate>
    </th:TreeHead>

parsed only through ``xmlsafe.parse`` and refused unless it is exactly this shape.

**Detecting a rewritten history.** A peer that holds an older head signed by this node asks for consistency:
``check_against_peer_view`` (on the node) verifies that head, that the node's log still has that root at that
size, and gives the consistency proof to the node's latest head; ``verify_consistent_heads`` (on the peer, or an
auditor) checks both heads' signatures and the proof. Two heads of one node that no consistency proof joins are
the node's signed evidence of a fork.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

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


class LogView(Protocol):
    """What the tree-head functions need of a log (``log.MerkleLog`` is one)."""

    @property
    def size(self) -> int: ...

    @property
    def committed(self) -> TreeState: ...

    def root(self, size: int | None = None) -> bytes: ...

    def consistency_proof(self, m: int, n: int | None = None) -> list[bytes]: ...

    def flush(self) -> TreeState: ...


class TreeHeadStore:
    """The append-only file of the heads a node signed, newest last. One process writes it (the log's owner).

    Opening cuts off a torn last line (a head whose ``add`` never returned, so never handed out). Only the last
    head is held in memory; ``__iter__`` reads the file again.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._latest: SignedTreeHead | None = None
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(self.path, "a+b") as f:
                last = _last_line(f)
        except OSError as e:
            raise ConfigError(f"cannot open the tree heads in {self.path}: {e}") from e
        if last is not None:
            self._latest = parse_head_line(last)

    @property
    def latest(self) -> SignedTreeHead | None:
        return self._latest

    def __iter__(self) -> Iterator[SignedTreeHead]:
        """Every kept head, oldest first; ``VerificationError`` at a damaged line."""
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f):
                if not raw.endswith(b"\n"):
                    raise VerificationError(f"tree head {number} in {self.path} is cut off")
                yield parse_head_line(raw[:-1])

    def add(self, head: SignedTreeHead, log: LogView | None = None) -> None:
        """Keep ``head``, durably, if it may follow the last one; with ``log``, only if it is the log's (committed)
        state and consistent with the last head."""
        latest = self._latest
        if latest is not None:
            if head.node_id != latest.node_id:
                raise InputError(f"these heads are node {latest.node_id}'s, not {head.node_id}'s")
            if head.timestamp <= latest.timestamp:
                raise InputError(
                    f"a new tree head must be later than the last one ({latest.time_text}), not {head.time_text}"
                )
            if head.size < latest.size:
                raise InputError(f"a new tree head cannot cover fewer entries ({head.size}) than the last one")
        if log is not None:
            if head.size > log.committed.size:
                raise InputError(
                    f"the head covers {head.size} entries, the log has committed {log.committed.size}: flush it first"
                )
            if log.root(head.size) != head.root_hash:
                raise VerificationError(f"the head's root is not the log's root at size {head.size}")
            if latest is not None:
                verify_consistency(
                    latest.size,
                    head.size,
                    latest.root_hash,
                    head.root_hash,
                    log.consistency_proof(latest.size, head.size),
                )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                data = memoryview(head_to_line(head) + b"\n")
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise ConfigError(f"cannot keep the tree head in {self.path}: {e}") from e
        self._latest = head

    def sign(self, log: LogView, signer: Signer, node_id: str, at: datetime) -> SignedTreeHead:
        """Commit ``log``, sign its state as ``node_id`` at ``at``, keep the head and return it."""
        state = log.flush()
        head = sign_tree_head(state, signer, node_id, at)
        self.add(head, log)
        return head


def read_heads(path: Path) -> list[SignedTreeHead]:
    """The heads in a heads file, read only: a torn last line (being written now) is left out, not cut off."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    return [parse_head_line(line) for line in lines[:-1]]  # what follows the last newline is not whole yet


def contradiction(earlier: SignedTreeHead, later: SignedTreeHead) -> str | None:
    """What a later signed head of the same node says against an earlier one, seen without its log: fewer entries
    (history cut), the same size under another root (two views of one log), or a time before the earlier one's.
    A larger head with another root is consistent or not only by a proof from the log: the audit's job."""
    if later.size < earlier.size:
        return f"shrinking: {later.size} entries at {later.time_text} after {earlier.size} at {earlier.time_text}"
    if later.size == earlier.size and later.root_hash != earlier.root_hash:
        return f"split view: two roots for {later.size} entries ({earlier.time_text} and {later.time_text})"
    if later.timestamp < earlier.timestamp:
        return f"time went back: {later.time_text} after {earlier.time_text}"
    return None


def contradictions(heads: Iterable[SignedTreeHead]) -> list[tuple[str, str]]:
    """(node, what) for each head in ``heads`` (in the order kept) that contradicts the one before it of its node."""
    last: dict[str, SignedTreeHead] = {}
    found = []
    for head in heads:
        before = last.get(head.node_id)
        said = contradiction(before, head) if before is not None else None
        if said is not None:
            found.append((head.node_id, said))
        last[head.node_id] = head
    return found


class PeerHeads:
    """The heads a node received from its peers (one ``head_to_line`` line each, in the order received): the
    evidence an auditor later holds against each peer's log. ``keep`` appends a verified head unless it is the
    last one kept from that node; a head that contradicts earlier ones is kept too — it is the evidence.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._last: dict[str, SignedTreeHead] = {}
        try:
            with open(self.path, "a+b") as f:
                _last_line(f)  # cut off a torn last line
                f.seek(0)
                for raw in f:
                    head = parse_head_line(raw.rstrip(b"\n"))
                    self._last[head.node_id] = head
        except OSError as e:
            raise ConfigError(f"cannot open the peers' tree heads in {self.path}: {e}") from e

    def last(self, node_id: str) -> SignedTreeHead | None:
        return self._last.get(node_id)

    def __iter__(self) -> Iterator[SignedTreeHead]:
        with open(self.path, "rb") as f:
            for raw in f:
                yield parse_head_line(raw.rstrip(b"\n"))

    def keep(self, head: SignedTreeHead, peer: str, trust: TrustPolicy) -> bool:
        """Keep ``head``, sent by node ``peer``, if it verifies and is news; return whether it was kept."""
        if head.node_id != peer:
            raise VerificationError(f"node {peer} sent a tree head of node {head.node_id}")
        if self._last.get(peer) == head:
            return False
        verify_tree_head(head, trust)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, head_to_line(head) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise ConfigError(f"cannot keep a peer's tree head in {self.path}: {e}") from e
        self._last[peer] = head
        return True


def _last_line(f: _SeekableFile) -> bytes | None:
    """The last complete line of ``f`` (without its newline); a torn last line is cut off the file first."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return None
    block = 4096
    while True:
        start = max(0, size - block)
        f.seek(start)
        data = f.read(size - start)
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n")
            if cut < 0 and start > 0:
                block *= 2
                continue
            f.truncate(start + cut + 1)
            size = start + cut + 1
            if size == 0:
                return None
            continue
        begin = data.rfind(b"\n", 0, len(data) - 1)
        if begin < 0 and start > 0:
            block *= 2
            continue
        return data[begin + 1 : -1]


class _SeekableFile(Protocol):
    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def read(self, size: int = ..., /) -> bytes: ...

    def truncate(self, size: int | None = ..., /) -> int: ...


# --- consistency with what peers saw ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerViewCheck:
    """The node's answer to a head a peer holds: that head verified, the state it is proved to be a prefix of
    (the node's latest kept head when there is one, else its committed log) and the RFC 9162 proof."""

    peer_head: VerifiedTreeHead
    latest_head: SignedTreeHead | None
    state: TreeState
    proof: tuple[bytes, ...]


def check_against_peer_view(
    log: LogView,
    peer_head: SignedTreeHead,
    trust: TrustPolicy,
    *,
    node_id: str,
    own_heads: TreeHeadStore | None = None,
) -> PeerViewCheck:
    """Check a head a peer holds, signed by this node (``node_id``), against the node's log and kept heads.

    Raises ``VerificationError`` when this node's history no longer contains what it signed: the head is
    beyond the log, the log's root at that size differs (a rewritten or forked history), or the head is newer
    than any the node kept (its heads were lost or rewritten). Otherwise returns the consistency proof from the
    peer's head to the node's latest head, for the peer to check with ``verify_consistent_heads``.
    """
    verified = verify_tree_head(peer_head, trust)
    if peer_head.node_id != node_id:
        raise VerificationError(f"the peer's head is node {peer_head.node_id}'s, not this node's ({node_id})")
    committed = log.committed
    what = f"the head the peer holds (size {peer_head.size}, {peer_head.time_text})"
    if peer_head.size > committed.size:
        raise VerificationError(
            f"{what} covers more entries than this node's log has committed ({committed.size}): "
            "entries this node signed for are gone"
        )
    if log.root(peer_head.size) != peer_head.root_hash:
        raise VerificationError(f"{what} has a different root from this node's log at that size: history rewritten")
    latest = own_heads.latest if own_heads is not None else None
    if latest is not None:
        if peer_head.timestamp > latest.timestamp or peer_head.size > latest.size:
            raise VerificationError(f"{what} is newer than any head this node kept: its kept heads were lost")
        if peer_head.timestamp == latest.timestamp and peer_head != latest:
            raise VerificationError(f"{what} differs from the head this node kept for that time: two heads, one time")
        if latest.size > committed.size or log.root(latest.size) != latest.root_hash:
            raise VerificationError(f"this node's latest head (size {latest.size}) is not its log's: history rewritten")
        target = latest.state
    else:
        target = committed
    proof = log.consistency_proof(peer_head.size, target.size)
    verify_consistency(peer_head.size, target.size, peer_head.root_hash, target.root, proof)
    return PeerViewCheck(peer_head=verified, latest_head=latest, state=target, proof=tuple(proof))


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
    "TREEHEAD_NS",
    "LogView",
    "PeerViewCheck",
    "SignedTreeHead",
    "TreeHeadStore",
    "VerifiedTreeHead",
    "check_against_peer_view",
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
