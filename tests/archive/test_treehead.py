"""Signed tree heads: what is signed, who may sign, how heads are kept, carried as XML and checked against peers.

* The signed bytes, exactly; times in whole milliseconds; a head verifies with the node certificate of the node
  it names and nothing else (a department's certificate, another node's, another root's, a time outside the
  certificate) and not after any field was changed.
* ``TreeHeadStore``: strictly later times, never fewer entries, one node, only committed states of the log, each
  head consistent with the last; kept across reopening; a torn last line cut off.
* XML (``urn:gwexchange:treehead:1``): round trip, every byte of a serialised head either refused by the parser
  or by the signature, and every departure from the one accepted shape refused.
* Peers: a head a peer holds is proved a prefix of the node's latest; a rewritten or forked history, a log that
  lost entries, or heads the node lost are caught, by the node and by the peer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gwexchange.archive.head_store import TreeHeadStore, check_against_peer_view, contradiction, contradictions
from gwexchange.archive.log import MerkleLog
from gwexchange.archive.merkle import EMPTY_ROOT, MemoryTree, TreeState
from gwexchange.archive.treehead import (
    TREEHEAD_NS,
    SignedTreeHead,
    format_head_time,
    head_time,
    head_to_line,
    parse_head_line,
    parse_head_time,
    sign_tree_head,
    signed_bytes,
    tree_head_from_element,
    tree_head_from_xml,
    tree_head_to_element,
    tree_head_to_xml,
    verify_consistent_heads,
    verify_tree_head,
)
from gwexchange.crypto.algorithms import SignatureMethod
from gwexchange.crypto.certificates import Role, Usage
from gwexchange.crypto.keys import KeyAlgorithm
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.errors import (
    ConfigError,
    InputError,
    SignatureError,
    TrustError,
    VerificationError,
    XmlInputError,
)

ROOT_8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


@pytest.fixture(scope="module")
def node_id(pki: Any) -> str:
    code: str = pki.NODE
    return code


@pytest.fixture(scope="module")
def node(pki: Any, node_id: str) -> Signer:
    signer: Signer = pki.signer(node_id, Usage.NODE)
    return signer


@pytest.fixture(scope="module")
def t0(now: datetime) -> datetime:
    return now - timedelta(hours=2)


@pytest.fixture(scope="module")
def head(node: Signer, node_id: str, t0: datetime) -> SignedTreeHead:
    return sign_tree_head(TreeState(8, ROOT_8), node, node_id, t0 + timedelta(microseconds=123_456))


def entries(count: int, seed: bytes = b"entry") -> list[bytes]:
    return [seed + b" %d" % i for i in range(count)]


# --- signing and verifying -----------------------------------------------------------------------------------


def test_the_signed_bytes_are_exactly_the_documented_layout(head: SignedTreeHead) -> None:
    assert head.signed_bytes == (
        b"gwexchange-tree-head-v1\n"
        b"node gd-hub\n"
        b"size 8\n"
        b"root 5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328\n"
        b"time 2026-11-20T06:00:00.123Z\n"
    )
    assert signed_bytes("n1", 0, EMPTY_ROOT, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        b"gwexchange-tree-head-v1\nnode n1\nsize 0\n"
        b"root e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\ntime 2026-01-02T03:04:05.000Z\n"
    )


def test_times_are_whole_milliseconds_in_utc(head: SignedTreeHead, t0: datetime) -> None:
    assert head.timestamp == t0 + timedelta(milliseconds=123) and head.timestamp.tzinfo is UTC
    assert head.time_text == "2026-11-20T06:00:00.123Z"
    beijing = timezone(timedelta(hours=8))
    assert head_time(datetime(2026, 11, 20, 16, 0, 0, 999_999, tzinfo=beijing)) == datetime(
        2026, 11, 20, 8, 0, 0, 999_000, tzinfo=UTC
    )
    assert parse_head_time(format_head_time(head.timestamp)) == head.timestamp
    for bad in (
        "2026-11-20T06:00:00Z",
        "2026-11-20T06:00:00.12Z",
        "2026-11-20 06:00:00.123Z",
        "2026-13-20T06:00:00.000Z",
    ):
        with pytest.raises(InputError):
            parse_head_time(bad)
    with pytest.raises(InputError):
        head_time(datetime(2026, 11, 20))  # naive


def test_a_head_verifies_and_names_its_signer(head: SignedTreeHead, trust: TrustPolicy, node_id: str) -> None:
    verified = verify_tree_head(head, trust)
    assert verified.head is head and verified.signer.identity.code == node_id and verified.signer.usage is Usage.NODE
    assert (verified.node_id, verified.size, verified.root_hash, verified.timestamp) == (
        node_id,
        8,
        ROOT_8,
        head.timestamp,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"size": 9},
        {"size": 0},
        {"root_hash": EMPTY_ROOT},
        {"timestamp": "+1ms"},
        {"timestamp": "-1s"},
        {"signature": "flip"},
    ],
)
def test_a_head_with_any_field_changed_is_refused(
    head: SignedTreeHead, trust: TrustPolicy, change: dict[str, Any]
) -> None:
    (field, value), *_ = change.items()
    if value == "+1ms":
        value = head.timestamp + timedelta(milliseconds=1)
    elif value == "-1s":
        value = head.timestamp - timedelta(seconds=1)
    elif value == "flip":
        value = bytes([head.signature[0] ^ 1]) + head.signature[1:]
    with pytest.raises(SignatureError, match="does not verify"):
        verify_tree_head(dataclasses.replace(head, **{field: value}), trust)


def test_a_head_must_be_signed_by_the_node_it_names(
    head: SignedTreeHead, trust: TrustPolicy, pki: Any, node: Signer, t0: datetime
) -> None:
    with pytest.raises(SignatureError, match="names node other-hub"):
        verify_tree_head(dataclasses.replace(head, node_id="other-hub"), trust)
    with pytest.raises(ConfigError, match="not node other-hub"):
        sign_tree_head(TreeState(8, ROOT_8), node, "other-hub", t0)
    department = pki.signer("gd.gov.office")  # a department's signing certificate is not a node's
    with pytest.raises(InputError):  # a department code is not even a node id
        sign_tree_head(TreeState(8, ROOT_8), department, "gd.gov.office", t0)
    by_department = _signed_anyway(department, "gd-office", t0)
    with pytest.raises(TrustError, match="department certificate, not a node one"):
        verify_tree_head(by_department, trust)


def _signed_anyway(signer: Signer, code: str, at: datetime) -> SignedTreeHead:
    """A head signed with ``signer`` whatever its certificate says (as a forger would)."""
    timestamp = head_time(at)
    method, signature = signer.suite.sign(signer.key, signed_bytes(code, 8, ROOT_8, timestamp))
    return SignedTreeHead(
        code, 8, ROOT_8, timestamp, method, signature, signer.certificate.public_bytes(serialization.Encoding.DER)
    )


def test_a_head_outside_its_certificate_or_under_another_root_is_refused(
    head: SignedTreeHead, trust: TrustPolicy, make_pki: Callable[..., Any], node_id: str, t0: datetime
) -> None:
    with pytest.raises(TrustError, match="not valid at"):
        verify_tree_head(head, trust, at=head.timestamp - timedelta(days=30))
    late = dataclasses.replace(head, timestamp=head.timestamp + timedelta(days=3650))
    with pytest.raises(TrustError, match="not valid at"):
        verify_tree_head(late, trust)
    other = make_pki(departments={}, rsa_department=False)
    impostor = sign_tree_head(TreeState(8, ROOT_8), other.signer(node_id, Usage.NODE), node_id, t0)
    with pytest.raises(TrustError, match="configured root"):
        verify_tree_head(impostor, trust)
    verify_tree_head(impostor, other.trust())


def test_the_fields_of_a_head_are_checked(head: SignedTreeHead) -> None:
    for change in (
        {"node_id": "Gd-Hub"},
        {"node_id": "a\nb"},
        {"node_id": ""},
        {"size": -1},
        {"size": True},
        {"size": 1 << 63},
        {"root_hash": b"short"},
        {"timestamp": head.timestamp + timedelta(microseconds=1)},
        {"timestamp": head.timestamp.replace(tzinfo=None)},
        {"method": "http://www.w3.org/2000/09/xmldsig#rsa-sha1"},
        {"signature": b""},
        {"certificate": b""},
        {"certificate": b"x" * 20000},
    ):
        with pytest.raises(InputError):
            dataclasses.replace(head, **change)


@pytest.fixture(scope="module")
def rsa_pki(make_pki: Callable[..., Any], t0: datetime) -> Any:
    """A private PKI with an RSA-2048 node (the session PKI's node is EC and must not be changed)."""
    fresh = make_pki(departments={}, rsa_department=False, node=False)
    fresh.issue("rsa-hub", "RSA 节点", Role.NODE, now=t0 - timedelta(days=5), algorithm=KeyAlgorithm.RSA_2048)
    return fresh


def test_a_head_signed_with_rsa_verifies(rsa_pki: Any, trust: TrustPolicy, t0: datetime) -> None:
    head = sign_tree_head(TreeState(8, ROOT_8), rsa_pki.signer("rsa-hub", Usage.NODE), "rsa-hub", t0)
    assert head.method is SignatureMethod.RSA_SHA256
    verify_tree_head(head, rsa_pki.trust())
    with pytest.raises(TrustError):
        verify_tree_head(head, trust)
    with pytest.raises(SignatureError):
        verify_tree_head(dataclasses.replace(head, method=SignatureMethod.ECDSA_SHA256), rsa_pki.trust())


# --- the store of heads -----------------------------------------------------------------------------------------


@pytest.fixture
def log(tmp_path: Path) -> Any:
    with MerkleLog(tmp_path / "log", create=True) as opened:
        yield opened


def test_the_store_keeps_heads_in_order(log: MerkleLog, node: Signer, node_id: str, t0: datetime) -> None:
    store = TreeHeadStore(log.heads_path)
    assert store.latest is None and list(store) == []
    log.append_many(entries(5))
    first = store.sign(log, node, node_id, t0)
    assert first.size == 5 == log.committed_size and first.root_hash == log.root()
    log.append_many(entries(3, b"more"))
    second = store.sign(log, node, node_id, t0 + timedelta(milliseconds=1))
    third = store.sign(log, node, node_id, t0 + timedelta(seconds=1))  # nothing new: same size, later
    assert list(store) == [first, second, third] and store.latest == third
    assert TreeHeadStore(log.heads_path).latest == third  # kept across reopening
    assert log.heads_path.read_bytes() == b"".join(head_to_line(h) + b"\n" for h in (first, second, third))


def test_the_store_refuses_heads_out_of_order(log: MerkleLog, node: Signer, node_id: str, t0: datetime) -> None:
    store = TreeHeadStore(log.heads_path)
    log.append_many(entries(6))
    last = store.sign(log, node, node_id, t0)
    state = log.flush()
    for at, match in ((t0, "later than the last"), (t0 - timedelta(minutes=1), "later than the last")):
        with pytest.raises(InputError, match=match):
            store.add(sign_tree_head(state, node, node_id, at), log)
    smaller = sign_tree_head(TreeState(5, log.root(5)), node, node_id, t0 + timedelta(minutes=1))
    with pytest.raises(InputError, match="fewer entries"):
        store.add(smaller, log)
    other_node = dataclasses.replace(last, node_id="other-hub", timestamp=t0 + timedelta(minutes=2))
    with pytest.raises(InputError, match="other-hub"):
        store.add(other_node)
    assert list(store) == [last]


def test_the_store_keeps_only_the_logs_committed_and_consistent_states(
    log: MerkleLog, node: Signer, node_id: str, t0: datetime, trust: TrustPolicy
) -> None:
    store = TreeHeadStore(log.heads_path)
    log.append_many(entries(6))
    last = store.sign(log, node, node_id, t0)
    log.append_many(entries(4, b"uncommitted"))
    ahead = sign_tree_head(log.state, node, node_id, t0 + timedelta(minutes=1))
    with pytest.raises(InputError, match="flush it first"):
        store.add(ahead, log)
    log.flush()
    wrong_root = sign_tree_head(TreeState(10, EMPTY_ROOT), node, node_id, t0 + timedelta(minutes=2))
    with pytest.raises(VerificationError, match="not the log's root"):
        store.add(wrong_root, log)
    forked = MemoryTree.of_entries(entries(3) + entries(7, b"fork"))
    fork_head = sign_tree_head(TreeState(10, forked.root()), node, node_id, t0 + timedelta(minutes=3))
    with pytest.raises(VerificationError):
        store.add(fork_head, log)  # not the log's root, and no consistency proof joins it to the last head
    with pytest.raises(VerificationError):
        verify_consistent_heads(last, fork_head, forked.consistency_proof(6, 10), trust)
    assert store.latest == last


def test_a_torn_last_line_is_cut_off_when_the_store_opens(
    log: MerkleLog, node: Signer, node_id: str, t0: datetime
) -> None:
    store = TreeHeadStore(log.heads_path)
    log.append_many(entries(4))
    first = store.sign(log, node, node_id, t0)
    log.append_many(entries(4, b"b"))
    second = store.sign(log, node, node_id, t0 + timedelta(seconds=1))
    whole = log.heads_path.read_bytes()
    log.heads_path.write_bytes(whole[:-200])
    reopened = TreeHeadStore(log.heads_path)
    assert reopened.latest == first and list(reopened) == [first]
    reopened.add(second, log)
    assert log.heads_path.read_bytes() == whole
    log.heads_path.write_bytes(whole[:40])
    assert TreeHeadStore(log.heads_path).latest is None and log.heads_path.read_bytes() == b""


def test_a_damaged_kept_head_is_refused(log: MerkleLog, node: Signer, node_id: str, t0: datetime) -> None:
    store = TreeHeadStore(log.heads_path)
    log.append_many(entries(4))
    store.sign(log, node, node_id, t0)
    line = log.heads_path.read_bytes()
    for damaged in (
        line.replace(b'"size":4', b'"size": 4'),
        line.replace(b'"size":4', b'"size":4.0'),
        line.replace(b'"size":4', b'"size":true'),
        line.replace(b'{"node"', b'{"extra":1,"node"'),
        line.replace(b'Z"', b'z"'),
        line[:20] + line[20:].replace(b"a", b"A", 1),
        b"[]\n",
        b"\xff\n",
    ):
        log.heads_path.write_bytes(damaged)
        with pytest.raises(VerificationError):
            TreeHeadStore(log.heads_path)
        with pytest.raises(VerificationError):
            parse_head_line(damaged[:-1])


# --- XML ---------------------------------------------------------------------------------------------------------


def test_xml_round_trip(head: SignedTreeHead, trust: TrustPolicy) -> None:
    xml = tree_head_to_xml(head)
    assert xml.startswith(
        b"<?xml version='1.0' encoding='UTF-8'?>\n<th:TreeHead xmlns:th=\"urn:gwexchange:treehead:1\""
    )
    parsed = tree_head_from_xml(xml)
    assert parsed == head
    verify_tree_head(parsed, trust)
    inside = etree.Element("{urn:gwexchange:envelope:1}Envelope")
    inside.append(tree_head_to_element(head))
    assert tree_head_from_element(inside[0]) == head


def test_every_byte_of_a_serialised_head_is_covered(head: SignedTreeHead, trust: TrustPolicy) -> None:
    """Changing any byte makes the XML unparseable, shaped wrongly, or carry a head whose signature fails —
    or changes nothing the head holds (the quote style or the namespace prefix, say) and still verifies."""
    xml = tree_head_to_xml(head)
    harmless = 0
    for offset in range(len(xml)):
        damaged = bytearray(xml)
        damaged[offset] ^= 0x01
        try:
            parsed = tree_head_from_xml(bytes(damaged))
        except InputError:
            continue
        if parsed == head:
            harmless += 1
            continue
        with pytest.raises((SignatureError, TrustError)):
            verify_tree_head(parsed, trust)
    assert harmless < 10


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda x: x.replace(b' size="8"', b' size="08"'), InputError),
        (lambda x: x.replace(b' size="8"', b' size="+8"'), InputError),
        (lambda x: x.replace(b' size="8"', b""), InputError),
        (lambda x: x.replace(b' size="8"', b' size="8" extra="1"'), InputError),
        (lambda x: x.replace(b".123Z", b"Z"), InputError),
        (lambda x: x.replace(b"5dc9", b"5DC9"), InputError),
        (lambda x: x.replace(b"<th:RootHash>", b"<th:RootHash> "), InputError),
        (lambda x: x.replace(b"</th:Signature>", b"\n</th:Signature>"), InputError),
        (lambda x: x.replace(b"</th:Certificate>", b"=</th:Certificate>"), InputError),
        (lambda x: x.replace(b"ecdsa-sha256", b"ecdsa-sha1"), InputError),
        (lambda x: x.replace(b"urn:gwexchange:treehead:1", b"urn:gwexchange:treehead:2"), InputError),
        (lambda x: x.replace(b"<th:Certificate>", b"<th:Extra/><th:Certificate>"), InputError),
        (lambda x: x.replace(b"<th:RootHash>", b"text<th:RootHash>"), InputError),
        (lambda x: x.replace(b"</th:TreeHead>", b"<!-- note --></th:TreeHead>"), XmlInputError),
        (lambda x: b'<!DOCTYPE th [<!ENTITY e "x">]>' + x.split(b"?>", 1)[1], XmlInputError),
    ],
)
def test_only_the_one_shape_is_accepted(
    head: SignedTreeHead, change: Callable[[bytes], bytes], error: type[Exception]
) -> None:
    xml = tree_head_to_xml(head)
    changed = change(xml)
    assert changed != xml
    with pytest.raises(error):
        tree_head_from_xml(changed)


