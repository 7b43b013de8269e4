"""Air-gap bundles between two nodes, ``src`` ── ``dst``, each with its store (in-memory SQLite, part files on disk).

Export takes the copies queued for the peer into one stored ZIP and marks them sent only once the file is durable;
import takes each envelope by the SMTP listener's path: node signature, dedup, parts, ``receive`` (inbox, 送达 back).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gwexchange.crypto.certificates import Role, Usage
from gwexchange.envelope.model import Attachment, Classification, Department, DocKind, DocNumber, Document
from gwexchange.envelope.sealing import Sealed, seal
from gwexchange.envelope.signing import sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import EnvelopeError, InputError
from gwexchange.network.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy
from gwexchange.routing import bundle as bundle_module
from gwexchange.routing.bundle import MIMETYPE, export_bundle, import_bundle
from gwexchange.routing.node_logic import DepartmentKeys, NodeView, RecipientState, originate
from gwexchange.routing.store import Store

NODES = ("src", "dst")
SENDER, RECIPIENT = "src.gov.office", "dst.gov.office"
DEPARTMENTS = {SENDER: ("广东省发文测试厅", "src"), RECIPIENT: ("广东省收文测试厅", "dst")}
SCAN = b"%PDF-1.7 scanned annex " * 500


@dataclass
class Pair:
    pki: Any
    views: dict[str, NodeView]
    stores: dict[str, Store]
    now: datetime

    def send(self, title: str) -> Sealed:
        name = DEPARTMENTS[SENDER][0]
        doc = Document(
            kind=DocKind.NOTICE,
            classification=Classification.INTERNAL,
            issuers=(Department(SENDER, name),),
            issuer_mark=f"{name}文件",
            doc_number=DocNumber("粤测发〔2026〕2号"),
            title=f"{name}{title}",
            body=("请按要求开展测试。",),
            signature_names=(name,),
            date=date(2026, 11, 20),
            main_recipients=(Department(RECIPIENT, DEPARTMENTS[RECIPIENT][0]),),
            attachment_note=("扫描件",),
            attachments=(Attachment("扫描件", "scan.pdf", "application/pdf", len(SCAN), _sha(SCAN)),),
        )
        signed = sign_document(document_to_xml(doc), self.pki.signer(SENDER), at=self.now)
        verified = verify_document(signed, self.views["src"].trust, now=self.now)
        parts: dict[str, bytes] = {}

        def sink(cid: str, octets: Any) -> None:
            parts[cid] = b"".join(octets)

        sealed = seal(
            verified,
            {RECIPIENT: self.pki.cert(RECIPIENT, Usage.ENCRYPTION)},
            self.pki.signer("src", Usage.NODE),
            trust=self.views["src"].trust,
            sender_department=SENDER,
            node_id="src",
            now=self.now,
            attachments={"scan.pdf": [SCAN]},
            part_sink=sink,
        )
        src = self.stores["src"]
        src.stage_parts(sealed.header.message_id, sealed.parts, {cid: [data] for cid, data in parts.items()})
        src.apply(originate(sealed, SENDER, self.views["src"], src, self.now))
        return sealed

    def queued(self, node: str, peer: str) -> list[str]:
        return [i.message_id for i in self.stores[node].queue() if i.next_hop == peer and i.state == "queued"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def world(make_pki: Callable[..., Any], now: datetime) -> tuple[Any, dict[str, NodeView]]:
    pki = make_pki(
        departments={code: name for code, (name, _) in DEPARTMENTS.items()}, rsa_department=False, node=False
    )
    for node in NODES:
        pki.issue(node, f"{node} 交换节点", Role.NODE, now=pki.root.not_valid_before_utc)
    trust = pki.trust()
    directory = Directory(
        serial=1,
        issued=now - timedelta(days=1),
        expires=now + timedelta(days=90),
        policy=ZonePolicy(dict.fromkeys(Zone, Classification.TOP_SECRET)),
        nodes=tuple(NodeEntry(n, f"{n}.example", 25, Zone.INTERNAL, pki.cert(n, Usage.NODE)) for n in NODES),
        departments=tuple(
            DepartmentEntry(code, name, home, pki.cert(code), pki.cert(code, Usage.ENCRYPTION))
            for code, (name, home) in DEPARTMENTS.items()
        ),
        links=(Link("src", "dst", Zone.INTERNAL),),
    )
    views = {
        node: NodeView(
            node_id=node,
            directory=directory,
            trust=trust,
            node_signer=pki.signer(node, Usage.NODE),
            departments={
                code: DepartmentKeys(pki.signer(code), pki.key(code, Usage.ENCRYPTION))
                for code, (_, home) in DEPARTMENTS.items()
                if home == node
            },
        )
        for node in NODES
    }
    return pki, views


@pytest.fixture
def pair(world: tuple[Any, dict[str, NodeView]], now: datetime, tmp_path: Path) -> Iterator[Pair]:
    pki, views = world
    stores = {node: Store(tmp_path / node, "sqlite://") for node in NODES}
    yield Pair(pki, views, stores, now)
    for store in stores.values():
        store.close()


def _rewrite(path: Path, target: Path, change: Callable[[str, bytes], tuple[str, bytes, int] | None]) -> None:
    """Copy a bundle member by member; ``change`` gives (name, data, compression) per member, or None to drop it."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            new = change(info.filename, src.read(info.filename))
            if new is not None:
                name, data, compression = new
                out.writestr(zipfile.ZipInfo(name), data, compress_type=compression)


