"""The SMTP client of a node: one envelope copy to the next hop, over a session kept open to it.

The client (``send_envelope``) reports a ``SendResult``: ``DELIVERED`` (2xx), ``TRANSIENT`` (4xx, connection
refused, timeout, TLS failure, no STARTTLS offered, a server certificate that is not the expected node's —
try again later, perhaps after a directory update) or ``PERMANENT`` (5xx: do not retry this envelope).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.times import utcnow
from gwexchange.errors import StateError, TrustError
from gwexchange.network.directory import parse_endpoint
from gwexchange.routing.mime import encode_message, envelope_message_id, node_address
from gwexchange.routing.peer_tls import NodeTls, authenticate_peer

log = logging.getLogger("gwexchange.smtp")

DEFAULT_TIMEOUT = 60.0
"""Seconds the client waits for any one reply (connect, each command, the commit after DATA)."""


class SendStatus(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one transmission: ``code`` is the SMTP reply code, None when there was no reply."""

    status: SendStatus
    code: int | None
    reason: str

    @property
    def delivered(self) -> bool:
        return self.status is SendStatus.DELIVERED

    @property
    def oversize(self) -> bool:
        """Refused for its size: send it by bundle."""
        return self.status is SendStatus.PERMANENT and self.code == 552


def _classify(code: int, text: bytes | str, *, final: bool = False) -> SendResult:
    """The result of a reply: 2xx is delivery only for the ``final`` one (after DATA); any other unexpected
    reply is a failure, permanent if 5xx."""
    reason = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    reason = f"{code} {reason}".replace("\n", " ")
    if final and 200 <= code < 300:
        return SendResult(SendStatus.DELIVERED, code, reason)
    if 500 <= code < 600:
        return SendResult(SendStatus.PERMANENT, code, reason)
    return SendResult(SendStatus.TRANSIENT, code, reason)