def test_the_signature_and_certificate_travel_as_canonical_base64(head: SignedTreeHead) -> None:
    el = tree_head_to_element(head)
    signature = el.find(f"{{{TREEHEAD_NS}}}Signature")
    assert signature is not None and signature.text is not None
    signature.text = signature.text[:-2] + "\n" + signature.text[-2:]
    with pytest.raises(InputError, match="base64"):
        tree_head_from_element(el)


# --- peers ---------------------------------------------------------------------------------------------------


@pytest.fixture
def history(
    log: MerkleLog, node: Signer, node_id: str, t0: datetime
) -> tuple[MerkleLog, TreeHeadStore, list[SignedTreeHead]]:
    """A log whose node signed heads at sizes 3, 10 and 17, a minute apart."""
    store = TreeHeadStore(log.heads_path)
    heads = []
    for k, size in enumerate((3, 10, 17)):
        log.append_many(entries(size - log.size, b"h%d" % k))
        heads.append(store.sign(log, node, node_id, t0 + timedelta(minutes=k)))
    return log, store, heads


def test_a_peers_head_is_proved_a_prefix_of_the_latest(
    history: tuple[MerkleLog, TreeHeadStore, list[SignedTreeHead]], trust: TrustPolicy, node_id: str
) -> None:
    log, store, heads = history
    log.append_many(entries(5, b"unsigned yet"))
    for held in heads:
        check = check_against_peer_view(log, held, trust, node_id=node_id, own_heads=store)
        assert check.latest_head == heads[-1] and check.state == heads[-1].state
        older, newer = verify_consistent_heads(held, heads[-1], check.proof, trust)
        assert (older.head, newer.head) == (held, heads[-1])
    without_store = check_against_peer_view(log, heads[0], trust, node_id=node_id)
    assert without_store.latest_head is None and without_store.state == log.committed


