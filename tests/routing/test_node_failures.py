"""The node daemons when things go wrong: real ``gwx node run`` processes on 127.0.0.1, real SMTP with STARTTLS.

    gd-gxt (sends, gd.gov.gxt) ── gd-hub (gd.gov.office) ── gd-czt (gd.gov.czt)

The letter of ``examples/letter.toml`` goes from gd.gov.gxt to gd.gov.czt (主送) and gd.gov.office (抄送). Each test
breaks one thing — a peer down for a while, a peer down past the envelope's expiry, a receiving node whose disk
fails (``GWX_IO_FAULT_FILE``), a directory that sends a node to another node's port, a client that lies about its
node, a 秘密 letter with no permitted route — and checks what the clerk and the nodes see, and that nothing is lost,
delivered twice or delivered after it was given up. Homes are written by the library (``init_home``, what
``gwx node init`` calls) and polled in-process; the daemons and the clerk's checks at the key moments are the
real commands. Every wait is bounded; every process is killed in teardown.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlmodel import Session
from support.nodes import (
    LETTER,
    NODES,
    Network,
    gwx,
    inbox_ids,
    init_homes,
    make_directory,
    make_pki,
    outbox_states,
    wait_for,
)

from gwexchange.cli.local_network import Daemons, LocalPki, free_ports
from gwexchange.envelope.description import load_description_file
from gwexchange.envelope.model import Classification
from gwexchange.envelope.sealing import DEFAULT_LIFETIME, Sealed, seal
from gwexchange.envelope.signing import sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.files import read_chunks
from gwexchange.network.directory import Zone, ZonePolicy
from gwexchange.pki.keyfiles import load_keypair
from gwexchange.routing import node_logic
from gwexchange.routing.context import load_context, open_store
from gwexchange.routing.control import status
from gwexchange.routing.home import NodeConfig
from gwexchange.routing.mime import encode_message, node_address
from gwexchange.routing.peer_tls import node_tls
from gwexchange.routing.store_tables import OutboxRecipient, QueueItem, StoredReceipt

GXT, HUB, CZT = NODES
SENDER = NODES[GXT]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return make_pki(tmp_path_factory.mktemp("failures-pki") / "ca")


@dataclass
class Setup:
    pki: LocalPki
    folder: Path

    def network(
        self,
        *,
        directory_ports: dict[str, str] | None = None,
        policy: ZonePolicy | None = None,
        zones: dict[tuple[str, str], Zone] | None = None,
    ) -> Network:
        """Node homes on fresh ports under a directory of their own (``make_directory``'s ``policy`` and link
        ``zones``). ``directory_ports`` = {node: other}: the directory names ``other``'s port as ``node``'s."""
        listen = free_ports(NODES)
        ports = {node: listen[(directory_ports or {}).get(node, node)] for node in NODES}
        directory = make_directory(self.pki, ports, policy=policy, zones=zones)
        signed = self.pki.publish(directory, self.folder / "directory.signed.xml")
        return init_homes(self.pki, self.folder, signed, listen)


@pytest.fixture
def setup(pki: LocalPki, tmp_path: Path) -> Setup:
    return Setup(pki, tmp_path)


@pytest.fixture
def network(setup: Setup) -> Network:
    return setup.network()


@pytest.fixture
def daemons(network: Network) -> Iterator[Daemons]:
    d = network.daemons()
    try:
        yield d
    finally:
        d.close()


# --- helpers ----------------------------------------------------------------------------------------------------


def seal_letter(home: Path, *, lifetime: timedelta, description: Path = LETTER) -> tuple[Sealed, dict[str, bytes]]:
    """Sign and seal the letter at ``home``'s node as ``gwx send`` does, with an envelope ``lifetime`` of our choice
    (``gwx send`` has no option for it): the sealed envelope and its part octets. Nothing is stored."""
    ctx = load_context(NodeConfig.load(home))
    try:
        doc = load_description_file(description)
        at = datetime.now(UTC)
        signed = sign_document(document_to_xml(doc), ctx.view.departments[SENDER].signer, at=at, trust=ctx.trust)
        verified = verify_document(signed, ctx.trust, now=at)
        certs = {d.code: ctx.directory.department(d.code).encryption_certificate for d in doc.recipients}
        files = {a.file_name: description.parent / "attachments" / a.file_name for a in doc.attachments}
        parts: dict[str, bytes] = {}

        def sink(cid: str, octets: Iterable[bytes]) -> None:
            parts[cid] = b"".join(octets)

        sealed = seal(
            verified,
            certs,
            ctx.view.node_signer,
            trust=ctx.trust,
            sender_department=SENDER,
            node_id=ctx.config.node_id,
            now=at,
            attachments={name: read_chunks(path) for name, path in files.items()},
            part_sink=sink,
            lifetime=lifetime,
        )
    finally:
        ctx.close()
    assert sealed.parts and set(parts) == {p.cid for p in sealed.parts}
    return sealed, parts


def queue_letter(home: Path, lifetime: timedelta = DEFAULT_LIFETIME) -> str:
    """``gwx send`` through the library on the home's store while the daemon runs (quicker than the command, and
    with the envelope lifetime of our choice): seal, stage the parts, apply ``originate`` in one commit. Returns
    the message id."""
    sealed, parts = seal_letter(home, lifetime=lifetime)
    ctx = load_context(NodeConfig.load(home))
    try:
        ctx.store.stage_parts(sealed.header.message_id, sealed.parts, {cid: [data] for cid, data in parts.items()})
        ctx.store.apply(node_logic.originate(sealed, SENDER, ctx.view, ctx.store, datetime.now(UTC)))
    finally:
        ctx.close()
    return sealed.header.message_id


def send(home: Path, description: Path = LETTER) -> str:
    return gwx("send", description, "--home", home, "--department", SENDER).stdout.strip()


def queue_item(home: Path, message_id: str, next_hop: str) -> QueueItem | None:
    with open_store(NodeConfig.load(home)) as store:
        found = [q for q in store.queue() if q.message_id == message_id and q.next_hop == next_hop]
    assert len(found) <= 1
    return found[0] if found else None


def attempts(home: Path, message_id: str, next_hop: str) -> int:
    item = queue_item(home, message_id, next_hop)
    return item.attempts if item is not None else 0


def receipts(home: Path, message_id: str) -> list[StoredReceipt]:
    with open_store(NodeConfig.load(home)) as store:
        return list(store.receipts(message_id))


def seen(home: Path, message_id: str) -> bool:
    with open_store(NodeConfig.load(home)) as store:
        return store.seen(message_id)


def errors_for(home: Path, message_id: str, next_hop: str) -> list[dict[str, object]]:
    return [e for e in status(home)["last_errors"] if e["message_id"] == message_id and e["next_hop"] == next_hop]


def nothing_stored(home: Path) -> None:
    """The node took no envelope at all: no seen id, no queue, no inbox, no part files."""
    with open_store(NodeConfig.load(home)) as store:
        assert store.queue() == ()
        assert store.inbox() == ()
        assert store.outbox() == ()
    assert list((home / "parts").iterdir()) == []


# --- a peer down, then back ---------------------------------------------------------------------------------------


def test_a_peer_down_for_a_while_gets_the_letter_once_when_it_is_back(network: Network, daemons: Daemons) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    daemons.start(GXT, HUB)  # gd-czt is down
    message_id = send(gxt)
    # the hub delivers its own copy and keeps trying gd-czt: several attempts refused
    wait_for(
        lambda: attempts(hub, message_id, CZT) >= 3 and outbox_states(gxt)[(message_id, "gd.gov.office")] == "送达",
        "three failed attempts at gd-czt, and the hub's own 送达",
        log=daemons.log_path(HUB),
    )
    assert outbox_states(gxt)[(message_id, "gd.gov.czt")] == "in transit"
    item = queue_item(hub, message_id, CZT)
    assert item is not None and item.state == "queued" and item.last_error and "ConnectionRefused" in item.last_error

    daemons.start(CZT)
    wait_for(
        lambda: outbox_states(gxt)[(message_id, "gd.gov.czt")] == "送达", "送达 from gd-czt", log=daemons.log_path(HUB)
    )
    rows = json.loads(gwx("inbox", "--home", czt, "--json").stdout)
    assert [r["message_id"] for r in rows] == [message_id]  # once
    rows = json.loads(gwx("outbox", "--home", gxt, "--json").stdout)
    assert {(r["recipient"], r["state"]) for r in rows} == {("gd.gov.czt", "送达"), ("gd.gov.office", "送达")}
    delivered = [(r.kind, r.answerer) for r in receipts(gxt, message_id)]
    assert sorted(delivered) == [("送达", "gd.gov.czt"), ("送达", "gd.gov.office")]  # one 送达 each, no second copy
    item = queue_item(hub, message_id, CZT)
    assert item is not None and item.state == "sent" and item.attempts >= 4


# --- a peer down past expiry -------------------------------------------------------------------------------------


def test_a_peer_down_past_expiry_is_answered_with_a_signed_failure_and_never_delivered_later(
    network: Network, daemons: Daemons
) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    daemons.start(GXT, HUB)  # gd-czt is down
    # The lifetime comes from this machine's pace, measured now: a first letter's way to the hub and its 送达 back.
    # Several times that is time enough for the copy to reach the hub, so that the hub (not the sender) gives up.
    probe = queue_letter(gxt)
    started = time.monotonic()
    wait_for(
        lambda: outbox_states(gxt).get((probe, "gd.gov.office")) == "送达",
        "the probe's 送达",
        log=daemons.log_path(HUB),
    )
    lifetime = max(6.0, 4 * (time.monotonic() - started))
    message_id = queue_letter(gxt, timedelta(seconds=lifetime))
    wait_for(
        lambda: outbox_states(gxt).get((message_id, "gd.gov.czt")) == "投递失败",
        "投递失败 for gd.gov.czt",
        timeout=lifetime + 30,
        log=daemons.log_path(HUB),
    )
    assert outbox_states(gxt)[(message_id, "gd.gov.office")] == "送达"  # the copy the hub delivered stands
    failures = [r for r in receipts(gxt, message_id) if r.kind == "投递失败"]
    assert [(r.kind, r.answerer) for r in failures] == [("投递失败", HUB)]  # signed by the node that gave up
    assert "未能送达 gd-czt".encode() in failures[0].receipt_xml
    with open_store(NodeConfig.load(gxt)) as store, Session(store.engine) as s:
        row = s.get(OutboxRecipient, (message_id, "gd.gov.czt"))
        assert row is not None and row.receipt_sha256 == failures[0].sha256
    item = queue_item(hub, message_id, CZT)
    assert item is not None and item.state == "failed" and item.attempts >= 1

    # gd-czt comes back: a letter sent now goes through, the given-up one does not (it would have gone first)
    daemons.start(CZT)
    later = queue_letter(gxt)
    wait_for(lambda: outbox_states(gxt)[(later, "gd.gov.czt")] == "送达", "the later letter", log=daemons.log_path(HUB))
    wait_for(lambda: probe in inbox_ids(czt, "gd.gov.czt"), "the probe, queued all along", log=daemons.log_path(HUB))
    assert sorted(inbox_ids(czt, "gd.gov.czt")) == sorted([probe, later])
    assert not seen(czt, message_id)
    assert outbox_states(gxt)[(message_id, "gd.gov.czt")] == "投递失败"
    assert [r.kind for r in receipts(gxt, message_id) if r.answerer == "gd.gov.czt"] == []


# --- the receiving node's disk fails ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "text", "at_start"),
    [
        ("ENOSPC", "No space left on device", False),
        ("EIO", "Input/output error", False),
        pytest.param("ENOSPC", "No space left on device", True, id="ENOSPC-at-start"),
    ],
)
def test_a_receiver_whose_disk_fails_defers_with_451_and_takes_the_letter_once_it_recovers(
    network: Network, daemons: Daemons, fault: str, text: str, at_start: bool
) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    fault_file = network.folder / "io-fault"
    if at_start:
        fault_file.write_text(fault, encoding="ascii")
    daemons.start(HUB, GXT, CZT, envs={HUB: {"GWX_IO_FAULT_FILE": str(fault_file)}})
    fault_file.write_text(fault, encoding="ascii")  # every write to the hub's store fails from now on
    message_id = queue_letter(gxt)
    wait_for(lambda: attempts(gxt, message_id, HUB) >= 2, "two refused attempts at the hub", log=daemons.log_path(HUB))

    report = json.loads(gwx("node", "status", gxt, "--json").stdout)
    [error] = [e for e in report["last_errors"] if e["message_id"] == message_id]
    assert error["next_hop"] == HUB and error["state"] == "queued" and error["attempts"] >= 2
    assert error["error"].startswith("451 4.3.0") and text in error["error"], error
    assert report["queue"] == {"queued": 1}
    assert set(outbox_states(gxt).values()) == {"queued"}  # nothing acknowledged
    nothing_stored(hub)
    assert not seen(hub, message_id)

    fault_file.unlink()  # the disk recovers: the sender's next retry goes through by itself
    wanted = {(message_id, "gd.gov.czt"): "送达", (message_id, "gd.gov.office"): "送达"}
    wait_for(lambda: outbox_states(gxt) == wanted, f"送达 in {wanted}", log=daemons.log_path(HUB))
    assert inbox_ids(hub, "gd.gov.office") == [message_id]
    assert inbox_ids(czt, "gd.gov.czt") == [message_id]
    assert sorted((r.kind, r.answerer) for r in receipts(gxt, message_id)) == [
        ("送达", "gd.gov.czt"),
        ("送达", "gd.gov.office"),
    ]


# --- peers that are not who they should be ------------------------------------------------------------------------


def test_a_directory_pointing_a_node_at_another_nodes_port_sends_it_nothing(setup: Setup) -> None:
    network = setup.network(directory_ports={HUB: CZT})  # gd-hub's endpoint is where gd-czt listens
    gxt, czt = network.homes[GXT], network.homes[CZT]
    daemons = network.daemons()
    try:
        daemons.start(GXT, CZT)
        message_id = queue_letter(gxt)
        wait_for(lambda: attempts(gxt, message_id, HUB) >= 2, "two refused attempts", log=daemons.log_path(GXT))
        [error] = errors_for(gxt, message_id, HUB)
        assert error["state"] == "queued"  # transient: a directory update may fix it
        assert "certificate is node gd-czt's, not the next hop's" in str(error["error"]), error
        assert set(outbox_states(gxt).values()) == {"queued"}
        nothing_stored(czt)
        assert not seen(czt, message_id)
        czt_log = daemons.log_path(CZT).read_text(errors="replace")
        assert "smtp.tls" in czt_log and "node=gd-gxt" in czt_log  # it was reached, over TLS, by gd-gxt
        assert "smtp.accepted" not in czt_log and "node.received" not in czt_log
    finally:
        daemons.close()


def test_a_client_claiming_another_node_than_its_certificate_is_refused_and_nothing_is_stored(
    network: Network, daemons: Daemons
) -> None:
    gxt, hub = network.homes[GXT], network.homes[HUB]
    daemons.start(HUB)
    sealed, parts = seal_letter(gxt, lifetime=timedelta(days=1))  # a genuine envelope of gd-gxt for the hub
    message = encode_message(GXT, HUB, sealed.envelope_xml, parts, message_id=sealed.header.message_id)
    config = NodeConfig.load(gxt)
    key, certificate = load_keypair(config.node_keys, "node")
    root = config.root.read_bytes()
    tls = node_tls(GXT, key, certificate, x509.load_pem_x509_certificate(root))
    port = json.loads((hub / "run.json").read_text())["port"]

    with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname=GXT) as smtp:
        smtp.ehlo()
        code, _ = smtp.mail(node_address(GXT))  # no STARTTLS yet: unauthenticated
        assert code == 530
        smtp.starttls(context=tls.client_context)
        smtp.ehlo()
        code, reply = smtp.mail(node_address(CZT))  # gd-gxt's certificate, gd-czt's name
        assert code == 550, reply
        assert b"is not node gd-gxt of the TLS certificate" in reply
        code, _ = smtp.rcpt(node_address(HUB))
        assert code == 503
        code, _ = smtp.docmd("DATA")
        assert code == 503
        nothing_stored(hub)
        assert not seen(hub, sealed.header.message_id)
        # the same connection, the true name: the same message is taken, so the 550 was for the lie alone
        smtp.rset()
        assert smtp.mail(node_address(GXT))[0] == 250
        assert smtp.rcpt(node_address(HUB))[0] == 250
        code, reply = smtp.data(message)
        assert code == 250 and sealed.header.message_id.encode() in reply
    assert seen(hub, sealed.header.message_id)
    assert inbox_ids(hub, "gd.gov.office") == [sealed.header.message_id]

    # a client without a certificate does not get through the handshake
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(cadata=root.decode("ascii"))
    with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname=GXT) as smtp:
        smtp.ehlo()
        with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
            smtp.starttls(context=bare)
            smtp.ehlo()
            smtp.mail(node_address(GXT))


# --- a classified letter with no permitted route ------------------------------------------------------------------


def test_a_secret_letter_over_a_link_that_carries_only_internal_is_refused_at_send(setup: Setup) -> None:
    policy = ZonePolicy(
        {
            Zone.INTERNAL: Classification.TOP_SECRET,
            Zone.PRIVATE: Classification.INTERNAL,
            Zone.PUBLIC: Classification.PUBLIC,
        }
    )
    network = setup.network(policy=policy, zones={(GXT, HUB): Zone.PRIVATE})  # gd-gxt ─专网─ gd-hub
    gxt = network.homes[GXT]
    desk = network.folder / "desk"
    shutil.copytree(LETTER.parent, desk, ignore=shutil.ignore_patterns("*.gwx", "*.xml", "*.pdf"))
    text = (desk / "letter.toml").read_text(encoding="utf-8")
    secret = text.replace(
        'classification = "公开"', 'classification = "秘密"\ncopy_number = "000007"\nsecrecy_period = "1年"'
    )
    internal = text.replace('classification = "公开"', 'classification = "内部"')
    assert text not in (secret, internal)
    (desk / "secret.toml").write_text(secret, encoding="utf-8")
    (desk / "internal.toml").write_text(internal, encoding="utf-8")

    result = gwx("send", desk / "secret.toml", "--home", gxt, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "无可用路由" in result.stderr and "秘密" in result.stderr, result.stderr
    assert "gd.gov.czt" in result.stderr and "gd.gov.office" in result.stderr
    assert "专网最高只能传输内部文件" in result.stderr, result.stderr
    nothing_stored(gxt)
    assert [p.name for p in gxt.iterdir() if p.name.startswith(".outgoing-")] == []

    # the same letter as 内部 takes that link: the refusal was for the 密级
    message_id = send(gxt, desk / "internal.toml")
    assert outbox_states(gxt) == {(message_id, "gd.gov.czt"): "queued", (message_id, "gd.gov.office"): "queued"}
    with open_store(NodeConfig.load(gxt)) as store:
        assert [(q.next_hop, q.state) for q in store.queue()] == [(HUB, "queued")]