def _export(pair: Pair, tmp_path: Path, name: str = "b.gwxb", node: str = "src", peer: str = "dst") -> Path:
    path = tmp_path / name
    export_bundle(pair.stores[node], pair.views[node], peer, path, pair.now)
    return path


# --- round trip ------------------------------------------------------------------------------------------------


def test_export_then_import_delivers_and_receipts_come_back(pair: Pair, tmp_path: Path) -> None:
    sealed = pair.send("关于交换包测试的通知")
    mid = sealed.header.message_id
    assert pair.queued("src", "dst") == [mid]
    path = tmp_path / "to-dst.gwxb"
    report = export_bundle(pair.stores["src"], pair.views["src"], "dst", path, pair.now)
    assert report.message_ids == (mid,)
    assert pair.queued("src", "dst") == []  # marked sent, as after a 250
    (item,) = pair.stores["src"].queue()
    assert item.state == "sent"
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert infos[0].filename == "mimetype" and zf.read("mimetype") == MIMETYPE.encode()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["from"] == "src" and manifest["to"] == "dst"
        assert manifest["envelopes"] == [{"message_id": mid, "envelope_sha256": sealed.envelope_sha256}]
        assert {i.filename for i in infos} == {
            "mimetype",
            "manifest.json",
            f"envelopes/{mid}/envelope.xml",
            *(f"envelopes/{mid}/parts/{p.cid}" for p in sealed.parts),
        }

    dst = pair.stores["dst"]
    result = import_bundle(path, dst, pair.views["dst"], pair.now)
    assert (result.accepted, result.duplicates, result.refused) == ([mid], [], [])
    assert [(e.department, e.message_id) for e in dst.inbox()] == [(RECIPIENT, mid)]
    assert dst.envelope_xml(mid) == sealed.envelope_xml
    for part in sealed.parts:
        assert b"".join(dst.read_part(mid, part.cid)) == b"".join(pair.stores["src"].read_part(mid, part.cid))
    receipts = pair.queued("dst", "src")  # the 送达 receipt, on its way back toward the sender
    assert len(receipts) == 1

    back = _export(pair, tmp_path, "to-src.gwxb", node="dst", peer="src")
    returned = import_bundle(back, pair.stores["src"], pair.views["src"], pair.now)
    assert returned.accepted == receipts and not returned.refused
    (view,) = pair.stores["src"].outbox()
    assert [state for _, state, _ in view.recipients] == [RecipientState.DELIVERED]


def test_the_same_bundle_twice_is_duplicates_and_nothing_is_filed_twice(pair: Pair, tmp_path: Path) -> None:
    mids = [pair.send(f"关于第{n}次测试的通知").header.message_id for n in (1, 2)]
    path = _export(pair, tmp_path)
    dst = pair.stores["dst"]
    first = import_bundle(path, dst, pair.views["dst"], pair.now)
    assert sorted(first.accepted) == sorted(mids)
    second = import_bundle(path, dst, pair.views["dst"], pair.now + timedelta(minutes=5))
    assert (second.accepted, sorted(second.duplicates), second.refused) == ([], sorted(mids), [])
    assert len(dst.inbox()) == 2
    assert len(pair.queued("dst", "src")) == 2  # one 送达 each, not two