def test_a_rewritten_history_is_caught(
    history: tuple[MerkleLog, TreeHeadStore, list[SignedTreeHead]],
    tmp_path: Path,
    trust: TrustPolicy,
    node: Signer,
    node_id: str,
    t0: datetime,
) -> None:
    log, _, heads = history
    # The node rewrites its log: entry 5 is replaced, the rest appended again, and it signs the new history.
    original = [e for _, e in log.iter_entries()]
    rewritten = [*original[:5], b"a quieter envelope", *original[6:]]
    with MerkleLog(tmp_path / "rewritten", create=True) as other:
        other.append_many(rewritten)
        other_store = TreeHeadStore(other.heads_path)
        new_head = other_store.sign(other, node, node_id, t0 + timedelta(minutes=10))
        # a peer still holding the head of size 3 is fine: that part was not rewritten
        check_against_peer_view(other, heads[0], trust, node_id=node_id, own_heads=other_store)
        for held in heads[1:]:
            with pytest.raises(VerificationError, match="history rewritten"):
                check_against_peer_view(other, held, trust, node_id=node_id, own_heads=other_store)
            # and the peer, given the new head and any proof at all, sees the fork with both signatures
            for proof in (other.consistency_proof(held.size), log.consistency_proof(held.size)):
                with pytest.raises(VerificationError, match="forked or rewritten"):
                    verify_consistent_heads(held, new_head, proof, trust)


