"""Inclusion proofs: that one envelope is in a node's log under a tree head it signed (``prove``), and the check
of a saved proof on its own (``check_proof``), RFC 9162.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gwexchange import xmlsafe
from gwexchange.archive.audit import LogHashes, numbered_heads
from gwexchange.archive.audit_archive import (
    NodeSource,
    iter_entries,
)
from gwexchange.archive.log import read_commit
from gwexchange.archive.merkle import (
    inclusion_proof,
    leaf_hash,
    tree_root,
    verify_inclusion,
)
from gwexchange.archive.treehead import (
    SignedTreeHead,
    head_to_line,
    parse_head_line,
    verify_tree_head,
)
from gwexchange.codes import is_node_id
from gwexchange.crypto.certificates import identity_of
from gwexchange.crypto.suite import INTERNATIONAL
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.header import RoutingHeader, eq, header_from_element
from gwexchange.envelope.sealing import MAX_ENVELOPE_BYTES, inspect
from gwexchange.errors import ConfigError, InputError, TrustError, VerificationError

PROOF_FORMAT = "gwexchange-inclusion-proof-v1"
MAX_PROOF_BYTES = 2 * MAX_ENVELOPE_BYTES
_PROOF_KEYS = frozenset(
    {"format", "hash", "message_id", "node", "leaf_index", "tree_size", "leaf_hash", "root_hash", "audit_path",
     "entry", "tree_head"}
)  # fmt: skip


@dataclass(frozen=True)
class InclusionProof:
    """The RFC 9162 proof that envelope ``message_id`` is entry ``leaf_index`` of the tree ``head`` signed."""

    message_id: str
    node_id: str
    leaf_index: int
    entry: bytes
    audit_path: tuple[bytes, ...]
    head: SignedTreeHead

    @property
    def tree_size(self) -> int:
        return self.head.size

    @property
    def root_hash(self) -> bytes:
        return self.head.root_hash

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.entry)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": PROOF_FORMAT,
            "hash": "RFC 9162 SHA-256: leaf = SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right)",
            "message_id": self.message_id,
            "node": self.node_id,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "root_hash": self.root_hash.hex(),
            "audit_path": [h.hex() for h in self.audit_path],
            "entry": base64.b64encode(self.entry).decode("ascii"),
            "tree_head": json.loads(head_to_line(self.head)),
        }


def _find_entry(log_dir: Path, message_id: str) -> tuple[int, bytes]:
    """The index and bytes of the envelope with ``message_id`` in a log copy; ``InputError`` if there is none."""
    needle = message_id.encode("ascii")
    for index, data in iter_entries(log_dir):
        if needle in data and _header(data).message_id == message_id:
            return index, data
    raise InputError(f"no envelope with message id {message_id} is in the log")


def _header(entry: bytes) -> RoutingHeader:
    root = xmlsafe.parse(entry, max_bytes=MAX_ENVELOPE_BYTES)
    header = root.find(eq("Header"))
    if header is None:
        raise VerificationError("the entry is not an envelope (it has no header)")
    return header_from_element(header)


def prove(source: NodeSource, message_id: str, trust: TrustPolicy) -> InclusionProof:
    """The inclusion proof of envelope ``message_id`` in ``source``'s log against the node's latest signed head,
    checked before it is handed out: the envelope, the head's signature, the log's root at the head's size."""
    log_dir = source.log_dir
    index, entry = _find_entry(log_dir, message_id)
    inspect(entry, trust)
    heads = [h for _, h in numbered_heads(log_dir) if h is not None and h.node_id == source.node_id]
    if not heads:
        raise VerificationError(f"node {source.node_id} has signed no tree head yet: nothing vouches for its log")
    head = max(heads, key=lambda h: h.timestamp)
    if head.size <= index:
        raise VerificationError(
            f"entry {index} is not yet covered by a signed tree head (the latest covers {head.size} entries)"
        )
    verify_tree_head(head, trust)
    nodes = LogHashes(log_dir)
    try:
        commit = read_commit(log_dir)
        if commit is None or commit.size < head.size:
            raise VerificationError(f"the log's commit does not cover its latest head (size {head.size})")
        if tree_root(head.size, nodes.node) != head.root_hash:
            raise VerificationError(f"the log's stored hashes do not give the root of its head of size {head.size}")
        path = inclusion_proof(index, head.size, nodes.node)
    finally:
        nodes.close()
    verify_inclusion(leaf_hash(entry), index, head.size, path, head.root_hash)
    return InclusionProof(message_id, source.node_id, index, entry, tuple(path), head)


