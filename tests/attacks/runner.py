"""Run the hostile-input corpus: every case refused with its typed error, nothing stored, time and memory measured.

A plain module — no pytest — so that ``tests/test_attacks.py`` and a campaign runner use the same code::

    from runner import run_corpus          # with tests/attacks on sys.path
    for r in run_corpus():                  # list[CaseResult]
        print(r.name, r.cls, r.passed, r.seconds, r.peak_bytes, r.detail)

or from the repository root: ``python tests/attacks/runner.py [--json] [--class NAME] [NAME ...]`` (exit status 1 if
any case failed).

The corpus is two indexes: ``tests/attacks/index.toml`` (documents, written by ``make_attacks.py``) and
``tests/attacks/exchange/index.toml`` (envelopes, MIME messages, bundles, packages, receipts, directories, tree
heads, and more documents; written by ``make_exchange_attacks.py``). An entry names its file (or a ``generate``
function of this module for inputs too large to keep), its ``class``, its ``target`` — how it is fed to the library
— the ``error`` class that must be raised (exactly that class) with a ``message`` fragment, and a description.

Targets (all at the fixed clock ``now`` of ``index.toml``, with the trust of ``tests/vectors``):

``document``   ``verify_document``.
``node``       an envelope arriving at node ``node`` (default gd-hub) by the SMTP listener's path, twice over the
               node's ``Store`` (SQLite in a temporary folder): step by step (``inspect`` → seen? →
               ``stage_parts`` → ``store.apply(node_logic.receive(...))``), which gives the typed error, then through
               the real ``routing.node.Node.on_envelope``, whose answer to a refused envelope must be ``Permanent``
               (554): the peer's own bytes, which sending again cannot mend. ``setup`` prepares the store first:
               ``receive`` takes the valid ``envelope.xml`` in (a replay follows), ``sent`` records it in gd-czt's
               outbox (a receipt follows), ``receipt`` does that and takes in the valid ``receipt.xml`` too.
``mime``       a whole SMTP message: ``mime.decode_message``, then as ``node`` with its parts.
``bundle``     ``bundle.import_bundle`` into the store of gd-hub: refused whole, or every envelope refused (the
               typed error of each comes from taking it again on its own).
``package``    ``package.Package`` read and opened by gd.gov.office: envelope, then every part decrypted.
``open``       ``sealing.open_envelope`` by gd.gov.office with its key (what a clerk's tool does).
``directory``  ``verify_directory`` against the held directory ``tests/vectors/exchange/directory.signed.xml``.
``treehead``   ``treehead.tree_head_from_xml`` then ``verify_tree_head``.
``treehead-line`` ``treehead.parse_head_line`` then ``verify_tree_head``.

After a store-backed case the store must hold exactly what it held before the attack (nothing, without a setup):
every table's rows unchanged — no seen id, envelope, queued copy, inbox entry, outbox entry or receipt — and no
part file left behind, not even one the receive path staged before it refused. A node's store is made (and set up)
once, outside the timed case, and reused only while every case leaves it so; a case that changed it fails and the
store is thrown away.

``error = "duplicate"`` (with ``message = "duplicate message id"``) is the one expectation that is not an error:
a replayed envelope is acknowledged and dropped, and must change nothing.

Time is wall-clock (``time.perf_counter``) and memory the peak of Python allocations (``tracemalloc``) while the
case runs — libxml2 and OpenSSL allocate outside it. Nothing here asserts a time: speed belongs to benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
import tomllib
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402

from gwexchange import errors  # noqa: E402
from gwexchange.archive.treehead import parse_head_line, tree_head_from_xml, verify_tree_head  # noqa: E402
from gwexchange.crypto.keys import key_from_pem  # noqa: E402
from gwexchange.crypto.trust import TrustPolicy  # noqa: E402
from gwexchange.crypto.xmldsig import Signer  # noqa: E402
from gwexchange.envelope.package import Package  # noqa: E402
from gwexchange.envelope.receipts import SentRecord  # noqa: E402
from gwexchange.envelope.sealing import open_envelope  # noqa: E402
from gwexchange.envelope.signing import verify_document  # noqa: E402
from gwexchange.errors import GwxError  # noqa: E402
from gwexchange.network.directory import Directory  # noqa: E402
from gwexchange.network.directory_xml import read_unverified_directory, verify_directory  # noqa: E402
from gwexchange.routing import bundle as bundle_module  # noqa: E402
from gwexchange.routing.mime import decode_message  # noqa: E402
from gwexchange.routing.node_logic import DepartmentKeys, NodeView, RecordSent  # noqa: E402
from gwexchange.routing.store import Store  # noqa: E402

VECTORS = TESTS / "vectors"
PKI = VECTORS / "pki"
EXCHANGE_VECTORS = VECTORS / "exchange"
INDEXES = (HERE / "index.toml", HERE / "exchange" / "index.toml")
AUTHORITY = "gd.gov.ca"
DUPLICATE = "duplicate"
TARGETS = ("document", "node", "mime", "bundle", "package", "open", "directory", "treehead", "treehead-line")
ERRORS: dict[str, type[GwxError]] = {
    name: obj for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, GwxError)
}
# The departments each node of the vectors serves: (code, signing certificate, encryption certificate), as
# "<folder>/<code>/<stem>" under tests/vectors.
SERVED = {
    "gd-hub": (
        ("gd.gov.office", "pki/issued/gd.gov.office/signing", "pki/issued/gd.gov.office/encryption"),
        ("gd.gov.fgw", "exchange/keys/gd.gov.fgw/signing", "exchange/keys/gd.gov.fgw/encryption"),
    ),
    "gd-czt": (("gd.gov.czt", "pki/issued/gd.gov.czt/signing", "exchange/keys/gd.gov.czt/encryption"),),
}
OPENER = "gd.gov.office"
STORE_TARGETS = frozenset({"node", "mime", "bundle"})


# --- the corpus ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    cls: str
    target: str
    error: str
    message: str
    description: str
    path: Path | None = None  # the file; None when ``generate`` makes the bytes
    generate: str | None = None
    setup: str | None = None
    node: str = "gd-hub"
    index: Path = INDEXES[0]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case run: ``passed`` when refused with the expected class and message and nothing was stored."""

    name: str
    cls: str
    passed: bool
    seconds: float
    peak_bytes: int
    detail: str


