"""The auditor's tools on real node homes and real export files (``support.audit``: three nodes, real envelopes).

Every kind of tampering must be found and named: a byte changed anywhere in the entries or the tree heads, an entry
removed, two entries swapped, a tree head from a forked history, a receipt removed from a re-signed log (the
completeness check names the document and the recipient), a node's history rewritten after its peers saw a head
(only the peers' heads can tell — the cross-node check names the node). A clean network verifies, an export
verifies exactly as its home, and hostile export files are refused with a clear error.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import sqlite3
import struct
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from support.audit import AUTHORITY as AUDIT_AUTHORITY
from support.audit import NODES, SENDER, World, build_world, document_for

from gwexchange.archive import audit_archive
from gwexchange.archive.audit import audit, trust_for
from gwexchange.archive.audit_archive import ArchiveSource
from gwexchange.archive.audit_model import AuditOptions, AuditReport, Check, Finding
from gwexchange.archive.audit_proof import check_proof, prove
from gwexchange.archive.audit_report import render_report
from gwexchange.archive.head_store import TreeHeadStore
from gwexchange.archive.log import MerkleLog
from gwexchange.archive.merkle import TreeState, leaf_hash, node_hash
from gwexchange.archive.treehead import head_to_line, parse_head_line, sign_tree_head
from gwexchange.crypto.certificates import Usage
from gwexchange.envelope.model import Classification
from gwexchange.envelope.receipts import ReceiptKind, make_failure, verify_receipt_signature
from gwexchange.envelope.sealing import inspect, receipt_content, seal, seal_receipt
from gwexchange.envelope.signing import sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import ConfigError, InputError, VerificationError
from gwexchange.network.directory_xml import read_unverified_directory, sign_directory
from gwexchange.render.fonts import load_fonts
from gwexchange.routing.home_source import HomeSource, export_archive, open_source


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, make_pki: Callable[..., Any]) -> World:
    return build_world(tmp_path_factory.mktemp("audit-world"), make_pki)


@pytest.fixture
def homes(world: World, tmp_path: Path) -> dict[str, Path]:
    """Fresh copies of the three homes, to tamper with."""
    return world.copy(tmp_path / "homes")


def run(*paths: Path, **options: Any) -> AuditReport:
    with contextlib.ExitStack() as stack:
        return audit([stack.enter_context(open_source(p)) for p in paths], AuditOptions(**options))


def failures(report: AuditReport, check: Check | None = None) -> list[Finding]:
    return [f for f in report.findings if check is None or f.check is check]


def records(log: Path) -> list[tuple[int, int]]:
    """(offset, length) of each entry record in a log's entries file."""
    data = (log / "entries").read_bytes()
    out, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4])
        out.append((pos, length))
        pos += 4 + length
    return out


def entries(log: Path) -> list[bytes]:
    data = (log / "entries").read_bytes()
    return [data[pos + 4 : pos + 4 + length] for pos, length in records(log)]


def receipt_of(entry: bytes, trust: Any) -> Any:
    envelope = inspect(entry, trust)
    return verify_receipt_signature(receipt_content(envelope), trust).receipt


def rebuild_log(home: Path, kept: list[bytes], world: World, node: str, start: datetime) -> None:
    """Replace the node's log by one of ``kept``, heads re-signed by the node: a history written anew."""
    shutil.rmtree(home / "log")
    with MerkleLog(home / "log", create=True) as log:
        heads = TreeHeadStore(log.heads_path)
        for number, entry in enumerate(kept, 1):
            log.append(entry)
            if number % 3 == 0 or number == len(kept):
                heads.sign(log, world.node_signer(node), node, start + timedelta(seconds=number))


def flip(path: Path, position: int) -> bytes:
    data = bytearray(path.read_bytes())
    original = bytes(data)
    data[position] ^= 0x01 if data[position] not in (0x0A, 0x30) else 0x02
    path.write_bytes(bytes(data))
    return original


# --- a clean network --------------------------------------------------------------------------------------------------