def test_lost_entries_or_lost_heads_are_caught(
    history: tuple[MerkleLog, TreeHeadStore, list[SignedTreeHead]],
    tmp_path: Path,
    trust: TrustPolicy,
    node: Signer,
    node_id: str,
    t0: datetime,
) -> None:
    log, store, heads = history
    original = [e for _, e in log.iter_entries()]
    with MerkleLog(tmp_path / "shorter", create=True) as shorter:
        shorter.append_many(original[:12])
        shorter.flush()
        with pytest.raises(VerificationError, match="covers more entries"):
            check_against_peer_view(shorter, heads[2], trust, node_id=node_id)
        with pytest.raises(VerificationError, match=r"latest head \(size 17\) is not its log's"):
            check_against_peer_view(shorter, heads[0], trust, node_id=node_id, own_heads=store)
        lost = TreeHeadStore(tmp_path / "lost-heads")
        lost.sign(shorter, node, node_id, t0 + timedelta(seconds=30))  # heads[0] and a new one, not heads[1]
        with pytest.raises(VerificationError, match="newer than any head this node kept"):
            check_against_peer_view(shorter, heads[1], trust, node_id=node_id, own_heads=lost)
    with pytest.raises(VerificationError, match="not this node's"):
        check_against_peer_view(log, heads[1], trust, node_id="gz-hub.gov", own_heads=store)
    shrunk = sign_tree_head(heads[0].state, node, node_id, heads[2].timestamp + timedelta(minutes=1))
    with pytest.raises(VerificationError, match="lost entries"):
        verify_consistent_heads(heads[2], shrunk, [], trust)
    same_time = sign_tree_head(heads[1].state, node, node_id, heads[2].timestamp)
    with pytest.raises(VerificationError, match="not later"):
        verify_consistent_heads(heads[2], same_time, [], trust)
    verify_consistent_heads(heads[2], heads[2], [], trust)