ENTRY_KEYS = frozenset({"class", "target", "error", "message", "description", "generate", "setup", "node"})


def load_cases(indexes: Iterable[Path] = INDEXES) -> list[Case]:
    """Every case of the corpus, in index order; ``ValueError`` for an entry that does not make sense."""
    cases: list[Case] = []
    for index in indexes:
        data = tomllib.loads(index.read_text(encoding="utf-8"))
        for name, entry in data["attacks"].items():
            unknown = set(entry) - ENTRY_KEYS
            if unknown:
                raise ValueError(f"{index.name} [{name}]: unknown keys {sorted(unknown)}")
            target = entry.get("target", "document")
            if target not in TARGETS:
                raise ValueError(f"{index.name} [{name}]: unknown target {target!r}")
            if entry["error"] != DUPLICATE and entry["error"] not in ERRORS:
                raise ValueError(f"{index.name} [{name}]: {entry['error']!r} is not a gwexchange.errors class")
            generate = entry.get("generate")
            if generate is not None and generate not in GENERATORS:
                raise ValueError(f"{index.name} [{name}]: no generator {generate!r}")
            cases.append(
                Case(
                    name=name,
                    cls=entry["class"],
                    target=target,
                    error=entry["error"],
                    message=entry["message"],
                    description=entry["description"],
                    path=None if generate is not None else index.parent / name,
                    generate=generate,
                    setup=entry.get("setup"),
                    node=entry.get("node", "gd-hub"),
                    index=index,
                )
            )
    return cases