class PeerSession:
    """An authenticated SMTP connection to one next hop, kept open for the envelopes queued for it.

    The TLS handshake and the peer's certificate check happen once per connection, not once per envelope; a
    connection the peer closed (idle timeout) is opened again for the next envelope. Blocking: use it from one
    worker thread. Never raises for what happens on the network: each ``deliver`` returns a ``SendResult``.
    """

    def __init__(
        self,
        endpoint: str,
        expected_node_id: str,
        tls: NodeTls,
        *,
        trust: TrustPolicy,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.endpoint = endpoint
        self.expected_node_id = expected_node_id
        self.tls = tls
        self.trust = trust
        self.timeout = timeout
        self.clock = clock
        self._smtp: smtplib.SMTP | None = None
        self._limit = 0
        self._where = f"{expected_node_id} at {endpoint}"

    def __enter__(self) -> PeerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _quit(smtp)

    def deliver(
        self,
        envelope_xml: bytes,
        parts: Mapping[str, bytes],
        *,
        message_id: str | None = None,
        tree_head: bytes | None = None,
        directory: bytes | None = None,
    ) -> SendResult:
        """Send one envelope copy (with the sending node's latest signed tree head and directory, if given)."""
        message = encode_message(
            self.tls.node_id,
            self.expected_node_id,
            envelope_xml,
            parts,
            message_id=message_id or envelope_message_id(envelope_xml),
            tree_head=tree_head,
            directory=directory,
        )
        reused = self._smtp is not None
        result = self._deliver(message)
        if reused and result.status is SendStatus.TRANSIENT and result.code in (None, 421):
            # The kept connection had gone stale, or the listener closed it (421: its session lifetime, RFC 5321
            # §3.8): once more on a new one.
            self.close()
            result = self._deliver(message)
        if not result.delivered:
            self.close()  # after any trouble, start the next envelope on a fresh connection
        return result

    def _deliver(self, message: bytes) -> SendResult:
        try:
            if self._smtp is None:
                failed = self._connect()
                if failed is not None:
                    return failed
            smtp = self._smtp
            if smtp is None:
                raise StateError("not connected")
            options = []
            if self._limit:
                if len(message) > self._limit:
                    return SendResult(
                        SendStatus.PERMANENT,
                        552,
                        f"the message is {len(message)} bytes; {self._where} takes at most {self._limit} (SIZE): "
                        "send it by bundle",
                    )
                options.append(f"SIZE={len(message)}")
            code, text = smtp.mail(node_address(self.tls.node_id), options)
            if code != 250:
                return _classify(code, text)
            code, text = smtp.rcpt(node_address(self.expected_node_id))
            if code not in (250, 251):
                return _classify(code, text)
            code, text = smtp.data(message)
            result = _classify(code, text, final=True)
            log.debug(
                "smtp.sent node=%s endpoint=%s status=%s code=%s bytes=%d",
                self.expected_node_id,
                self.endpoint,
                result.status,
                code,
                len(message),
            )
            return result
        except smtplib.SMTPResponseException as e:
            return _classify(e.smtp_code, e.smtp_error)
        except (smtplib.SMTPException, OSError) as e:  # refused, reset, timeout, TLS alerts (ssl.SSLError is OSError)
            self.close()
            kind = "timeout" if isinstance(e, TimeoutError | socket.timeout) else e.__class__.__name__
            return SendResult(SendStatus.TRANSIENT, None, f"{self._where}: {kind}: {e}")

    def _connect(self) -> SendResult | None:
        """Connect, STARTTLS, check the server is the expected node: None when ready, else why not."""
        host, port = parse_endpoint(self.endpoint, "the next hop")
        where = self._where
        smtp = smtplib.SMTP(host, port, timeout=self.timeout, local_hostname=self.tls.node_id)  # 220 or raises
        self._smtp = smtp
        code, text = smtp.ehlo()
        if code != 250:
            return _classify(code, text)
        if not smtp.has_extn("starttls"):
            return SendResult(SendStatus.TRANSIENT, None, f"{where} does not offer STARTTLS; not sending in the clear")
        code, text = smtp.starttls(context=self.tls.client_context)
        if code != 220:
            return _classify(code, text)
        if not isinstance(smtp.sock, ssl.SSLSocket):
            return SendResult(SendStatus.TRANSIENT, None, f"{where}: STARTTLS did not give a TLS connection")
        try:
            peer = authenticate_peer(smtp.sock.getpeercert(binary_form=True), self.trust, self.clock())
        except TrustError as e:
            return SendResult(SendStatus.TRANSIENT, None, f"{where}: server certificate not accepted: {e}")
        if peer != self.expected_node_id:
            return SendResult(
                SendStatus.TRANSIENT, None, f"{where}: the server's certificate is node {peer}'s, not the next hop's"
            )
        code, text = smtp.ehlo()
        if code != 250:
            return _classify(code, text)
        self._limit = 0
        if smtp.has_extn("size"):
            announced = smtp.esmtp_features.get("size", "").strip()
            self._limit = int(announced) if announced.isdigit() else 0
        return None


def send_envelope(
    endpoint: str,
    expected_node_id: str,
    tls: NodeTls,
    envelope_xml: bytes,
    parts: Mapping[str, bytes],
    *,
    trust: TrustPolicy,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], datetime] = utcnow,
    message_id: str | None = None,
    tree_head: bytes | None = None,
) -> SendResult:
    """Send one envelope copy to node ``expected_node_id`` at ``endpoint`` over SMTP with STARTTLS, on a
    connection of its own (``PeerSession`` keeps one open for many).

    The server's certificate must be ``expected_node_id``'s node certificate and pass ``trust`` (CRL included);
    the message goes only after that. ``message_id`` is read from the envelope's header unless given. Blocking:
    call it in a worker thread from an event loop. Never raises for what happens on the network: the result says.
    """
    with PeerSession(endpoint, expected_node_id, tls, trust=trust, timeout=timeout, clock=clock) as session:
        return session.deliver(envelope_xml, parts, message_id=message_id, tree_head=tree_head)


def _quit(smtp: smtplib.SMTP) -> None:
    if smtp.sock is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


__all__ = [
    "DEFAULT_TIMEOUT",
    "PeerSession",
    "SendResult",
    "SendStatus",
    "send_envelope",
]
