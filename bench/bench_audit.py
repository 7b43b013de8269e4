"""The auditor's full check (``gwx audit verify``) on a synthetic node archive of real envelopes.

Run from the repository root with the project's virtual environment::

    python bench/bench_audit.py                    # 5,000 documents: 15,000 entries (a minute or two)
    python bench/bench_audit.py --documents 20000  # a larger archive

The archive is a sending node's: for each document, its sealed envelope (encrypted for the recipient, signed by
the node) and the recipient's two answers (送达, 签收), each a receipt signed by the department in an envelope
signed by the recipient's node — three log entries, five signatures, every one real (``seal``, ``sign_receipt``,
``seal_receipt``). The log is a real ``MerkleLog`` with a tree head signed every 1,000 entries; the home has the
signed directory, root and CRL; it is exported with ``export_archive``. Making the envelopes is not timed.

What is measured:

* **export** — ``export_archive`` of the home: MB/s;
* **verify** — ``audit`` of the export: entries per second for everything ``gwx audit verify`` does (the archive
  read and copied out, the log structure and tree heads, every envelope's and receipt's signature, the
  directory, receipts against documents, completeness), in one process; then the same without the signature
  checks' time (``AuditStats.signature_seconds``: parsing, canonicalization, ECDSA and the trust policy of every
  envelope and receipt), and the signature checks alone, per second; then with the signatures checked by one
  worker process per CPU (up to 8), as ``gwx audit verify`` does by default.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a source tree without installing
    sys.path.insert(0, str(REPO))

import benchenv  # noqa: E402
from cryptography import x509  # noqa: E402

from gwexchange.archive.audit import audit  # noqa: E402
from gwexchange.archive.audit_archive import ArchiveSource  # noqa: E402
from gwexchange.archive.audit_model import AuditOptions  # noqa: E402
from gwexchange.archive.head_store import TreeHeadStore  # noqa: E402
from gwexchange.archive.log import MerkleLog  # noqa: E402
from gwexchange.crypto.certificates import Role, Usage  # noqa: E402
from gwexchange.crypto.keys import UnsafeUnencrypted, key_from_pem  # noqa: E402
from gwexchange.crypto.trust import TrustPolicy  # noqa: E402
from gwexchange.crypto.xmldsig import Signer  # noqa: E402
from gwexchange.envelope.model import Classification, Department, DocKind, DocNumber, Document  # noqa: E402
from gwexchange.envelope.receipts import AnswererRole, Receipt, ReceiptKind, sign_receipt  # noqa: E402
from gwexchange.envelope.sealing import seal, seal_receipt  # noqa: E402
from gwexchange.envelope.signing import sign_document, verify_document  # noqa: E402
from gwexchange.envelope.xmlform import document_to_xml  # noqa: E402
from gwexchange.network.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy  # noqa: E402
from gwexchange.network.directory_xml import sign_directory  # noqa: E402
from gwexchange.pki.authority import Authority  # noqa: E402
from gwexchange.routing.home_source import export_archive  # noqa: E402

AUTHORITY = "gd.gov.ca"
SENDER, RECIPIENT = "src.gov.office", "one.gov.office"
NAMES = {SENDER: "广东省发文测试厅", RECIPIENT: "广东省收文测试厅", AUTHORITY: "安全中心"}
HEAD_EVERY = 1000


class Pki:
    def __init__(self, home: Path, start: datetime) -> None:
        self.home = home
        unsafe = UnsafeUnencrypted()
        self.ca = Authority.create(
            home, code=AUTHORITY, name="广东省电子政务安全中心（测试）", protection=unsafe, now=start
        )
        for code, name in NAMES.items():
            usages = (Usage.SIGNING,) if code == AUTHORITY else (Usage.SIGNING, Usage.ENCRYPTION)
            for usage in usages:
                self.ca.issue(code=code, name=name, role=Role.DEPARTMENT, usage=usage, protection=unsafe, now=start)
        for node in ("src", "one"):
            self.ca.issue(
                code=node, name=f"{node} 交换节点", role=Role.NODE, usage=Usage.NODE, protection=unsafe, now=start
            )
        self.trust = TrustPolicy(self.ca.root, (x509.load_pem_x509_crl((home / "crl.pem").read_bytes()),))

    def cert(self, code: str, usage: Usage) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.home / "issued" / code / f"{usage.value}.crt").read_bytes())

    def signer(self, code: str, usage: Usage = Usage.SIGNING) -> Signer:
        key = key_from_pem((self.home / "issued" / code / f"{usage.value}.key").read_bytes(), None)
        return Signer(key, self.cert(code, usage))


def make_home(folder: Path, documents: int) -> tuple[Path, int, float]:
    """The sending node's home with ``documents`` documents, each delivered and signed for: (home, entries, s)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    pki = Pki(folder / "ca", start - timedelta(days=1))
    directory = Directory(
        serial=1,
        issued=start - timedelta(days=1),
        expires=start + timedelta(days=60),
        policy=ZonePolicy(dict.fromkeys(Zone, Classification.TOP_SECRET)),
        nodes=tuple(NodeEntry(n, f"{n}.example", 25, Zone.INTERNAL, pki.cert(n, Usage.NODE)) for n in ("src", "one")),
        departments=tuple(
            DepartmentEntry(code, NAMES[code], node, pki.cert(code, Usage.SIGNING), pki.cert(code, Usage.ENCRYPTION))
            for code, node in ((SENDER, "src"), (RECIPIENT, "one"))
        ),
        links=(Link("src", "one", Zone.INTERNAL),),
    )
    home = folder / "src"
    home.mkdir()
    (folder / "directory.signed.xml").write_bytes(
        sign_directory(directory, pki.signer(AUTHORITY), authority_code=AUTHORITY)
    )
    config = {
        "node_id": "src",
        "listen": "127.0.0.1:2525",
        "directory": str(folder / "directory.signed.xml"),
        "root": str(folder / "ca" / "root.crt"),
        "crl": [str(folder / "ca" / "crl.pem")],
        "node_keys": str(folder / "ca" / "issued" / "src"),
    }
    (home / "node.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()), encoding="utf-8")
    src_node, one_node, one_dept = pki.signer("src", Usage.NODE), pki.signer("one", Usage.NODE), pki.signer(RECIPIENT)
    document = Document(
        kind=DocKind.NOTICE,
        classification=Classification.INTERNAL,
        issuers=(Department(SENDER, NAMES[SENDER]),),
        issuer_mark=f"{NAMES[SENDER]}文件",
        doc_number=DocNumber("粤测发〔2026〕1号"),
        title=f"{NAMES[SENDER]}关于审计基准测试的通知",
        body=("一、总体要求", "请按要求开展审计基准测试。" * 8),
        signature_names=(NAMES[SENDER],),
        date=date(2026, 11, 20),
        main_recipients=(Department(RECIPIENT, NAMES[RECIPIENT]),),
    )
    signed = sign_document(document_to_xml(document), pki.signer(SENDER), at=start)
    verified = verify_document(signed, pki.trust, now=start)
    enc = {RECIPIENT: pki.cert(RECIPIENT, Usage.ENCRYPTION)}
    t0 = time.perf_counter()
    entries = 0
    with MerkleLog(home / "log", create=True) as log:
        heads = TreeHeadStore(log.heads_path)
        for k in range(documents):
            at = start + timedelta(seconds=k)
            sealed = seal(verified, enc, src_node, trust=pki.trust, sender_department=SENDER, node_id="src", now=at)
            batch = [sealed.envelope_xml]
            for kind in (ReceiptKind.DELIVERED, ReceiptKind.SIGNED_FOR):
                receipt = Receipt(
                    kind=kind,
                    message_id=sealed.header.message_id,
                    envelope_sha256=sealed.envelope_sha256,
                    document_sha256=verified.digest,
                    role=AnswererRole.DEPARTMENT,
                    answerer=RECIPIENT,
                    time=at,
                )
                batch.append(
                    seal_receipt(
                        sign_receipt(receipt, one_dept),
                        one_node,
                        sender_department=RECIPIENT,
                        node_id="one",
                        recipient=SENDER,
                        in_reply_to=sealed.header.message_id,
                        now=at,
                        classification=Classification.INTERNAL,
                    ).envelope_xml
                )
            for envelope in batch:
                log.append(envelope)
                entries += 1
                if entries % HEAD_EVERY == 0:
                    heads.sign(log, src_node, "src", at + timedelta(milliseconds=entries % 1000 + 1))
            if k % 1000 == 999:
                print(
                    f"              made {entries:,} entries ({entries / (time.perf_counter() - t0):,.0f}/s)",
                    flush=True,
                )
        heads.sign(log, src_node, "src", start + timedelta(seconds=documents + 1))
    return home, entries, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=5000, help="documents (three entries each; default 5,000)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the temporary files (default: $TMPDIR)")
    args = parser.parse_args(argv)
    print(
        f"gwexchange {benchenv.source_revision('gwexchange/archive')}\n{benchenv.machine()}; "
        f"{benchenv.library_versions('cryptography', 'lxml')}"
    )
    with tempfile.TemporaryDirectory(prefix="gwx-bench-audit-", dir=args.dir) as tmp:
        folder = Path(tmp)
        home, entries, made = make_home(folder, args.documents)
        size = (home / "log" / "entries").stat().st_size
        print(
            f"archive       {entries:,} entries ({args.documents:,} documents, each with 送达 and 签收), "
            f"{size / 1e6:.0f} MB of envelopes; made in {made:.0f} s (not timed below)"
        )
        t0 = time.perf_counter()
        summary = export_archive(home, folder / "src.gwxa")
        exported = time.perf_counter() - t0
        mb = summary.bytes / 1e6
        print(f"export        {mb:.0f} MB in {exported:.2f} s = {mb / exported:,.0f} MB/s")
        root = (folder / "ca" / "root.crt").read_bytes()
        for workers in sorted({1, min(8, os.cpu_count() or 1)}):
            t0 = time.perf_counter()
            with contextlib.closing(ArchiveSource(folder / "src.gwxa")) as source:
                opened = time.perf_counter() - t0
                report = audit([source], AuditOptions(root=root, workers=workers, parallel_from=0))
            total = time.perf_counter() - t0
            if not report.ok:
                raise SystemExit("the archive does not verify:\n" + "\n".join(report.summary()))
            s = report.stats
            signatures = s.envelope_signatures + s.receipt_signatures
            print(
                f"verify        {entries:,} entries in {total:.1f} s = {entries / total:,.0f} entries/s, everything, "
                f"{workers} process{'es' if workers > 1 else ''} checking signatures (archive checked and copied out "
                f"in {opened:.2f} s; log structure and {s.head_signatures} tree heads {s.log_seconds:.2f} s)"
            )
            if workers == 1:
                rest = total - s.signature_seconds
                print(
                    f"              without the signature checks: {rest:.1f} s = {entries / rest:,.0f} entries/s; the "
                    f"{signatures:,} envelope and receipt signatures ({s.envelope_signatures:,} node, "
                    f"{s.receipt_signatures:,} department) took {s.signature_seconds:.1f} s = "
                    f"{signatures / s.signature_seconds:,.0f}/s"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