def test_a_clean_network_verifies_with_its_tables(world: World) -> None:
    report = run(*world.homes.values(), root=world.root_file.read_bytes())
    assert report.ok, "\n".join(report.summary())
    assert report.root_given and report.revocation_checked
    nodes = {n.node_id: n for n in report.nodes}
    d1, d2, d3 = (world.messages[k] for k in ("D1", "D2", "D3"))
    states = {d.message_id: dict(d.states) for d in nodes["src"].documents}
    assert states == {
        d1: {"one.gov.office": "签收", "hub.gov.office": "退回"},
        d2: {"one.gov.office": "签收"},
        d3: {"one.gov.office": "投递失败"},
    }
    assert {d.message_id: d.role for d in nodes["hub"].documents} == {d1: "收到", d2: "转发", d3: "转发"}
    assert (nodes["src"].inbox, nodes["hub"].inbox, nodes["one"].inbox) == (0, 1, 2)
    kinds = sorted((r.kind, r.answerer) for r in nodes["src"].receipts)
    assert kinds == sorted(
        [
            ("送达", "hub.gov.office"),
            ("退回", "hub.gov.office"),
            *[("送达", "one.gov.office"), ("签收", "one.gov.office")] * 2,
            ("投递失败", "hub"),
        ]
    )
    for n in report.nodes:
        assert n.latest_head is not None and n.latest_head.size == n.entries == n.committed and n.uncovered == 0
    assert report.stats.envelope_signatures == sum(n.entries for n in report.nodes)
    assert report.stats.receipt_signatures == sum(len(n.receipts) for n in report.nodes)
    summary = "\n".join(report.summary())
    assert "结论：全部检查通过" in summary and "节点 hub" in summary
    json.dumps(report.as_json(), ensure_ascii=False)  # everything in it is JSON


def test_the_archive_own_root_is_named_as_a_note_and_a_foreign_root_fails(world: World, make_pki: Any) -> None:
    report = run(world.homes["one"])
    assert report.ok and any("根证书取自归档本身" in note for note in report.notes)
    other = make_pki(departments={}, rsa_department=False, node=False)
    foreign = run(world.homes["one"], root=(other.home / "root.crt").read_bytes())
    assert not foreign.ok
    checks = {f.check for f in foreign.findings}
    assert Check.ARCHIVE in checks and Check.ENVELOPE in checks  # nothing verifies under another authority


def test_export_then_verify_equals_verifying_the_home(world: World, tmp_path: Path) -> None:
    archives = []
    for node in NODES:
        summary = export_archive(world.homes[node], tmp_path / f"{node}.gwxa")
        assert summary.node_id == node and summary.log_size > 0 and summary.heads > 0
        archives.append(summary.path)
    from_homes = run(*world.homes.values()).as_json()
    from_archives = run(*archives).as_json()

    def comparable(report: dict[str, Any]) -> dict[str, Any]:
        report = {k: v for k, v in report.items() if k not in ("at", "stats")}
        report["nodes"] = [
            {k: v for k, v in n.items() if k not in ("source", "kind", "snapshot")} for n in report["nodes"]
        ]
        return report

    assert from_archives["ok"] and comparable(from_archives) == comparable(from_homes)
    with zipfile.ZipFile(archives[1]) as zf:
        names = zf.namelist()
        assert names[0] == "mimetype" and zf.read("mimetype") == audit_archive.MIMETYPE.encode()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert {"log/entries", "log/heads", "log/commit", "peer-heads", "root.crt", "crls/crl-1.pem"} <= set(names)
        assert "directories/directory-1.xml" in names
        assert f"inbox/hub.gov.office/{world.messages['D1']}.xml" in names


def test_signatures_checked_in_worker_processes_give_the_same_report(homes: dict[str, Path]) -> None:
    flip(homes["hub"] / "log" / "entries", 3000)  # and one entry that fails, to see failures come back too

    def comparable(report: AuditReport) -> dict[str, Any]:
        data = report.as_json()
        data["nodes"] = [{k: v for k, v in n.items() if k != "snapshot"} for n in data["nodes"]]
        return {k: v for k, v in data.items() if k not in ("at", "stats")}

    here = run(homes["hub"], homes["one"])
    pooled = run(homes["hub"], homes["one"], workers=2, parallel_from=0)
    assert not here.ok and comparable(pooled) == comparable(here)
    assert pooled.stats.envelope_signatures == here.stats.envelope_signatures


def test_envelopes_are_checked_against_the_directory_in_force_when_they_were_made(
    world: World, homes: dict[str, Path]
) -> None:
    held = read_unverified_directory(world.directory_file.read_bytes())
    now = datetime.now(UTC).replace(microsecond=0)
    newer = dataclasses.replace(held, serial=2, issued=now - timedelta(minutes=1), expires=now + timedelta(days=30))
    signed = sign_directory(newer, world.pki.signer(AUDIT_AUTHORITY), authority_code=AUDIT_AUTHORITY)
    config = homes["one"] / "node.toml"
    (homes["one"] / "directory-2.xml").write_bytes(signed)
    text = config.read_text(encoding="utf-8").replace(str(world.directory_file), str(homes["one"] / "directory-2.xml"))
    config.write_text(text, encoding="utf-8")
    report = run(homes["one"])  # the directory node.toml names was issued after every envelope
    assert {f.check for f in report.findings} == {Check.DIRECTORY}, [str(f) for f in report.findings]
    assert all("有效的交换目录" in f.message for f in report.findings)
    (homes["one"] / "directories").mkdir()
    shutil.copy(world.directory_file, homes["one"] / "directories" / "directory-1.xml")  # as the daemon keeps it
    report = run(homes["one"])
    assert report.ok, [str(f) for f in report.findings]
    assert [serial for serial, _, _ in report.nodes[0].directories] == [1, 2]