def test_a_tampered_envelope_is_refused_and_the_others_accepted(pair: Pair, tmp_path: Path) -> None:
    good, bad = (pair.send(f"关于第{n}次测试的通知").header.message_id for n in (1, 2))
    path = _export(pair, tmp_path)
    forged: dict[str, str] = {}

    def tamper(name: str, data: bytes) -> tuple[str, bytes, int]:
        if name == f"envelopes/{bad}/envelope.xml":
            data = data.replace(b"dst.gov.office", b"dst.gov.offica", 1)
            forged[bad] = _sha(data)
        return name, data, zipfile.ZIP_STORED

    staged = tmp_path / "staged.gwxb"
    _rewrite(path, staged, tamper)
    tampered = tmp_path / "tampered.gwxb"

    def fix_manifest(name: str, data: bytes) -> tuple[str, bytes, int]:
        if name == "manifest.json":  # the forger updates the manifest too: the node signature still catches it
            manifest = json.loads(data)
            for entry in manifest["envelopes"]:
                entry["envelope_sha256"] = forged.get(entry["message_id"], entry["envelope_sha256"])
            data = json.dumps(manifest).encode()
        return name, data, zipfile.ZIP_STORED

    _rewrite(staged, tampered, fix_manifest)
    report = import_bundle(tampered, pair.stores["dst"], pair.views["dst"], pair.now)
    assert report.accepted == [good]
    assert [mid for mid, _ in report.refused] == [bad]
    assert [e.message_id for e in pair.stores["dst"].inbox()] == [good]
    assert not pair.stores["dst"].seen(bad)

    # without the forged manifest the digest check refuses it first
    report = import_bundle(staged, pair.stores["dst"], pair.views["dst"], pair.now)
    assert report.duplicates == [good]
    assert report.refused and "digest" in report.refused[0][1]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda n, d: (n, d, zipfile.ZIP_DEFLATED if n.endswith(".xml") else zipfile.ZIP_STORED), "compressed"),
        (lambda n, d: (n, b"application/zip" if n == "mimetype" else d, zipfile.ZIP_STORED), "mimetype"),
        (lambda n, d: (n, d, zipfile.ZIP_STORED) if n != "mimetype" else ("mimetype.txt", d, 0), "mimetype"),
        (lambda n, d: (n, d, zipfile.ZIP_STORED) if "envelope.xml" not in n else None, "do not match"),
    ],
    ids=["compressed", "bad-mimetype", "no-mimetype", "missing-envelope"],
)
def test_a_malformed_bundle_is_refused_whole(
    pair: Pair, tmp_path: Path, change: Callable[[str, bytes], Any], error: str
) -> None:
    pair.send("关于交换包测试的通知")
    path = _export(pair, tmp_path)
    bad = tmp_path / "bad.gwxb"
    _rewrite(path, bad, change)
    with pytest.raises(EnvelopeError, match=error):
        import_bundle(bad, pair.stores["dst"], pair.views["dst"], pair.now)
    assert pair.stores["dst"].inbox() == ()


def test_an_extra_member_is_refused(pair: Pair, tmp_path: Path) -> None:
    pair.send("关于交换包测试的通知")
    path = _export(pair, tmp_path)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(zipfile.ZipInfo("../../etc/evil"), b"x")
    with pytest.raises(EnvelopeError, match="unexpected member"):
        import_bundle(path, pair.stores["dst"], pair.views["dst"], pair.now)
    assert pair.stores["dst"].inbox() == ()


