"""The Merkle tree against RFC 6962/9162: published values, a naive reference, every size up to 64, fuzzing.

The reference below is written straight from RFC 9162 §2.1.1-§2.1.4.1 — MTH, PATH, PROOF and SUBPROOF as the
recursive definitions over the list of entries, with hashlib and nothing from gwexchange — so that it shares no
code, no stored nodes and no iteration order with ``gwexchange.archive.merkle``. Proofs produced by gwexchange
must equal the reference's byte for byte, and gwexchange's verifiers must accept the reference's proofs and
refuse every damaged one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwexchange.archive.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryTree,
    TreeState,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root_from_inclusion_proof,
    root_hash,
    split_point,
    subtree_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from gwexchange.errors import InputError, VerificationError

# --- the naive reference, from RFC 9162 §2.1 -------------------------------------------------------------------


def ref_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1), found by counting up."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) (§2.1.1)."""
    n = len(d)
    if n == 0:
        return ref_hash(b"")
    if n == 1:
        return ref_hash(b"\x00" + d[0])
    k = ref_k(n)
    return ref_hash(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (§2.1.3.1)."""
    n = len(d)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (§2.1.4.1)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (§2.1.4.1), for 0 < m < n."""
    return ref_subproof(m, d, True)


# --- published values -----------------------------------------------------------------------------------------

# The Certificate Transparency test leaves (RFC 6962 implementations: certificate-transparency, trillian,
# transparency-dev/merkle) and the tree heads for sizes 0 to 8.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
]  # fmt: skip
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def ct_tree() -> MemoryTree:
    return MemoryTree.of_entries(CT_LEAVES)


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == CT_ROOTS[0] == hashlib.sha256(b"").hexdigest()
    assert root_hash([]) == EMPTY_ROOT == MemoryTree().root() == CompactRange().root() == ref_mth([])


def test_leaf_and_node_hashes_use_the_rfc_prefixes() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert leaf_hash(b"").hex() == CT_ROOTS[1]
    left, right = leaf_hash(b"l"), leaf_hash(b"r")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)
    assert node_hash(leaf_hash(CT_LEAVES[0]), leaf_hash(CT_LEAVES[1])).hex() == CT_ROOTS[2]


@pytest.mark.parametrize("size", range(9))
def test_published_roots(ct_tree: MemoryTree, size: int) -> None:
    expected = CT_ROOTS[size]
    assert ct_tree.root(size).hex() == expected
    assert root_hash(leaf_hash(e) for e in CT_LEAVES[:size]).hex() == expected
    assert ref_mth(CT_LEAVES[:size]).hex() == expected  # the reference is right, too


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_published_inclusion_proofs(ct_tree: MemoryTree, index: int, size: int, proof: list[str]) -> None:
    got = ct_tree.inclusion_proof(index, size)
    assert [p.hex() for p in got] == proof
    verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, got, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("m", "n", "proof"), CT_CONSISTENCY)
def test_published_consistency_proofs(ct_tree: MemoryTree, m: int, n: int, proof: list[str]) -> None:
    got = ct_tree.consistency_proof(m, n)
    assert [p.hex() for p in got] == proof
    roots = bytes.fromhex(CT_ROOTS[m]), bytes.fromhex(CT_ROOTS[n])
    verify_consistency(m, n, *roots, got)


def test_split_point_is_the_largest_power_of_two_below_n() -> None:
    for n in range(2, 600):
        assert split_point(n) == ref_k(n)
    assert split_point((1 << 62) + 1) == 1 << 62
    assert split_point(1 << 40) == 1 << 39


# --- every size and pair up to 64 ------------------------------------------------------------------------------

N = 64
ENTRIES = [hashlib.sha256(b"entry %d" % i).digest()[: 1 + i % 31] for i in range(N)]
LEAVES = [leaf_hash(e) for e in ENTRIES]


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return MemoryTree.of_entries(ENTRIES)


@pytest.fixture(scope="module")
def roots() -> list[bytes]:
    return [ref_mth(ENTRIES[:n]) for n in range(N + 1)]


