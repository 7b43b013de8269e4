"""The ``smtp-peer`` class of the hostile-input corpus: hostile peers over real sockets, at a real node.

Node gd-hub of the exchange vectors (``tests/vectors/exchange``) listens on 127.0.0.1 with ``routing.node.Node``'s
own listener and ``on_envelope`` over a SQLite ``Store`` in a temporary folder, its decisions at the corpus's fixed
clock. Peers connect with the vectors' node certificates (valid 2026–2045 on the real clock TLS uses). What
``tests/routing/test_smtp.py`` checks of the transport alone (no STARTTLS → 530, no or a foreign client certificate, a
revoked one, MAIL FROM another node → 550, oversize DATA → 552, malformed MIME → 554) is checked here once more
against the node itself, with corpus cases as the payload and the store as the witness: after every refusal it
holds exactly what it held before.
"""

from __future__ import annotations

import importlib.util
import smtplib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509

from gwexchange.crypto.keys import key_from_pem
from gwexchange.routing.mime import encode_message, envelope_message_id, node_address
from gwexchange.routing.peer_tls import NodeTls, node_tls
from gwexchange.routing.store import Store

HERE = Path(__file__).resolve().parents[1]
ATTACKS = HERE / "attacks"
VECTORS = HERE / "vectors"
TIMEOUT = 10.0


def _load_runner() -> ModuleType:
    name = "gwx_attacks_runner"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ATTACKS / "runner.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


runner = _load_runner()
CASES = {case.name: case for case in runner.load_cases()}
# Cases sent as a whole message: the node's answer for each (554 5.7.1: refused by the node; 5.6.0: not a message).
HOSTILE = {
    "env-readdressed-header.xml": "554 5.7.1",
    "env-readdressed-key-for-someone-else.xml": "554 5.7.1",
    "env-signed-by-other-node.xml": "554 5.7.1",
    "env-node-cert-revoked.xml": "554 5.7.1",
    "env-keytransport-rsa-pkcs1v15.xml": "554 5.7.1",
    "env-document-cert-revoked.xml": "554 5.7.1",
    "mime-part-tampered.eml": "554 5.7.1",
    "mime-not-routed-here-with-part.eml": "554 5.7.1",
    "mime-truncated-half.eml": "554 5.6.0",
    "mime-part-cid-traversal.eml": "554 5.6.0",
    "mime-envelope-bad-base64.eml": "554 5.6.0",
}


def test_the_cases_are_corpus_cases_for_gd_hub() -> None:
    assert all(CASES[name].node == "gd-hub" and CASES[name].target in ("node", "mime") for name in HOSTILE)


def _tls(stem: str, node_id: str) -> NodeTls:
    key = key_from_pem((VECTORS / f"{stem}.key").read_bytes(), None)
    certificate = x509.load_pem_x509_certificate((VECTORS / f"{stem}.crt").read_bytes())
    root = x509.load_pem_x509_certificate((VECTORS / "pki" / "root.crt").read_bytes())
    return node_tls(node_id, key, certificate, root)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Store, Any]]:
    """gd-hub listening, with its store and the corpus world."""
    world = runner.World.load()
    home = tmp_path_factory.mktemp("gd-hub")
    store = Store(home / "store", f"sqlite:///{home / 'node.db'}")
    hub = runner._node(world, store, "gd-hub", home / "node")
    try:
        with runner._quiet(), hub.listener:
            yield hub, store, world
    finally:
        store.close()
        world.close()


def _message(name: str) -> bytes:
    case = CASES[name]
    data = runner.read_input(case)
    if case.target == "mime":
        return bytes(data)
    return encode_message("gd-czt", "gd-hub", data, {}, message_id=envelope_message_id(data))


def _client(hub: Any, tls: NodeTls | None, local: str = "gd-czt") -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", hub.listener.port, local_hostname=local, timeout=TIMEOUT)
    smtp.ehlo()
    if tls is not None:
        smtp.starttls(context=tls.client_context)
        smtp.ehlo()
    return smtp


