"""The tree heads a node keeps and the heads its peers gave it, and a node's history checked against them.

**Keeping heads.** ``TreeHeadStore`` is the append-only file of the heads a node signed (``heads`` in the log
directory): one canonical JSON line per head, fsync'd before ``add`` returns, so no head leaves the node that
is not kept. It refuses a head that is not strictly later than the last, covers fewer entries, or — given the log
— whose root is not the log's at its size or is not consistent with the last head. A line that differs from the
canonical form of what it parses to in any byte is damaged: a kept head has exactly one encoding.

**Detecting a rewritten history.** A peer that holds an older head signed by this node asks for consistency:
``check_against_peer_view`` (on the node) verifies that head, that the node's log still has that root at that
size, and gives the consistency proof to the node's latest head; ``treehead.verify_consistent_heads`` (on the
peer, or an auditor) checks both heads' signatures and the proof. Two heads of one node that no consistency proof
joins are the node's signed evidence of a fork.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from gwexchange.archive.merkle import TreeState, verify_consistency
from gwexchange.archive.treehead import (
    SignedTreeHead,
    VerifiedTreeHead,
    head_to_line,
    parse_head_line,
    sign_tree_head,
    verify_tree_head,
)
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.errors import ConfigError, InputError, VerificationError


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


__all__ = [
    "LogView",
    "PeerHeads",
    "PeerViewCheck",
    "TreeHeadStore",
    "check_against_peer_view",
    "contradiction",
    "contradictions",
    "read_heads",
]