def damaged_proofs(proof: list[bytes]) -> list[list[bytes]]:
    """Every way a proof can be broken by one change: each element with a bit flipped, each element dropped,
    an element added at each end, and each adjacent pair swapped (when they differ)."""
    out: list[list[bytes]] = []
    for i, p in enumerate(proof):
        out.append([*proof[:i], bytes([p[0] ^ 1]) + p[1:], *proof[i + 1 :]])
        out.append([*proof[:i], p[:-1] + bytes([p[-1] ^ 0x80]), *proof[i + 1 :]])
        out.append(proof[:i] + proof[i + 1 :])
        if i + 1 < len(proof) and p != proof[i + 1]:
            out.append([*proof[:i], proof[i + 1], p, *proof[i + 2 :]])
    out.append([*proof, b"\xab" * 32])
    out.append([b"\xcd" * 32, *proof])
    return out


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with bit ``bit`` (counted from the first byte's least significant bit) inverted."""
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def refused(verify: Callable[..., None], *args: object) -> bool:
    """Whether ``verify(*args)`` raises ``VerificationError`` (anything else propagates and fails the test)."""
    try:
        verify(*args)
    except VerificationError:
        return True
    return False


def test_roots_of_every_size(tree: MemoryTree, roots: list[bytes]) -> None:
    for n in range(N + 1):
        assert tree.root(n) == roots[n] == root_hash(LEAVES[:n])
        assert tree_root(n, tree.node) == roots[n]


def test_inclusion_proofs_for_every_leaf_of_every_size(tree: MemoryTree, roots: list[bytes]) -> None:
    checked = 0
    for n in range(1, N + 1):
        for i in range(n):
            proof = tree.inclusion_proof(i, n)
            assert proof == ref_path(i, ENTRIES[:n]), (i, n)
            verify_inclusion(LEAVES[i], i, n, ref_path(i, ENTRIES[:n]), roots[n])
            checked += 1
    assert checked == N * (N + 1) // 2


def test_consistency_proofs_for_every_pair_of_sizes(tree: MemoryTree, roots: list[bytes]) -> None:
    checked = 0
    for n in range(N + 1):
        for m in range(n + 1):
            proof = tree.consistency_proof(m, n)
            expected = ref_proof(m, ENTRIES[:n]) if 0 < m < n else []
            assert proof == expected, (m, n)
            verify_consistency(m, n, roots[m], roots[n], expected)
            checked += 1
    assert checked == (N + 1) * (N + 2) // 2


def test_every_damaged_inclusion_proof_is_refused(roots: list[bytes]) -> None:
    for n in range(1, N + 1):
        for i in range(n):
            proof = ref_path(i, ENTRIES[:n])
            for bad in damaged_proofs(proof):
                assert refused(verify_inclusion, LEAVES[i], i, n, bad, roots[n]), (i, n, bad)
            # the right proof for the wrong claim: another leaf, index, size or root
            other = LEAVES[(i + 1) % n] if n > 1 else leaf_hash(b"other")
            assert refused(verify_inclusion, other, i, n, proof, roots[n])
            assert refused(verify_inclusion, LEAVES[i], i, n, proof, roots[n - 1])
            assert refused(verify_inclusion, LEAVES[i], n, n, proof, roots[n])
            for j in {i - 1, i + 1, i ^ 2} - {i}:
                if 0 <= j < n and LEAVES[j] != LEAVES[i]:
                    assert refused(verify_inclusion, LEAVES[i], j, n, proof, roots[n]), (i, j, n)
            # a size whose path has another length: the proof no longer reaches the root
            assert refused(verify_inclusion, LEAVES[i], i, 2 * n, proof, roots[n])


def test_every_damaged_consistency_proof_is_refused(roots: list[bytes]) -> None:
    for n in range(1, N + 1):
        for m in range(1, n):
            proof = ref_proof(m, ENTRIES[:n])
            for bad in damaged_proofs(proof):
                assert refused(verify_consistency, m, n, roots[m], roots[n], bad), (m, n, bad)
            assert refused(verify_consistency, m, n, roots[m - 1], roots[n], proof)
            assert refused(verify_consistency, m, n, roots[m], roots[n - 1], proof)
            assert refused(verify_consistency, m, n, roots[n], roots[m], proof)
            assert refused(verify_consistency, n, m, roots[n], roots[m], proof)
            assert refused(verify_consistency, m, n, roots[m], roots[n], [])
            for size in (m - 1, m + 1):
                if 0 < size < n:
                    assert refused(verify_consistency, size, n, roots[m], roots[n], proof)


def test_consistency_degenerate_cases(roots: list[bytes]) -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 9, EMPTY_ROOT, roots[9], [])
    verify_consistency(9, 9, roots[9], roots[9], [])
    assert refused(verify_consistency, 0, 9, roots[1], roots[9], [])
    assert refused(verify_consistency, 0, 9, EMPTY_ROOT, roots[9], [roots[1]])
    assert refused(verify_consistency, 9, 9, roots[9], roots[8], [])
    assert refused(verify_consistency, 9, 9, roots[9], roots[9], [roots[9]])
    assert refused(verify_consistency, -1, 9, roots[9], roots[9], [])


def test_malformed_hashes_are_refused(tree: MemoryTree, roots: list[bytes]) -> None:
    proof = tree.inclusion_proof(5, 8)
    assert refused(verify_inclusion, LEAVES[5][:31], 5, 8, proof, roots[8])
    assert refused(verify_inclusion, LEAVES[5], 5, 8, proof, roots[8][:31])
    assert refused(verify_inclusion, LEAVES[5], 5, 8, [proof[0][:31], *proof[1:]], roots[8])
    assert refused(verify_inclusion, LEAVES[5], -1, 8, proof, roots[8])
    assert refused(verify_inclusion, LEAVES[5], 5, -8, proof, roots[8])
    cproof = tree.consistency_proof(6, 8)
    assert refused(verify_consistency, 6, 8, roots[6][:31], roots[8], cproof)
    assert refused(verify_consistency, 6, 8, roots[6], roots[8], [b"x" * 33, *cproof[1:]])