def _send(smtp: smtplib.SMTP, data: bytes, sender: str = "gd-czt") -> tuple[int, bytes]:
    """MAIL, RCPT, DATA: the first answer that is not a success, or DATA's."""
    code, text = smtp.mail(node_address(sender))
    if code != 250:
        return code, text
    code, text = smtp.rcpt(node_address("gd-hub"))
    if code != 250:
        return code, text
    return smtp.data(data)


@pytest.mark.parametrize(("name", "reply"), sorted(HOSTILE.items()))
def test_a_peer_sending_a_corpus_case_is_refused_and_nothing_is_stored(
    node: tuple[Any, Store, Any], name: str, reply: str
) -> None:
    hub, store, _ = node
    before = runner._fingerprint(store)
    with _client(hub, _tls("exchange/keys/gd-czt/node", "gd-czt")) as smtp:
        code, text = _send(smtp, _message(name))
    assert f"{code} {text.decode()}".startswith(reply), (code, text)
    # the reply says why, in the corpus's words (ASCII-escaped by the listener, as every reply is)
    why = CASES[name].message.encode("ascii", "backslashreplace")[:60]
    assert why in text.replace(b"\r\n", b" ").replace(b"\n", b" "), (why, text)
    assert runner._fingerprint(store) == before


def test_an_unauthenticated_peer_gets_530_and_nothing_is_stored(node: tuple[Any, Store, Any]) -> None:
    hub, store, _ = node
    before = runner._fingerprint(store)
    with _client(hub, None) as smtp:
        code, text = _send(smtp, (VECTORS / "exchange" / "message.eml").read_bytes())
        assert (code, text[:5]) == (530, b"5.7.0")
        assert smtp.docmd("DATA")[0] == 530
    assert runner._fingerprint(store) == before


def test_a_peer_with_a_revoked_node_certificate_is_refused(node: tuple[Any, Store, Any]) -> None:
    hub, store, _ = node
    before = runner._fingerprint(store)
    with _client(hub, _tls("exchange/keys/gd-czt/node-revoked", "gd-czt")) as smtp:
        code, text = _send(smtp, (VECTORS / "exchange" / "message.eml").read_bytes())
    assert code == 554 and b"revoked" in text
    assert runner._fingerprint(store) == before


def test_a_peer_spoofing_another_node_is_refused(node: tuple[Any, Store, Any]) -> None:
    """gd-edge, authenticated by its certificate, claims to be gd-czt in MAIL FROM."""
    hub, store, _ = node
    before = runner._fingerprint(store)
    with _client(hub, _tls("exchange/keys/gd-edge/node", "gd-edge"), local="gd-czt") as smtp:
        code, text = _send(smtp, (VECTORS / "exchange" / "message.eml").read_bytes())
    assert code == 550 and text.startswith(b"5.7.1") and b"gd-edge" in text
    assert runner._fingerprint(store) == before


def test_the_valid_message_is_taken_over_the_same_path(node: tuple[Any, Store, Any]) -> None:
    """The baseline: the message the MIME attacks garble is accepted by this node, and stored, with its part."""
    hub, store, world = node
    data = (VECTORS / "exchange" / "message.eml").read_bytes()
    with _client(hub, _tls("exchange/keys/gd-czt/node", "gd-czt")) as smtp:
        code, text = _send(smtp, data)
        assert code == 250 and text.startswith(b"2.0.0 stored"), (code, text)
        again = _send(smtp, data)  # the same message again: acknowledged, not stored twice
    assert again[0] == 250
    assert [e.department for e in store.inbox()] == ["gd.gov.office"]
    (entry,) = store.inbox()
    assert [p.cid for p in store.parts(entry.message_id)] == ["part-1"]
    assert world.now == runner.fixed_now()
