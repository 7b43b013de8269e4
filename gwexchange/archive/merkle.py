"""The Merkle tree of the archive log, hashed and proved exactly as RFC 9162 (Certificate Transparency v2) says.

Pure functions, no I/O. With SHA-256 as HASH::

    leaf hash        HASH(0x00 ‖ entry)
    interior node    HASH(0x01 ‖ left ‖ right)
    empty tree       HASH()                      = e3b0c442…b855
    MTH(D[n])        for n > 1: k = the largest power of two < n, HASH(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))

**Stored nodes.** A tree that grows only at the right has *perfect* subtrees that never change once complete: the
node at ``(level, index)`` is the root of the 2^level leaves ``[index·2^level, (index+1)·2^level)``; level 0
holds the leaf hashes. Every node of the RFC tree of any size is either such a perfect subtree or lies on the
right edge, and a right-edge node is the right fold of at most log₂ n perfect ones. So anything that can read
perfect-subtree hashes by ``(level, index)`` — a ``NodeReader`` — gives any root, inclusion proof or consistency
proof with O(log n) reads and hashes, whatever the size of the tree. ``CompactRange`` is the other half: the
perfect subtree roots of ``[0, size)`` (at most one per level), enough to append in O(log n) and to know the root,
and it reports each perfect node it completes so that a store can keep it.

Proofs are produced by RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (PROOF / SUBPROOF) and verified by the algorithms
of §2.1.3.2 and §2.1.4.2, step by step. Verification raises ``VerificationError`` or returns nothing: there is
no bool to forget to check. Sizes and indices that cannot be asked of a tree at all (negative ones, a proof of
a leaf beyond the tree) raise ``InputError`` when *producing* a proof; when *verifying*, anything that does not
prove the claim is a ``VerificationError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gwexchange.errors import InputError, VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree: SHA-256 of nothing (RFC 9162 §2.1.1)."""

MAX_LEVELS = 64  # sizes are below 2^63, so no perfect subtree is higher than level 62

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

NodeReader = Callable[[int, int], bytes]
"""``nodes(level, index)``: the hash of the perfect subtree over leaves ``[index << level, (index + 1) << level)``."""

NewNode = tuple[int, int, bytes]
"""A perfect subtree completed by an append: ``(level, index, hash)``."""


@dataclass(frozen=True, slots=True)
class TreeState:
    """A tree as a signer sees it: ``size`` leaves with root hash ``root``."""

    size: int
    root: bytes

    def __post_init__(self) -> None:
        if type(self.size) is not int or self.size < 0:
            raise InputError(f"tree size {self.size!r} is not a whole number of leaves")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise InputError("a root hash is 32 bytes")


def leaf_hash(entry: bytes) -> bytes:
    """HASH(0x00 ‖ entry)."""
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 ‖ left ‖ right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """k, the largest power of two smaller than ``n`` (n ≥ 2): where RFC 9162 splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of the leaves whose hashes are given, in order (EMPTY_ROOT for none)."""
    tree = CompactRange()
    for h in leaf_hashes:
        tree.push(h)
    return tree.root()