@dataclass(frozen=True)
class CheckedProof:
    """What ``check_proof`` established; ``signer_trusted`` says whether the head's certificate was checked
    against a root (else only that the certificate's key made the signature)."""

    proof: InclusionProof
    signer_trusted: bool
    envelope_verified: bool


def check_proof(data: bytes, trust: TrustPolicy | None, *, unsafe_without_root: bool = False) -> CheckedProof:
    """Verify a saved ``gwx audit prove --json`` independently: the entry's leaf hash, the RFC 9162 audit path to
    the root, and that root's tree head signature through ``trust``. ``VerificationError`` otherwise. Without a
    trust policy only the head's signature against the certificate it carries is checked, and only if asked for
    by name (``unsafe_without_root``): anyone can make such a certificate."""
    if trust is None and not unsafe_without_root:
        raise ConfigError("a proof is checked against a root: give the trust policy, or ask for unsafe_without_root")
    if len(data) > MAX_PROOF_BYTES:
        raise InputError(f"the proof file is larger than {MAX_PROOF_BYTES} bytes")
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InputError(f"the proof is not JSON: {e}") from e
    if not isinstance(record, dict) or set(record) != _PROOF_KEYS or record.get("format") != PROOF_FORMAT:
        raise InputError(f"the file is not a {PROOF_FORMAT} proof")
    try:
        head = parse_head_line(json.dumps(record["tree_head"], separators=(",", ":"), ensure_ascii=True).encode())
        message_id, node = str(record["message_id"]), str(record["node"])
        index, size = record["leaf_index"], record["tree_size"]
        if type(index) is not int or type(size) is not int:
            raise InputError("leaf_index and tree_size are whole numbers")
        path = tuple(_hex_hash(h, "an audit path element") for h in _list(record["audit_path"]))
        claimed_leaf = _hex_hash(record["leaf_hash"], "leaf_hash")
        claimed_root = _hex_hash(record["root_hash"], "root_hash")
        entry = base64.b64decode(str(record["entry"]), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"the proof is malformed: {e}") from e
    if not is_node_id(node) or head.node_id != node:
        raise VerificationError(f"the tree head is node {head.node_id}'s, the proof says node {node!r}")
    if head.size != size or head.root_hash != claimed_root:
        raise VerificationError("the proof's tree size or root hash is not the signed tree head's")
    if leaf_hash(entry) != claimed_leaf:
        raise VerificationError("the entry does not hash to the proof's leaf hash")
    verify_inclusion(claimed_leaf, index, size, path, head.root_hash)
    if trust is not None:
        verify_tree_head(head, trust)
        envelope = inspect(entry, trust)
        found = envelope.header.message_id
    else:
        _verify_head_signature_only(head)
        found = _header(entry).message_id
    if found != message_id:
        raise VerificationError(f"the entry is message {found}, not {message_id}")
    proof = InclusionProof(message_id, node, index, entry, path, head)
    return CheckedProof(proof, signer_trusted=trust is not None, envelope_verified=trust is not None)


def _verify_head_signature_only(head: SignedTreeHead) -> None:
    try:
        cert = x509.load_der_x509_certificate(head.certificate)
        code = identity_of(cert).code
    except (ValueError, TrustError) as e:
        raise VerificationError(f"the tree head's certificate cannot be read: {e}") from e
    if code != head.node_id:
        raise VerificationError(f"the tree head names node {head.node_id}, but the certificate is {code}'s")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise VerificationError("the tree head's certificate holds a key type gwexchange does not verify")
    INTERNATIONAL.verify(key, head.method, head.signature, head.signed_bytes)


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError("audit_path is a list of hex hashes")
    return value


def _hex_hash(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"{what} is not 64 lower-case hex digits")
    return bytes.fromhex(value)


__all__ = [
    "MAX_PROOF_BYTES",
    "PROOF_FORMAT",
    "CheckedProof",
    "InclusionProof",
    "check_proof",
    "prove",
]