def test_a_line_nested_too_deep_is_damage_not_a_crash() -> None:
    with pytest.raises(VerificationError, match="malformed"):
        parse_head_line(b"[" * 100_000 + b"]" * 100_000)


def test_a_peers_heads_that_contradict_each_other_are_named(node: Signer, node_id: str, t0: datetime) -> None:
    """Seen without the log: a shrinking head, two roots for one size, a time going back; a plain growth is not."""
    other_root = bytes(32)

    def at(minutes: int, size: int, root: bytes = ROOT_8) -> SignedTreeHead:
        return sign_tree_head(TreeState(size, root), node, node_id, t0 + timedelta(minutes=minutes))

    first = at(0, 8)
    assert contradiction(first, at(1, 9, other_root)) is None  # grown: only a consistency proof can tell
    assert contradiction(first, at(1, 8)) is None  # the same view, signed again
    assert "shrinking: 7 entries" in (contradiction(first, at(1, 7)) or "")
    assert "split view: two roots for 8 entries" in (contradiction(first, at(1, 8, other_root)) or "")
    assert "time went back" in (contradiction(first, at(-1, 9, other_root)) or "")
    kept = [first, at(1, 9, other_root), at(2, 5, other_root), at(3, 5, other_root)]
    assert [(n, what.split(":")[0]) for n, what in contradictions(kept)] == [(node_id, "shrinking")]