# --- perfect subtrees and the compact range -------------------------------------------------------------------


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The ``(level, index)`` of the perfect subtrees whose right fold is MTH(D[start:end]), left to right.

    ``start`` must be a multiple of the largest power of two not above ``end - start`` (true of every node of the
    RFC tree: node ranges start at sums of decreasing powers of two), so the pieces are the binary
    decomposition of the length, largest first. For ``start = 0`` they are the compact range of ``end``.
    """
    length = end - start
    if length <= 0 or start < 0:
        raise InputError(f"no subtree over leaves [{start}, {end})")
    if start & ((1 << (length.bit_length() - 1)) - 1):
        raise InputError(f"leaves [{start}, {end}) are not a node of the tree")
    pieces = []
    at = start
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            pieces.append((level, at >> level))
            at += 1 << level
    return pieces


def subtree_hash(start: int, end: int, nodes: NodeReader) -> bytes:
    """MTH(D[start:end]) for a node of the RFC tree (see ``perfect_subtrees``), from O(log n) stored nodes."""
    length = end - start
    if length > 0 and length & (length - 1) == 0 and start >= 0 and start % length == 0:
        level = length.bit_length() - 1  # a perfect subtree, as most proof elements are: one stored node
        return nodes(level, start >> level)
    pieces = perfect_subtrees(start, end)
    level, index = pieces[-1]
    h = nodes(level, index)
    for level, index in reversed(pieces[:-1]):
        h = node_hash(nodes(level, index), h)
    return h


def tree_root(size: int, nodes: NodeReader) -> bytes:
    """MTH(D[size]) from stored perfect subtrees (EMPTY_ROOT for size 0)."""
    if size < 0:
        raise InputError(f"tree size {size} is negative")
    return subtree_hash(0, size, nodes) if size else EMPTY_ROOT


@dataclass
class CompactRange:
    """The perfect subtree roots of leaves ``[0, size)``, largest first: one per set bit of ``size``.

    ``push`` appends a leaf hash in O(log n) and returns the perfect nodes that append completed — the leaf
    itself at level 0, then each parent it closed — for a store to keep. ``root`` folds the peaks from the right.
    """

    size: int = 0
    peaks: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.peaks) != self.size.bit_count():
            raise InputError(f"a compact range of size {self.size} has {self.size.bit_count()} peaks")
        if any(len(p) != HASH_SIZE for p in self.peaks):
            raise InputError("a compact range holds 32-byte hashes")

    @classmethod
    def from_nodes(cls, size: int, nodes: NodeReader) -> CompactRange:
        """The compact range of a tree of ``size`` leaves, read from its stored perfect subtrees."""
        if size < 0:
            raise InputError(f"tree size {size} is negative")
        return cls(size, [nodes(level, index) for level, index in perfect_subtrees(0, size)] if size else [])

    def push(self, leaf: bytes) -> list[NewNode]:
        """Append one leaf hash; return ``[(0, i, leaf), (1, i >> 1, parent), …]`` for the nodes completed."""
        if len(leaf) != HASH_SIZE:
            raise InputError("a leaf hash is 32 bytes")
        index = self.size
        completed = [(0, index, leaf)]
        h = leaf
        level = 0
        peaks = self.peaks
        while index >> level & 1:
            h = _sha256(_NODE_PREFIX + peaks.pop() + h).digest()
            level += 1
            completed.append((level, index >> level, h))
        peaks.append(h)
        self.size = index + 1
        return completed

    def root(self) -> bytes:
        """MTH of the leaves so far."""
        peaks = self.peaks
        if not peaks:
            return EMPTY_ROOT
        h = peaks[-1]
        for p in reversed(peaks[:-1]):
            h = _sha256(_NODE_PREFIX + p + h).digest()
        return h

    def copy(self) -> CompactRange:
        return CompactRange(self.size, list(self.peaks))


@dataclass
class MemoryTree:
    """Every perfect subtree of a tree held in memory: a ``NodeReader`` for small trees, tests and tools."""

    levels: list[list[bytes]] = field(default_factory=lambda: [[]])
    _range: CompactRange = field(default_factory=CompactRange, repr=False)

    @classmethod
    def of_entries(cls, entries: Iterable[bytes]) -> MemoryTree:
        tree = cls()
        for e in entries:
            tree.append(leaf_hash(e))
        return tree

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; return its index."""
        for level, _, h in self._range.push(leaf):
            if level == len(self.levels):
                self.levels.append([])
            self.levels[level].append(h)
        return self.size - 1

    def node(self, level: int, index: int) -> bytes:
        if level < 0 or index < 0 or level >= len(self.levels) or index >= len(self.levels[level]):
            raise InputError(f"no stored node at level {level}, index {index}")
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return tree_root(self.size if size is None else self._size(size), self.node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else self._size(size), self.node)

    def consistency_proof(self, m: int, n: int | None = None) -> list[bytes]:
        return consistency_proof(m, self.size if n is None else self._size(n), self.node)

    def _size(self, size: int) -> int:
        if not 0 <= size <= self.size:
            raise InputError(f"the tree has {self.size} leaves, not {size}")
        return size


# --- proofs (RFC 9162 §2.1.3.1 and §2.1.4.1) -----------------------------------------------------------------