def test_too_many_members_and_wrong_node_and_not_a_zip(
    pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair.send("关于交换包测试的通知")
    path = _export(pair, tmp_path)
    with pytest.raises(EnvelopeError, match="not for this node"):
        import_bundle(path, pair.stores["src"], pair.views["src"], pair.now)
    monkeypatch.setattr(bundle_module, "MAX_MEMBERS", 2)
    with pytest.raises(EnvelopeError, match=r"claims 4 members \(at most 2\)"):
        import_bundle(path, pair.stores["dst"], pair.views["dst"], pair.now)
    # an end record that claims fewer members than the directory holds: counted again once zipfile has read it
    lying = tmp_path / "lying.gwxb"
    data = path.read_bytes()
    lying.write_bytes(data[:-14] + struct.pack("<HH", 1, 1) + data[-10:])
    with pytest.raises(EnvelopeError, match="more than 2 members"):
        import_bundle(lying, pair.stores["dst"], pair.views["dst"], pair.now)
    junk = tmp_path / "junk.gwxb"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(InputError):
        import_bundle(junk, pair.stores["dst"], pair.views["dst"], pair.now)


def _with_end_records(bundle: bytes, members: int, directory: int) -> bytes:
    """The bundle with zip64 end records claiming ``members`` and ``directory`` bytes, as a zipfile writer would."""
    body, end = bundle[:-22], bundle[-22:]
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, members, members, directory, 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(body), 1)
    classic = struct.pack("<HHLL", min(members, 0xFFFF), min(members, 0xFFFF), 0xFFFFFFFF, 0xFFFFFFFF)
    return body + zip64 + locator + end[:8] + classic + end[20:]


def test_a_member_directory_over_the_bounds_is_refused_before_zipfile_reads_it(
    pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair.send("关于交换包测试的通知")
    good = _export(pair, tmp_path).read_bytes()
    huge = tmp_path / "huge.gwxb"
    monkeypatch.setattr(bundle_module.zipfile, "ZipFile", _never_opened)
    for members, directory, error in [
        (20_000_000, 900_000_000, "claims 20000000 members"),
        (3, bundle_module.MAX_CENTRAL_DIRECTORY + 1, "central directory is"),
    ]:
        huge.write_bytes(_with_end_records(good, members, directory))
        with pytest.raises(EnvelopeError, match=error):
            import_bundle(huge, pair.stores["dst"], pair.views["dst"], pair.now)
    # the classic end record alone, claiming too many
    huge.write_bytes(good[:-12] + struct.pack("<H", 10_001) + good[-10:])
    with pytest.raises(EnvelopeError, match=r"claims 10001 members \(at most 10000\)"):
        import_bundle(huge, pair.stores["dst"], pair.views["dst"], pair.now)
    assert pair.stores["dst"].inbox() == ()


def _never_opened(*args: object, **kwargs: object) -> None:
    raise AssertionError("zipfile parsed a bundle the end records had already refused")


def test_a_bundle_with_zip64_end_records_is_taken(pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over 4 GiB a bundle ends in zip64 records; a small limit makes zipfile write them for a small one."""
    mid = pair.send("关于交换包测试的通知").header.message_id
    with monkeypatch.context() as m:
        m.setattr(zipfile, "ZIP64_LIMIT", 1024)
        path = _export(pair, tmp_path)
    assert b"PK\x06\x06" in path.read_bytes()[-200:]  # the zip64 end record is there
    report = import_bundle(path, pair.stores["dst"], pair.views["dst"], pair.now)
    assert (report.accepted, report.refused) == ([mid], [])


# --- export is crash-safe ------------------------------------------------------------------------------------


def test_a_failure_while_writing_leaves_the_items_queued(
    pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = pair.send("关于交换包测试的通知").header.message_id
    path = tmp_path / "b.gwxb"

    def disk_fails(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_fails)  # the bundle reaches the disk through files.atomic_file
    with pytest.raises(OSError, match="Input/output"):
        export_bundle(pair.stores["src"], pair.views["src"], "dst", path, pair.now)
    monkeypatch.undo()
    assert not path.exists() and list(tmp_path.glob("*.partial")) == [] and list(tmp_path.glob(".*")) == []
    assert pair.queued("src", "dst") == [mid]
    # and the next export takes it
    assert export_bundle(pair.stores["src"], pair.views["src"], "dst", path, pair.now).message_ids == (mid,)
    assert pair.queued("src", "dst") == []


def test_export_to_an_unknown_peer_is_refused(pair: Pair, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not another node"):
        export_bundle(pair.stores["src"], pair.views["src"], "nowhere", tmp_path / "b.gwxb", pair.now)
    with pytest.raises(InputError, match="not another node"):
        export_bundle(pair.stores["src"], pair.views["src"], "src", tmp_path / "b.gwxb", pair.now)