def fixed_now(index: Path = INDEXES[0]) -> datetime:
    now: datetime = tomllib.loads(index.read_text(encoding="utf-8"))["now"]
    return now


# --- the world the cases run in ----------------------------------------------------------------------------------


def _certificate(stem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((VECTORS / f"{stem}.crt").read_bytes())


def _signer(stem: str) -> Signer:
    return Signer(key_from_pem((VECTORS / f"{stem}.key").read_bytes(), None), _certificate(stem))


@dataclass
class World:
    """Trust, the held directory, the views of the nodes gd-hub and gd-czt, and the valid exchange vectors."""

    now: datetime
    trust: TrustPolicy
    directory: Directory
    views: dict[str, NodeView]
    envelope_xml: bytes  # the valid envelope gd-czt sent gd.gov.office
    sent: dict[str, Any]  # gd-czt's outbox record of it
    receipt_xml: bytes  # gd-hub's envelope with gd.gov.office's 送达 for it
    _scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gwx-attacks-")))
    _pool: dict[tuple[str, str | None], _Pooled] = field(default_factory=dict)

    @classmethod
    def load(cls) -> World:
        _warm_up()
        now = fixed_now()
        root = x509.load_pem_x509_certificate((PKI / "root.crt").read_bytes())
        crls = tuple(x509.load_pem_x509_crl(p.read_bytes()) for p in (PKI / "crl.pem", EXCHANGE_VECTORS / "crl.pem"))
        trust = TrustPolicy(root, crls, now=now)
        signed = (EXCHANGE_VECTORS / "directory.signed.xml").read_bytes()
        directory = verify_directory(signed, trust, authority_code=AUTHORITY, now=now, held=None).directory
        views = {
            node: NodeView(
                node_id=node,
                directory=directory,
                trust=trust,
                node_signer=_signer(f"exchange/keys/{node}/node"),
                departments={
                    code: DepartmentKeys(_signer(signing), _signer(encryption).key)
                    for code, signing, encryption in served
                },
            )
            for node, served in SERVED.items()
        }
        return cls(
            now=now,
            trust=trust,
            directory=directory,
            views=views,
            envelope_xml=(EXCHANGE_VECTORS / "envelope.xml").read_bytes(),
            sent=json.loads((EXCHANGE_VECTORS / "sent.json").read_text(encoding="utf-8")),
            receipt_xml=(EXCHANGE_VECTORS / "receipt.xml").read_bytes(),
        )

    def close(self) -> None:
        for pooled in self._pool.values():
            pooled.store.close()
        self._pool.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def pooled(self, node_id: str, setup: str | None) -> _Pooled:
        """The store (SQLite in a temporary folder) and ``Node`` of ``node_id`` after ``setup``, made once and
        reused for as long as every case leaves it exactly as it was."""
        key = (node_id, setup)
        found = self._pool.get(key)
        if found is None:
            home = Path(tempfile.mkdtemp(dir=self._scratch, prefix=f"{node_id}-{setup or 'empty'}-"))
            store = Store(home / "store", f"sqlite:///{home / 'node.db'}")
            try:
                node = _node(self, store, node_id, home / "node")
                _setup(setup, node, self, store)
            except BaseException:
                store.close()
                raise
            found = self._pool[key] = _Pooled(store, node, _fingerprint(store), _part_files(store))
        return found

    def discard(self, node_id: str, setup: str | None) -> None:
        """Forget a store a case changed: the next case gets a fresh one."""
        pooled = self._pool.pop((node_id, setup), None)
        if pooled is not None:
            pooled.store.close()

    @contextlib.contextmanager
    def home(self) -> Iterator[Path]:
        """A fresh folder for one case's store, removed afterwards."""
        folder = Path(tempfile.mkdtemp(dir=self._scratch))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class _Pooled:
    store: Store
    node: Any  # routing.node.Node
    fingerprint: dict[str, tuple[int, str]]
    files: list[Path]


def _warm_up() -> None:
    """Build the schemas once, outside any case: their first use costs seconds (xmlschema most), not the case."""
    from gwexchange.envelope import schema

    for name in ("gongwen.xsd", "envelope.xsd", "receipt.xsd", "directory.xsd"):
        schema._libxml2_schema(name)
    schema._xmlschema_schema()


# --- inputs too large to keep in the repository -------------------------------------------------------------------


def _oversize_document() -> bytes:
    """The signed notice padded with paragraphs to one byte over the 16 MiB limit of ``xmlsafe``."""
    from gwexchange.xmlsafe import DEFAULT_MAX_BYTES

    signed = (VECTORS / "notice.signed.xml").read_bytes()
    return _pad(signed, b"<gw:Body>", DEFAULT_MAX_BYTES + 1)


def _oversize_envelope() -> bytes:
    """The valid envelope padded in its header to one byte over the 64 MiB envelope limit."""
    from gwexchange.envelope.sealing import MAX_ENVELOPE_BYTES

    xml = (EXCHANGE_VECTORS / "envelope.xml").read_bytes()
    return _pad(xml, b"<env:Header>", MAX_ENVELOPE_BYTES + 1)


def _pad(data: bytes, after: bytes, size: int) -> bytes:
    chunk = b"<gw:P>x</gw:P>" + b" " * 50
    room = size - len(data)
    padded = data.replace(after, after + chunk * (room // len(chunk)) + b" " * (room % len(chunk)), 1)
    assert len(padded) == size
    return padded


def _huge_text_node() -> bytes:
    """One text node of 11 MB in the Title: over libxml2's 10 MB limit for a single text node (no huge_tree)."""
    signed = (VECTORS / "notice.signed.xml").read_bytes()
    return signed.replace(b"<gw:Title>", b"<gw:Title>" + b"x" * 11_000_000, 1)


def _wide_document() -> bytes:
    """One million empty sibling elements in the Body: within size and depth, refused by the signature."""
    signed = (VECTORS / "notice.signed.xml").read_bytes()
    return signed.replace(b"<gw:Body>", b"<gw:Body>" + b"<gw:P/>" * 1_000_000, 1)


def _bundle_many_members() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), bundle_module.MIMETYPE)
        for i in range(bundle_module.MAX_MEMBERS):
            zf.writestr(zipfile.ZipInfo(f"envelopes/{i:08x}-0000-4000-8000-000000000000/parts/part-1"), b"")
    return buffer.getvalue()


GENERATORS: dict[str, Callable[[], bytes]] = {
    "oversize-document": _oversize_document,
    "oversize-envelope": _oversize_envelope,
    "huge-text-node": _huge_text_node,
    "wide-document": _wide_document,
    "bundle-many-members": _bundle_many_members,
}


# --- running one case ------------------------------------------------------------------------------------------------


class Mismatch(Exception):
    """The case was not refused as its entry says."""


def _fingerprint(store: Store) -> dict[str, tuple[int, str]]:
    """Every table of the store: its row count and a digest of its rows (so an update shows, not only an insert)."""
    found: dict[str, tuple[int, str]] = {}
    with store.engine.connect() as connection:
        tables = [r[0] for r in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in sorted(tables):
            rows = sorted(repr(tuple(r)) for r in connection.exec_driver_sql(f'SELECT * FROM "{table}"'))  # noqa: S608
            found[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16])
    return found


def _part_files(store: Store) -> list[Path]:
    return sorted(p for p in store.parts_dir.rglob("*") if p.is_file())


@dataclass
class _Outcome:
    """What one run produced: the error raised (None: nothing raised) and notes for the detail."""

    error: BaseException | None = None
    notes: list[str] = field(default_factory=list)


def _node(world: World, store: Store, node_id: str, home: Path) -> Any:
    """A ``routing.node.Node`` over ``store``, its clock fixed (the real receive path of the daemon)."""
    from gwexchange.routing.context import NodeContext
    from gwexchange.routing.home import NodeConfig
    from gwexchange.routing.node import Node
    from gwexchange.routing.peer_tls import node_tls

    view = world.views[node_id]
    config = NodeConfig(
        home=home,
        node_id=node_id,
        listen_host="127.0.0.1",
        listen_port=0,
        directory=EXCHANGE_VECTORS / "directory.signed.xml",
        root=PKI / "root.crt",
        crls=(PKI / "crl.pem", EXCHANGE_VECTORS / "crl.pem"),
        node_keys=EXCHANGE_VECTORS / "keys" / node_id,
    )
    signer = view.node_signer
    tls = node_tls(node_id, signer.key, signer.certificate, world.trust.root)
    context = NodeContext(config=config, trust=world.trust, directory=world.directory, view=view, tls=tls, store=store)
    return Node(context, clock=lambda: world.now)


def take(node: Any, envelope_xml: bytes, parts: dict[str, bytes] | None = None) -> None:
    """Give ``node`` a valid envelope as its listener would (from gd-czt); anything but 250 is a ``Mismatch``."""
    from gwexchange.routing.smtp import Accepted

    with _quiet():
        answer = node.on_envelope("gd-czt", envelope_xml, parts or {})
    if not isinstance(answer, Accepted):
        raise Mismatch(f"a valid envelope was not accepted: {answer}")


def _setup(setup: str | None, node: Any, world: World, store: Store) -> None:
    """Bring a fresh store to the state a case starts from, through the real node where the node takes input."""
    if setup is None:
        return
    if setup == "receive":
        take(node, world.envelope_xml)
    elif setup in ("sent", "receipt"):
        s = world.sent
        record = SentRecord(s["message_id"], s["envelope_sha256"], s["document_sha256"], tuple(s["recipients"]))
        paths = {code: tuple(path) for code, path in s["paths"].items()}
        store.apply([RecordSent(s["sender_department"], record, paths, world.now)])
        if setup == "receipt":
            take(node, world.receipt_xml)
    else:
        raise Mismatch(f"unknown setup {setup!r}")


def _via_store(case: Case, world: World, run: Callable[[Store, Any], _Outcome]) -> _Outcome:
    """Run a store-backed case on the node's store (after the case's setup) and check it changed nothing.

    A store is reused from case to case only while each leaves it exactly as it found it; one that changed is
    discarded (and the case fails)."""
    pooled = world.pooled(case.node, case.setup)
    store = pooled.store
    try:
        outcome = run(store, pooled.node)
    except BaseException:
        world.discard(case.node, case.setup)
        raise
    after, files = _fingerprint(store), _part_files(store)
    if after != pooled.fingerprint:
        world.discard(case.node, case.setup)
        changed = {k: (pooled.fingerprint.get(k), v) for k, v in after.items() if v != pooled.fingerprint.get(k)}
        raise Mismatch(f"STORED {changed} [{'; '.join(outcome.notes)}]")
    debris = [p for p in files if p not in pooled.files]
    if debris:
        world.discard(case.node, case.setup)
        left = [str(p.relative_to(store.parts_dir)) for p in debris]
        raise Mismatch(f"part files left behind by the refusal: {left}")
    return outcome


@contextlib.contextmanager
def _quiet(name: str = "gwexchange") -> Iterator[None]:
    """The node logs every refusal at WARNING: silence it while a case runs (the result says it all)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _node_case(case: Case, world: World, data: bytes, parts: dict[str, bytes] | None) -> _Outcome:
    """What the real receive path (``Node.on_envelope``, as the listener calls it) answers: a refusal must be
    permanent (554: the peer's own bytes, sending again cannot help) and carry the typed error that refused it; a
    250 that leaves the store as it was (``_via_store`` checks) is a dropped replay."""
    from gwexchange.routing.smtp import Accepted, Permanent

    def run(store: Store, node: Any) -> _Outcome:
        with _quiet():
            answer = node.on_envelope("gd-czt", data, parts or {})
        if isinstance(answer, Accepted):
            return _Outcome(None, ["node answered accepted (250)", DUPLICATE])
        if not isinstance(answer, Permanent):
            raise Mismatch(f"Node.on_envelope answered {answer}, not permanent (554)")
        if answer.error is None:
            raise Mismatch(f"Node.on_envelope refused without the error that refused it: {answer.reason}")
        return _Outcome(answer.error, ["node answered permanent (554)"])

    return _via_store(case, world, run)


def _mime_case(case: Case, world: World, data: bytes) -> _Outcome:
    try:
        received = decode_message(data)
    except GwxError as e:
        return _Outcome(e, ["refused by decode_message"])
    return _node_case(case, world, received.envelope_xml, received.parts)


def _bundle_case(case: Case, world: World, data: bytes) -> _Outcome:
    def run(store: Store, node: Any) -> _Outcome:
        with world.home() as home:
            path = home / "in.gwxb"
            path.write_bytes(data)
            view = world.views[case.node]
            try:
                report = bundle_module.import_bundle(path, store, view, world.now)
            except GwxError as e:
                return _Outcome(e, ["refused whole"])
            if report.accepted or report.duplicates or not report.refused:
                raise Mismatch(f"imported: {report.as_json()}")
            # Each refused envelope again on its own, for its typed error (the store must stay as it is).
            errors_seen: list[BaseException] = []
            bundle = bundle_module._Bundle(path)
            try:
                for mid, digest in bundle.digests.items():
                    try:
                        bundle_module._take(bundle, mid, digest, store, view, world.now)
                    except GwxError as e:
                        errors_seen.append(e)
            finally:
                bundle.close()
        reasons = "; ".join(reason for _, reason in report.refused)
        if len(errors_seen) != len(report.refused):
            raise Mismatch(f"refused in the import ({reasons}) but not when taken alone")
        # Every envelope of the bundle is judged, not the first only: each must be refused for the case's reason.
        other = [e for e in errors_seen if type(e).__name__ != case.error or case.message not in str(e)]
        if other:
            raise Mismatch(f"{len(other)} of {len(errors_seen)} envelopes refused for another reason: {other[0]!r}")
        return _Outcome(errors_seen[0], [f"refused per envelope: {reasons}"])

    return _via_store(case, world, run)


def _package_case(world: World, data: bytes) -> _Outcome:
    with world.home() as home:
        path = home / "in.gwxp"
        path.write_bytes(data)
        view = world.views["gd-hub"]
        key = view.departments[OPENER].encryption_key
        try:
            with Package(path) as package:
                opened = open_envelope(package.envelope_xml(), OPENER, key, world.trust, now=world.now)
                for part in opened.envelope.parts:
                    for _ in opened.attachment(part, package.part(part.cid)):
                        pass
        except GwxError as e:
            return _Outcome(e)
    return _Outcome()


def _open_case(world: World, data: bytes) -> _Outcome:
    key = world.views["gd-hub"].departments[OPENER].encryption_key
    try:
        open_envelope(data, OPENER, key, world.trust, now=world.now)
    except GwxError as e:
        return _Outcome(e)
    return _Outcome()


def _simple(call: Callable[[], object]) -> _Outcome:
    try:
        call()
    except GwxError as e:
        return _Outcome(e)
    return _Outcome()


def _execute(case: Case, world: World, data: bytes) -> _Outcome:
    if case.target == "document":
        return _simple(lambda: verify_document(data, world.trust, now=world.now))
    if case.target == "node":
        return _node_case(case, world, data, None)
    if case.target == "mime":
        return _mime_case(case, world, data)
    if case.target == "bundle":
        return _bundle_case(case, world, data)
    if case.target == "package":
        return _package_case(world, data)
    if case.target == "open":
        return _open_case(world, data)
    if case.target == "directory":
        held = read_unverified_directory((EXCHANGE_VECTORS / "directory.signed.xml").read_bytes())
        return _simple(lambda: verify_directory(data, world.trust, authority_code=AUTHORITY, now=world.now, held=held))
    if case.target == "treehead":
        return _simple(lambda: verify_tree_head(tree_head_from_xml(data), world.trust))
    if case.target == "treehead-line":
        return _simple(lambda: verify_tree_head(parse_head_line(data.rstrip(b"\n")), world.trust))
    raise Mismatch(f"unknown target {case.target!r}")


def _judge(case: Case, outcome: _Outcome) -> str:
    """Raise ``Mismatch`` unless the outcome is the expected one; return what happened, in one line."""
    error = outcome.error
    if case.error == DUPLICATE:
        if error is not None or DUPLICATE not in outcome.notes:
            raise Mismatch(f"expected a dropped duplicate, got {type(error).__name__ if error else 'acceptance'}")
        return "dropped as a duplicate"
    if error is None:
        raise Mismatch("ACCEPTED")
    name = type(error).__name__
    if name != case.error or case.message not in str(error):
        raise Mismatch(f"refused with {name}: {error}")
    return f"{name}: {str(error).splitlines()[0][:200]}"


def read_input(case: Case) -> bytes:
    if case.generate is not None:
        return GENERATORS[case.generate]()
    assert case.path is not None
    return case.path.read_bytes()


def run_case(case: Case, world: World) -> CaseResult:
    """Run one case, measuring its time and peak Python memory; never raises for a failed case."""
    data = read_input(case)
    digest = hashlib.sha256(data).hexdigest()[:12]
    if case.target in STORE_TARGETS:
        try:
            world.pooled(case.node, case.setup)  # made (and set up) before the clock starts: not the case's cost
        except Exception as e:
            return CaseResult(case.name, case.cls, False, 0.0, 0, f"setup {case.setup!r} failed: {e!r}")
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    try:
        outcome = _execute(case, world, data)
        detail = _judge(case, outcome)
        passed = True
        if outcome.notes:
            detail += " [" + "; ".join(outcome.notes) + "]"
    except Mismatch as e:
        passed, detail = False, f"expected {case.error} containing {case.message!r}; {e}"
    except Exception as e:  # a foreign exception is a finding
        passed, detail = False, f"CRASHED with {type(e).__name__}: {e}"
    seconds = time.perf_counter() - started
    peak = max(0, tracemalloc.get_traced_memory()[1] - base)
    if not tracing:
        tracemalloc.stop()
    return CaseResult(case.name, case.cls, passed, seconds, peak, f"{detail} (input {len(data)} B sha256 {digest}…)")


def run_corpus(
    names: Iterable[str] | None = None, *, classes: Iterable[str] | None = None, world: World | None = None
) -> list[CaseResult]:
    """Run the corpus (or the named cases, in that order, or those of the given classes): one result per case."""
    cases = load_cases()
    if names is not None:
        by_name = {c.name: c for c in cases}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"no such cases: {', '.join(unknown)}")
        cases = [by_name[n] for n in names]
    if classes is not None:
        kinds = set(classes)
        cases = [c for c in cases if c.cls in kinds]
    own = world is None
    world = world or World.load()
    try:
        return [run_case(case, world) for case in cases]
    finally:
        if own:
            world.close()


def class_counts(cases: Iterable[Case]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.cls] = counts.get(case.cls, 0) + 1
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only these cases")
    parser.add_argument("--class", dest="classes", action="append", help="run only the cases of this class")
    parser.add_argument("--json", action="store_true", help="one JSON object per case, one per line")
    args = parser.parse_args(argv)
    results = run_corpus(args.names or None, classes=args.classes)
    for r in results:
        if args.json:
            print(json.dumps(asdict(r), ensure_ascii=False))
        else:
            mark = "ok  " if r.passed else "FAIL"
            print(
                f"{mark} {r.cls:22} {r.name:48} {r.seconds * 1000:9.1f} ms {r.peak_bytes / 1024:9.0f} KiB  {r.detail}"
            )
    failed = [r for r in results if not r.passed]
    if not args.json:
        total = sum(r.seconds for r in results)
        print(f"{len(results) - len(failed)}/{len(results)} refused as expected in {total:.1f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