def _inclusion_path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges of PATH(index, D[size]), in proof order (from the leaf's sibling up to the root's child)."""
    if size < 0 or not 0 <= index < size:
        raise InputError(f"leaf {index} is not in a tree of size {size}")
    ranges = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_path_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The leaf ranges of PROOF(m, D[n]), in proof order. Empty when m is 0 or m equals n."""
    if not 0 <= m <= n:
        raise InputError(f"no consistency proof from size {m} to size {n}")
    if m in (0, n):
        return []
    ranges = []
    start, end = 0, n
    whole = True  # SUBPROOF's b: is the subtree so far the whole old tree's left edge?
    while True:
        if m == end:  # SUBPROOF(m, D[m], b)
            if not whole:
                ranges.append((start, end))
            break
        k = split_point(end - start)
        if m - start <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
            whole = False
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, nodes: NodeReader) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return [subtree_hash(a, b, nodes) for a, b in _inclusion_path_ranges(index, size)]


def consistency_proof(m: int, n: int, nodes: NodeReader) -> list[bytes]:
    """The RFC 9162 consistency proof that the tree of ``m`` leaves is a prefix of the tree of ``n``."""
    return [subtree_hash(a, b, nodes) for a, b in _consistency_path_ranges(m, n)]


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -------------------------------------------------------------


def _check_hashes(proof: Sequence[bytes], *named: tuple[str, bytes]) -> None:
    for what, value in named:
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise VerificationError(f"the {what} is not a 32-byte SHA-256 hash")
    if any(not isinstance(p, bytes) or len(p) != HASH_SIZE for p in proof):
        raise VerificationError("a proof element is not a 32-byte SHA-256 hash")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for ``leaf`` at ``index`` in a tree of ``size`` (§2.1.3.2, steps 1-4)."""
    _check_hashes(proof, ("leaf hash", leaf))
    if index < 0 or size < 0:
        raise VerificationError(f"leaf index {index} and tree size {size} must not be negative")
    if index >= size:  # step 1
        raise VerificationError(f"leaf index {index} is not below tree size {size}")
    fn, sn = index, size - 1  # step 2
    r = leaf  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4a
            raise VerificationError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    if sn != 0:  # step 5
        raise VerificationError("the inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ``VerificationError`` unless ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root``
    of ``size`` leaves (RFC 9162 §2.1.3.2)."""
    _check_hashes(proof, ("root hash", root))
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise VerificationError(f"the inclusion proof of leaf {index} does not lead to the root of tree size {size}")


def verify_consistency(m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]) -> None:
    """Raise ``VerificationError`` unless ``proof`` shows the tree ``root_m`` of ``m`` leaves to be a prefix of
    the tree ``root_n`` of ``n`` leaves (RFC 9162 §2.1.4.2 for 0 < m < n).

    The two cases outside the RFC's range: m = n needs an empty proof and equal roots; m = 0 needs an empty
    proof and ``root_m`` equal to the empty tree's root.
    """
    _check_hashes(proof, ("first root hash", root_m), ("second root hash", root_n))
    if m < 0 or n < 0:
        raise VerificationError(f"tree sizes {m} and {n} must not be negative")
    if m > n:
        raise VerificationError(f"a tree of size {m} cannot be a prefix of a smaller tree of size {n}")
    if m in (0, n):
        if proof:
            raise VerificationError(f"a consistency proof from size {m} to size {n} is empty")
        if m == 0 and root_m != EMPTY_ROOT:
            raise VerificationError("the root hash of the empty tree is SHA-256 of nothing")
        if m == n and root_m != root_n:
            raise VerificationError(f"two different root hashes for the same tree size {m}")
        return
    path = list(proof)
    if not path:  # step 1
        raise VerificationError(f"the consistency proof from size {m} to size {n} is empty")
    if m & (m - 1) == 0:  # step 2: first is an exact power of two
        path.insert(0, root_m)
    fn, sn = m - 1, n - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise VerificationError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 7
        raise VerificationError("the consistency proof is shorter than the path to the root")
    if fr != root_m:
        raise VerificationError(f"the consistency proof does not lead to the root hash of tree size {m}")
    if sr != root_n:
        raise VerificationError(f"the consistency proof does not lead to the root hash of tree size {n}")


__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_LEVELS",
    "CompactRange",
    "MemoryTree",
    "NewNode",
    "NodeReader",
    "TreeState",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "perfect_subtrees",
    "root_from_inclusion_proof",
    "root_hash",
    "split_point",
    "subtree_hash",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]