def test_producing_impossible_proofs_is_an_input_error(tree: MemoryTree) -> None:
    for bad in (lambda: tree.inclusion_proof(8, 8), lambda: tree.inclusion_proof(-1, 8), lambda: tree.root(65)):
        with pytest.raises(InputError):
            bad()
    with pytest.raises(InputError):
        consistency_proof(5, 3, tree.node)
    with pytest.raises(InputError):
        inclusion_proof(0, 0, tree.node)
    with pytest.raises(InputError):
        perfect_subtrees(1, 3)  # not a node of the tree: [1, 3) straddles two perfect subtrees
    with pytest.raises(InputError):
        subtree_hash(4, 4, tree.node)


def test_perfect_subtrees_are_the_binary_decomposition() -> None:
    assert perfect_subtrees(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert perfect_subtrees(8, 13) == [(2, 2), (0, 12)]
    assert perfect_subtrees(0, 64) == [(6, 0)]


def test_compact_range_reports_each_completed_node() -> None:
    cr = CompactRange()
    assert cr.push(LEAVES[0]) == [(0, 0, LEAVES[0])]
    assert cr.push(LEAVES[1]) == [(0, 1, LEAVES[1]), (1, 0, node_hash(LEAVES[0], LEAVES[1]))]
    assert cr.push(LEAVES[2]) == [(0, 2, LEAVES[2])]
    nodes = cr.push(LEAVES[3])
    assert [(level, index) for level, index, _ in nodes] == [(0, 3), (1, 1), (2, 0)]
    assert nodes[-1][2] == ref_mth(ENTRIES[:4])


def test_compact_range_from_stored_nodes_continues_the_same_tree(tree: MemoryTree, roots: list[bytes]) -> None:
    for size in range(N):
        cr = CompactRange.from_nodes(size, tree.node)
        assert cr.size == size and len(cr.peaks) == size.bit_count()
        assert cr.root() == roots[size]
        for leaf in LEAVES[size:]:
            cr.push(leaf)
        assert cr.root() == roots[N]
        assert cr.copy() == cr
    with pytest.raises(InputError):
        CompactRange(3, [LEAVES[0]])
    with pytest.raises(InputError):
        CompactRange().push(b"short")


def test_tree_state_checks_its_fields() -> None:
    assert TreeState(0, EMPTY_ROOT).size == 0
    for size, root in ((-1, EMPTY_ROOT), (1, b"x"), (True, EMPTY_ROOT)):
        with pytest.raises(InputError):
            TreeState(size, root)


def test_memory_tree_refuses_missing_nodes(tree: MemoryTree) -> None:
    for level, index in ((0, N), (7, 0), (-1, 0), (6, 1)):
        with pytest.raises(InputError):
            tree.node(level, index)


# --- fuzzing ---------------------------------------------------------------------------------------------------

entry_lists = st.lists(st.binary(min_size=0, max_size=24), min_size=1, max_size=150)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=entry_lists, data=st.data())
def test_fuzz_proofs_agree_with_the_reference(entries: list[bytes], data: st.DataObject) -> None:
    mt = MemoryTree.of_entries(entries)
    n = data.draw(st.integers(1, len(entries)), label="n")
    m = data.draw(st.integers(0, n), label="m")
    i = data.draw(st.integers(0, n - 1), label="i")
    root_n, root_m = ref_mth(entries[:n]), ref_mth(entries[:m])
    assert mt.root(n) == root_n and mt.root(m) == root_m

    path = mt.inclusion_proof(i, n)
    assert path == ref_path(i, entries[:n])
    verify_inclusion(leaf_hash(entries[i]), i, n, path, root_n)
    assert root_from_inclusion_proof(leaf_hash(entries[i]), i, n, path) == root_n

    proof = mt.consistency_proof(m, n)
    assert proof == (ref_proof(m, entries[:n]) if 0 < m < n else [])
    verify_consistency(m, n, root_m, root_n, proof)

    # one changed bit anywhere in either proof is refused
    for broken, p in ((path, "inclusion"), (proof, "consistency")):
        if not broken:
            continue
        k = data.draw(st.integers(0, len(broken) - 1), label=f"{p} element")
        bit = data.draw(st.integers(0, 255), label="bit")
        changed = list(broken)
        changed[k] = flip(changed[k], bit)
        if p == "inclusion":
            assert refused(verify_inclusion, leaf_hash(entries[i]), i, n, changed, root_n)
        else:
            assert refused(verify_consistency, m, n, root_m, root_n, changed)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 1 << 40),
    data=st.data(),
    junk=st.lists(st.binary(min_size=32, max_size=32), max_size=45),
)
def test_fuzz_arbitrary_proofs_never_verify(size: int, data: st.DataObject, junk: list[bytes]) -> None:
    """Random sizes (up to 2^40), indices and 32-byte strings: the verifiers refuse, and never fail otherwise."""
    index = data.draw(st.integers(0, size + 3), label="index")
    m = data.draw(st.integers(0, size + 3), label="m")
    root = hashlib.sha256(b"some root").digest()
    assert refused(verify_inclusion, leaf_hash(b"x"), index, size, junk, root)
    assert refused(verify_consistency, m, size, hashlib.sha256(b"old").digest(), root, junk)