# --- tampering with one node's log ------------------------------------------------------------------------------------


def test_every_sampled_byte_of_the_entries_is_caught_and_the_entry_named(homes: dict[str, Path]) -> None:
    log = homes["hub"] / "log" / "entries"
    spans = records(homes["hub"] / "log")
    size = log.stat().st_size
    positions = sorted({*range(0, size, max(1, size // 13)), size - 1, 2})
    for position in positions:
        original = flip(log, position)
        try:
            report = run(homes["hub"])
        finally:
            log.write_bytes(original)
        assert not report.ok, f"byte {position} of the entries changed and nothing was found"
        index = next(i for i, (at, length) in enumerate(spans) if at <= position < at + 4 + length)
        if position >= spans[index][0] + 4:  # inside the entry, not its length: that entry is named
            named = [f for f in failures(report, Check.LOG) if f.index == index]
            assert named, (position, index, [str(f) for f in report.findings])
    assert run(homes["hub"]).ok


def test_every_sampled_byte_of_the_tree_heads_is_caught(homes: dict[str, Path]) -> None:
    heads = homes["hub"] / "log" / "heads"
    size = heads.stat().st_size
    for position in sorted({*range(0, size, max(1, size // 15)), size - 1}):
        original = flip(heads, position)
        os.utime(heads, (1e9, 1e9))  # damaged at rest, not being written
        try:
            report = run(homes["hub"])
        finally:
            heads.write_bytes(original)
        assert failures(report, Check.TREE_HEAD), f"byte {position} of the heads changed and nothing was found"


def test_a_changed_hash_record_is_caught(homes: dict[str, Path]) -> None:
    level = homes["one"] / "log" / "level-01"
    flip(level, 40)
    report = run(homes["one"])
    assert any("哈希记录" in f.message for f in failures(report, Check.LOG)), [str(f) for f in report.findings]


def test_an_entry_removed_is_caught(homes: dict[str, Path]) -> None:
    log = homes["src"] / "log" / "entries"
    data = log.read_bytes()
    at, length = records(homes["src"] / "log")[4]
    log.write_bytes(data[:at] + data[at + 4 + length :])
    report = run(homes["src"])
    assert failures(report, Check.LOG) and failures(report, Check.TREE_HEAD)
    assert not report.ok


def test_two_entries_swapped_are_both_named(homes: dict[str, Path]) -> None:
    log = homes["hub"] / "log" / "entries"
    data = log.read_bytes()
    (a, la), (b, lb) = records(homes["hub"] / "log")[2:4]
    first, second = data[a : a + 4 + la], data[b : b + 4 + lb]
    log.write_bytes(data[:a] + second + first + data[b + 4 + lb :])
    report = run(homes["hub"])
    named = {f.index for f in failures(report, Check.LOG)}
    assert {2, 3} <= named, [str(f) for f in report.findings]


def test_a_tree_head_from_a_forked_history_is_caught(world: World, homes: dict[str, Path]) -> None:
    hub_log = homes["hub"] / "log"
    lines = (hub_log / "heads").read_bytes().splitlines(keepends=True)
    peer_held = [parse_head_line(raw.rstrip(b"\n")) for raw in (homes["src"] / "peer-heads").read_bytes().splitlines()]
    held = [h for h in peer_held if h.node_id == "hub"][-1]  # the last hub head src saw
    line = next(i for i, raw in enumerate(lines) if parse_head_line(raw.rstrip(b"\n")) == held)
    forked = entries(hub_log)[: held.size]
    forked[0] = forked[0].replace(b"<env:Kind>", b"<env:Kind >", 1) if b"<env:Kind>" in forked[0] else b"x" + forked[0]
    tree = MerkleLog(homes["hub"].parent / "fork", create=True)
    tree.append_many(forked)
    state = tree.flush()
    tree.close()
    fork_head = sign_tree_head(TreeState(held.size, state.root), world.node_signer("hub"), "hub", held.timestamp)
    lines[line] = head_to_line(fork_head) + b"\n"
    (hub_log / "heads").write_bytes(b"".join(lines))
    alone = run(homes["hub"])
    assert [f.index for f in failures(alone, Check.TREE_HEAD)] == [line], [str(f) for f in alone.findings]
    together = run(*homes.values())
    forks = [f for f in failures(together, Check.PEER_HEAD) if f.node == "hub" and "历史分叉" in f.message]
    assert forks, [str(f) for f in together.findings]


def test_a_receipt_removed_fails_completeness_naming_document_and_recipient(
    world: World, homes: dict[str, Path]
) -> None:
    d1 = world.messages["D1"]
    kept, removed = [], []
    for entry in entries(homes["src"] / "log"):
        header = inspect(entry, world.trust).header
        if header.in_reply_to == d1 and header.kind.value == "receipt":
            rc = receipt_of(entry, world.trust)
            if rc.kind is ReceiptKind.SIGNED_FOR and rc.answerer == "one.gov.office":
                removed.append(entry)
                continue
        kept.append(entry)
    assert len(removed) == 1
    rebuild_log(homes["src"], kept, world, "src", world.start + timedelta(hours=1))
    report = run(homes["src"])
    assert [(f.check, f.message_id, f.recipient) for f in report.findings] == [
        (Check.COMPLETENESS, d1, "one.gov.office")
    ], [str(f) for f in report.findings]
    assert "已送达，但没有签收或退回回执" in report.findings[0].message
    assert report.findings[0].index == 0  # D1 is src's first entry


def test_a_failure_reported_for_recipients_it_may_not_speak_for_is_named(world: World, homes: dict[str, Path]) -> None:
    d3 = world.messages["D3"]
    kept = entries(homes["src"] / "log")
    document = next(e for e in kept if inspect(e, world.trust).header.message_id == d3)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    notice = make_failure(
        inspect(document, world.trust),
        world.node_signer("hub"),
        node_id="hub",
        now=at,
        reason="测试",
        recipients=("hub.gov.office",),
    )
    forged = seal_receipt(
        notice,
        world.node_signer("hub"),
        sender_department="one.gov.office",
        node_id="hub",
        recipient="src.gov.office",
        in_reply_to=d3,
        now=at,
        classification=Classification.INTERNAL,
    )
    rebuild_log(homes["src"], [*kept, forged.envelope_xml], world, "src", world.start + timedelta(hours=1))
    report = run(homes["src"])
    assert [(f.check, f.index) for f in report.findings] == [(Check.RECEIPT, len(kept))], [
        str(f) for f in report.findings
    ]
    assert "为非收文机关 hub.gov.office 报告投递失败" in report.findings[0].message


def test_a_document_resealed_by_a_node_that_does_not_serve_its_sender_is_named(
    world: World, homes: dict[str, Path]
) -> None:
    """The hub seals src.gov.office's document as its own envelope (a replay under a new id): the nodes refuse
    it; the audit of the hub's own log names it."""
    kept = entries(homes["hub"] / "log")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    notice = document_for(("one.gov.office",), "关于重复发送测试的通知", at.date())
    signed = sign_document(document_to_xml(notice), world.pki.signer(SENDER), at=at)
    replay = seal(
        verify_document(signed, world.trust, now=at),
        {"one.gov.office": world.pki.cert("one.gov.office", Usage.ENCRYPTION)},
        world.node_signer("hub"),
        trust=world.trust,
        sender_department=SENDER,
        node_id="hub",
        now=at,
    )
    rebuild_log(homes["hub"], [*kept, replay.envelope_xml], world, "hub", world.start + timedelta(hours=1))
    report = run(homes["hub"])
    # named for what it is; the hub then also has no 送达 for a document it "sent" (completeness)
    assert [(f.check, f.index) for f in report.findings] == [
        (Check.ENVELOPE, len(kept)),
        (Check.COMPLETENESS, len(kept)),
    ], [str(f) for f in report.findings]
    said = report.findings[0].message
    assert "只有所属节点可以发出它的公文" in said and "所属节点是 src" in said


def test_a_rewritten_history_is_named_by_the_heads_its_peers_hold(world: World, homes: dict[str, Path]) -> None:
    d2 = world.messages["D2"]
    kept = []
    for entry in entries(homes["hub"] / "log"):
        header = inspect(entry, world.trust).header
        relayed_signed_for = header.in_reply_to == d2 and receipt_of(entry, world.trust).kind is ReceiptKind.SIGNED_FOR
        if not relayed_signed_for:
            kept.append(entry)
    assert len(kept) == len(entries(homes["hub"] / "log")) - 1
    rebuild_log(homes["hub"], kept, world, "hub", world.start + timedelta(hours=1))
    alone = run(homes["hub"])
    assert alone.ok, [str(f) for f in alone.findings]  # on its own, the rewritten log is flawless
    together = run(*homes.values())
    named = failures(together, Check.PEER_HEAD)
    assert named and {f.node for f in named} == {"hub"}, [str(f) for f in together.findings]
    assert {f.peer for f in named} == {"src", "one"}
    assert any("改写了历史" in f.message for f in named)


def test_a_changed_or_missing_inbox_document_is_caught(world: World, homes: dict[str, Path]) -> None:
    d1, d2 = world.messages["D1"], world.messages["D2"]
    with contextlib.closing(sqlite3.connect(homes["one"] / "node.db")) as db, db:
        (xml,) = db.execute("SELECT document_xml FROM inbox_entry WHERE message_id = ?", (d1,)).fetchone()
        db.execute(
            "UPDATE inbox_entry SET document_xml = ? WHERE message_id = ?",
            (bytes(xml).replace("审计测试".encode(), "审计演练".encode(), 1), d1),
        )
        db.execute("DELETE FROM inbox_entry WHERE message_id = ?", (d2,))
    report = run(homes["one"])
    found = {(f.message_id, f.recipient): f.message for f in failures(report, Check.DOCUMENT)}
    assert "签名不成立" in found[(d1, "one.gov.office")]
    assert "不在归档的收件箱中" in found[(d2, "one.gov.office")]


def test_heads_and_entries_of_a_live_log_are_cut_at_its_commit(
    world: World, homes: dict[str, Path], tmp_path: Path
) -> None:
    hub = homes["hub"]
    committed = MerkleLog(hub / "log")
    size = committed.committed_size
    committed.append_many([b"x" * (3 << 20), b"y" * (3 << 20)])  # past the write buffer: on disk, not committed
    assert (hub / "log" / "entries").stat().st_size > audit_archive.read_commit(hub / "log").entries_end  # type: ignore[union-attr]
    signer = world.node_signer("hub")
    later = sign_tree_head(TreeState(size + 2, committed.state.root), signer, "hub", datetime.now(UTC))
    with (hub / "log" / "heads").open("ab") as f:
        f.write(head_to_line(later) + b"\n")  # the daemon's next head, signed after the snapshot began
    try:
        summary = export_archive(hub, tmp_path / "hub.gwxa")
        assert summary.log_size == size
        report = run(tmp_path / "hub.gwxa")
        assert report.ok and report.nodes[0].entries == size, [str(f) for f in report.findings]
        assert run(hub).ok  # the home is copied the same way
    finally:
        committed._close_files()  # leave the uncommitted tail uncommitted


# --- proofs -----------------------------------------------------------------------------------------------------------


def rfc9162_root(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 written out again here, as any third party would: the root a proof leads to."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return r


def test_prove_gives_a_proof_any_rfc9162_verifier_accepts(world: World) -> None:
    d2 = world.messages["D2"]
    with open_source(world.homes["hub"]) as source:
        trust, _ = trust_for(source, AuditOptions(), datetime.now(UTC))
        proof = prove(source, d2, trust)
    data = proof.as_json()
    entry = base64.b64decode(data["entry"])
    leaf = hashlib.sha256(b"\x00" + entry).digest()
    assert leaf.hex() == data["leaf_hash"] and leaf == leaf_hash(entry)
    path = [bytes.fromhex(h) for h in data["audit_path"]]
    assert rfc9162_root(leaf, data["leaf_index"], data["tree_size"], path).hex() == data["root_hash"]
    assert data["tree_head"]["root"] == data["root_hash"] and data["tree_head"]["size"] == data["tree_size"]
    assert node_hash(b"\x00" * 32, b"\x00" * 32) != leaf  # (the hashes really are RFC 9162's, prefixed)
    text = json.dumps(data).encode()
    checked = check_proof(text, world.trust)
    assert checked.signer_trusted and checked.proof.leaf_index == data["leaf_index"]
    assert not check_proof(text, None, unsafe_without_root=True).signer_trusted  # the certificate's key only
    with pytest.raises(ConfigError, match="unsafe_without_root"):
        check_proof(text, None)  # never by default


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            lambda d: d.update(leaf_index=d["leaf_index"] ^ 1),
            r"proof of leaf \d+ does not lead to the root of tree size",
        ),
        (
            lambda d: d["audit_path"].__setitem__(0, "00" * 32),
            r"proof of leaf \d+ does not lead to the root of tree size",
        ),
        (
            lambda d: d.update(entry=base64.b64encode(base64.b64decode(d["entry"]) + b" ").decode()),
            "the entry does not hash to the proof's leaf hash",
        ),
        (
            lambda d: d["tree_head"].update(root="11" * 32),
            "the proof's tree size or root hash is not the signed tree head's",
        ),
        (
            lambda d: d.update(message_id="00000000-0000-4000-8000-000000000000"),
            "the entry is message .*, not 00000000-0000-4000-8000-000000000000",
        ),
    ],
    ids=["index", "path", "entry", "head", "message-id"],
)
def test_a_changed_proof_is_refused(world: World, change: Callable[[dict[str, Any]], None], refusal: str) -> None:
    with open_source(world.homes["one"]) as source:
        trust, _ = trust_for(source, AuditOptions(), datetime.now(UTC))
        data = prove(source, world.messages["D1"], trust).as_json()
    change(data)
    with pytest.raises(VerificationError, match=refusal):
        check_proof(json.dumps(data).encode(), world.trust)


def test_prove_an_unknown_message_id_is_an_input_error(world: World) -> None:
    with open_source(world.homes["one"]) as source:
        trust, _ = trust_for(source, AuditOptions(), datetime.now(UTC))
        with pytest.raises(InputError, match="no envelope"):
            prove(source, "00000000-0000-4000-8000-000000000000", trust)


# --- the PDF report ---------------------------------------------------------------------------------------------------


def test_the_pdf_report_names_every_failure(world: World, homes: dict[str, Path]) -> None:
    with contextlib.closing(sqlite3.connect(homes["one"] / "node.db")) as db, db:
        db.execute("DELETE FROM inbox_entry WHERE message_id = ?", (world.messages["D2"],))
    report = run(*homes.values())
    assert not report.ok
    pdf = render_report(report, load_fonts())
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    flat = text.replace("\n", "")
    for expected in ("公文交换审计报告", "概要", "发现的问题", "节点 src 的公文", "节点 one 的回执", "结论：未通过"):
        assert expected in flat, expected
    assert world.messages["D2"] in flat and "不在归档的收件箱中" in flat and "收文" in flat
    assert world.messages["D1"] in flat and "签收" in flat and "退回" in flat
    assert render_report(report, load_fonts()) == pdf  # the same findings, the same bytes


# --- hostile export files ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_archive(world.homes["one"], tmp_path_factory.mktemp("export") / "one.gwxa").path


def rewrite(archive: Path, out: Path, edit: Callable[[str, bytes], list[tuple[zipfile.ZipInfo, bytes]]]) -> Path:
    """Copy an export member by member through ``edit(name, data)`` (which returns the members to write)."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            for new, data in edit(info.filename, src.read(info)):
                dst.writestr(new, data)
    return out


def same(name: str, data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    return [(zipfile.ZipInfo(name), data)]


def refused(path: Path, match: str) -> None:
    with pytest.raises(InputError, match=match):
        ArchiveSource(path)


def test_a_clean_export_reads(archive: Path) -> None:
    with ArchiveSource(archive) as source:
        assert source.node_id == "one" and (source.log_dir / "entries").is_file()
        assert len(list(source.inbox())) == 2


def test_traversal_and_unknown_names_are_refused(archive: Path, tmp_path: Path) -> None:
    for evil in (
        "../evil",
        "/etc/passwd",
        "log/../../x",
        "inbox/one.gov.office/../../x.xml",
        "log/level-99",
        "Log/entries",
    ):
        out = rewrite(
            archive,
            tmp_path / "a.gwxa",
            lambda n, d, e=evil: same(n, d) + ([(zipfile.ZipInfo(e), b"x")] if n == "root.crt" else []),
        )
        refused(out, "unexpected member")


def test_compressed_and_encrypted_members_are_refused(archive: Path, tmp_path: Path) -> None:
    def deflated(name: str, data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
        info = zipfile.ZipInfo(name)
        if name == "log/entries":
            info.compress_type = zipfile.ZIP_DEFLATED
        return [(info, data)]

    refused(rewrite(archive, tmp_path / "b.gwxa", deflated), "compressed")

    encrypted = tmp_path / "c.gwxa"
    encrypted.write_bytes(patch_central(archive.read_bytes(), "root.crt", 8, struct.pack("<H", 0x1)))
    refused(encrypted, "encrypted")


def central_record(data: bytes, member: str) -> int:
    """Where ``member``'s central directory record starts in the ZIP file ``data``."""
    cd = data.find(b"PK\x01\x02")
    while cd >= 0:
        name_length = struct.unpack("<H", data[cd + 28 : cd + 30])[0]
        if data[cd + 46 : cd + 46 + name_length] == member.encode():
            return cd
        cd = data.find(b"PK\x01\x02", cd + 4)
    raise AssertionError(f"no member {member}")


def patch_central(data: bytes, member: str, offset: int, value: bytes) -> bytes:
    """``data`` with ``value`` written at ``offset`` of ``member``'s central directory record."""
    at = central_record(data, member) + offset
    return data[:at] + value + data[at + len(value) :]


def test_a_zip_bomb_of_overlapping_members_is_refused(archive: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        entries_at = zf.getinfo("log/entries").header_offset
    # point log/level-00's central directory record at log/entries's local header: the same bytes twice
    bomb = tmp_path / "bomb.gwxa"
    bomb.write_bytes(patch_central(archive.read_bytes(), "log/level-00", 42, struct.pack("<I", entries_at)))
    with pytest.raises(InputError, match="overlaps another member"):
        ArchiveSource(bomb)


def test_huge_member_counts_are_refused_before_they_are_read(archive: Path, tmp_path: Path, monkeypatch: Any) -> None:
    # an end record claiming a billion members (ZIP64), as zipfile would read it
    zip64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**9, 10**9, 10**12, 0)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, 0, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    claim = tmp_path / "claim.gwxa"
    claim.write_bytes(zip64 + locator + end)
    refused(claim, "claims 1000000000 members")
    # a central directory larger than any real export's
    big = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 10, 10, 1 << 30, 0, 0)
    (tmp_path / "big.gwxa").write_bytes(big)
    refused(tmp_path / "big.gwxa", "central directory is")
    # real members, more than the limit allows
    monkeypatch.setattr(audit_archive, "MAX_MEMBERS", 20)
    many = rewrite(archive, tmp_path / "many.gwxa", same)
    with zipfile.ZipFile(many, "a") as zf:
        for k in range(30):
            zf.writestr(f"crls/crl-{k + 2}.pem", b"")
    refused(many, "members")


def test_oversized_duplicate_and_malformed_archives_are_refused(
    archive: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    refused(
        rewrite(archive, tmp_path / "d.gwxa", lambda n, d: same(n, b"application/zip" if n == "mimetype" else d)),
        "mimetype",
    )
    with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile warns, and writes it all the same
        twice = rewrite(archive, tmp_path / "e.gwxa", lambda n, d: same(n, d) * (2 if n == "root.crt" else 1))
    refused(twice, "appears twice")
    refused(rewrite(archive, tmp_path / "f.gwxa", lambda n, d: [] if n == "mimetype" else same(n, d)), "mimetype")
    refused(
        rewrite(archive, tmp_path / "g.gwxa", lambda n, d: same(n, b"{}" if n == "manifest.json" else d)), "manifest"
    )
    (tmp_path / "h.gwxa").write_bytes(b"not a zip file at all, just text" * 10)
    refused(tmp_path / "h.gwxa", "not an audit archive")
    monkeypatch.setattr(audit_archive, "MAX_ROOT", 10)
    refused(archive, "larger than 10 bytes")


def test_a_member_name_flagged_utf8_that_is_not_is_refused(archive: Path, tmp_path: Path) -> None:
    data = bytearray(patch_central(archive.read_bytes(), "root.crt", 8, struct.pack("<H", 0x800)))  # "UTF-8"
    record = central_record(bytes(data), "root.crt")
    data[record + 46] = 0xFF  # … and the name's first byte is no UTF-8 at all
    damaged = tmp_path / "utf8.gwxa"
    damaged.write_bytes(bytes(data))
    refused(damaged, "not an audit archive")


def test_a_damaged_member_is_refused(archive: Path, tmp_path: Path) -> None:
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("log/entries")
    data[info.header_offset + 30 + len("log/entries") + 100] ^= 0xFF  # CRC mismatch on extraction
    damaged = tmp_path / "damaged.gwxa"
    damaged.write_bytes(bytes(data))
    refused(damaged, "damaged")


def test_sources_clean_up_their_copies(world: World) -> None:
    with HomeSource(world.homes["src"]) as source:
        copy = source.log_dir
        assert (copy / "entries").is_file()
    assert not copy.exists()


def test_a_node_that_logged_nothing_yet_verifies(world: World, tmp_path: Path) -> None:
    home = tmp_path / "quiet"
    home.mkdir()
    shutil.copy(world.homes["one"] / "node.toml", home / "node.toml")
    MerkleLog(home / "log", create=True).close()
    report = run(home)
    assert report.ok and report.nodes[0].entries == 0 and report.nodes[0].latest_head is None
    summary = export_archive(home, tmp_path / "quiet.gwxa")
    assert summary.log_size == 0 and run(summary.path).ok


def test_damaged_peer_heads_are_named_against_their_holder(homes: dict[str, Path]) -> None:
    peer = homes["one"] / "peer-heads"
    lines = peer.read_bytes().splitlines(keepends=True)
    peer.write_bytes(lines[0] + b"x" * (1 << 20) + b"\n" + lines[1][:-40] + lines[1][-39:] + b"".join(lines[2:]))
    report = run(homes["one"])
    named = failures(report, Check.PEER_HEAD)
    assert named and {f.node for f in named} == {"one"}, [str(f) for f in report.findings]
    assert {f.check for f in report.findings} == {Check.PEER_HEAD}


def test_json_nested_too_deeply_is_damage_not_a_crash(world: World, homes: dict[str, Path], tmp_path: Path) -> None:
    nested = b"[" * 5000 + b"]" * 5000 + b"\n"
    heads = homes["one"] / "log" / "heads"
    lines = heads.read_bytes().splitlines(keepends=True)
    heads.write_bytes(b"".join([*lines[:2], nested, *lines[2:]]))
    os.utime(heads, (1e9, 1e9))
    (homes["one"] / "peer-heads").write_bytes(nested + (homes["one"] / "peer-heads").read_bytes())
    report = run(homes["one"])
    assert 2 in {f.index for f in failures(report, Check.TREE_HEAD)}, [str(f) for f in report.findings]
    assert 0 in {f.index for f in failures(report, Check.PEER_HEAD)}
    with pytest.raises(InputError, match="not JSON"):
        check_proof(nested, None, unsafe_without_root=True)
    exported = export_archive(world.homes["one"], tmp_path / "one.gwxa").path
    out = rewrite(exported, tmp_path / "n.gwxa", lambda n, d: same(n, nested if n == "manifest.json" else d))
    refused(out, "manifest")


def test_two_archives_of_one_node_are_an_input_error(world: World) -> None:
    with pytest.raises(InputError, match="same node"):
        run(world.homes["one"], world.homes["one"])


# --- gwx audit --------------------------------------------------------------------------------------------------------


def gwx(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str | Path) -> tuple[int, str, str]:
    """``gwx`` in this process, as the console script runs it: (exit code, stdout, stderr)."""
    from gwexchange.cli import main

    monkeypatch.setattr("sys.argv", ["gwx", *map(str, args)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_gwx_audit_export_verify_prove_report(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = gwx(capsys, monkeypatch, "audit", "export", world.homes["hub"], "-o", tmp_path / "hub.gwxa")
    assert code == 0 and "已导出节点 hub 的归档" in out
    homes = [world.homes["src"], world.homes["one"]]
    code, out, _ = gwx(capsys, monkeypatch, "audit", "verify", *homes, tmp_path / "hub.gwxa", "--root", world.root_file)
    assert code == 0 and "结论：全部检查通过" in out and "归档文件" in out, out
    monkeypatch.setattr("gwexchange.cli.audit.PROGRESS_FROM", 1)  # a "large" archive: progress on stderr
    code, out, err = gwx(capsys, monkeypatch, "audit", "verify", tmp_path / "hub.gwxa", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["nodes"][0]["node"] == "hub" and data["findings"] == []
    assert "hub：信封 0/10（0%）" in err and "hub：信封 10/10（100%）" in err, err

    d1 = world.messages["D1"]
    code, out, _ = gwx(capsys, monkeypatch, "audit", "prove", d1, tmp_path / "hub.gwxa", "--json")
    assert code == 0 and json.loads(out)["message_id"] == d1
    (tmp_path / "proof.json").write_text(out, encoding="utf-8")
    code, out, _ = gwx(capsys, monkeypatch, "audit", "prove", d1, world.homes["hub"])
    assert code == 0 and f"消息 {d1} 是节点 hub 日志的第" in out and "审计路径" in out and "node hub" in out
    args = ("audit", "check-proof", tmp_path / "proof.json", "--root", world.root_file, "--crl", world.crl_file)
    code, out, _ = gwx(capsys, monkeypatch, *args)
    assert code == 0 and "证明成立" in out and "注意" not in out, out
    code, _, err = gwx(capsys, monkeypatch, "audit", "check-proof", tmp_path / "proof.json")
    assert code != 0 and "--unsafe-without-root" in err  # the signature alone only when asked for by name
    code, _, err = gwx(capsys, monkeypatch, "audit", "check-proof", tmp_path / "proof.json", "--root", world.root_file)
    assert code != 0 and "--unsafe-no-revocation" in err
    code, out, _ = gwx(capsys, monkeypatch, "audit", "check-proof", tmp_path / "proof.json", "--unsafe-without-root")
    assert code == 0 and "未核对证书" in out

    code, out, _ = gwx(capsys, monkeypatch, "audit", "report", *world.homes.values(), "-o", tmp_path / "r.pdf")
    assert code == 0 and "结论：全部检查通过" in out
    text = "".join(p.extract_text() for p in PdfReader(tmp_path / "r.pdf").pages).replace("\n", "")
    assert "结论：全部检查通过" in text and "未发现问题" in text and d1 in text


def test_gwx_audit_failures_exit_1(
    world: World, homes: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    flip(homes["one"] / "log" / "entries", 300)
    code, out, _ = gwx(capsys, monkeypatch, "audit", "verify", homes["one"])
    assert code == 1 and "✗ [one] 日志结构（条目 0" in out and "结论：未通过" in out, out
    code, out, _ = gwx(capsys, monkeypatch, "audit", "report", homes["one"], "-o", tmp_path / "r.pdf")
    assert code == 1 and (tmp_path / "r.pdf").is_file()
    proof = tmp_path / "bad.json"
    proof.write_text('{"format": "x"}', encoding="utf-8")
    for args in (
        ("audit", "verify", tmp_path / "missing"),
        ("audit", "check-proof", proof, "--unsafe-without-root"),
        ("audit", "prove", "00000000-0000-4000-8000-000000000000", world.homes["one"]),
    ):
        code, out, err = gwx(capsys, monkeypatch, *args)
        assert code == 1 and err.startswith("gwx: ") and err.count("\n") == 1 and "Traceback" not in err, err
    (tmp_path / "x.gwxa").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    code, _, err = gwx(capsys, monkeypatch, "audit", "verify", tmp_path / "x.gwxa")
    assert code == 1 and err.startswith("gwx: ") and "mimetype" in err, err
