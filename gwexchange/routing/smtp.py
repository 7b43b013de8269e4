"""The SMTP listener of a node (aiosmtpd): who may send, what it takes, and what it answers.

Any standard mail relay could sit between two nodes: the transport is plain ESMTP (RFC 5321) with STARTTLS
(RFC 3207), SIZE (RFC 1870) and enhanced status codes (RFC 3463), and the message is plain MIME.

The message
    One SMTP message per envelope copy, from node address to node address, in the MIME format of ``mime``; the
    listener reads it line by line as it arrives (``mime.MessageReader``), never whole.

Size
    The listener announces ``SIZE`` (``DEFAULT_MAX_MESSAGE_BYTES``, 64 MiB, configurable); the limit counts the
    message as sent, so base64 makes the raw envelope and parts at most about 3/4 of it. ``MAIL FROM … SIZE=`` above
    the limit and a DATA that overruns it are refused with ``552 5.3.4``; the client does not even try when the
    message exceeds the size the server announced (it reports a permanent failure with code 552). Larger envelopes
    travel by bundle (removable media, a later transport), not by SMTP. The listener keeps only what it decoded
    (about 3/4 of the message), and all the messages it is reading at once together within ``max_buffered_bytes``
    (the size limit unless set: one message of the largest size, or many smaller ones, at a time): a message that
    would go over is read to its end, kept nowhere and answered ``451 4.3.1`` (try again later), so no number of
    concurrent senders takes the node's memory (with the 64 MiB default, a node stays under 256 MB).

TLS and authentication
    Both sides hold their node certificate and authenticate each other by it (``peer_tls``). The listener learns
    the peer's node id from the certificate; it refuses every command after STARTTLS (with ``554 5.7.1``) if the
    certificate fails the trust policy, ``451 4.7.0`` if it cannot check it now (its own CRL expired), and
    ``550 5.7.1`` for a ``MAIL FROM`` that names another node than the certificate. Mail before STARTTLS gets
    ``530 5.7.0 Must issue a STARTTLS command first``. The EHLO name is only logged (RFC 5321 §4.1.4: a server must
    not refuse mail because the EHLO name is wrong). A recipient other than the listener's own node address gets
    ``550 5.1.1``. No AUTH mechanism is offered (the certificate is the authentication) and a second STARTTLS gets
    ``503 5.5.1``.

Replies (as Postfix gives them)
    ``on_envelope(peer_node_id, envelope_xml, parts)`` runs in a worker thread once the whole message is in; the
    listener answers after it returns, so a 250 means the callback has committed the envelope durably:
    ``Accepted`` → ``250 2.0.0 stored <message id>``, ``Transient`` (disk full, database busy) → ``451 4.3.0 …``,
    ``Permanent`` (bad signature, unknown node) → ``554 5.7.1 …``; an exception from the callback → ``451 4.3.0``,
    never 250 and never silence. A malformed message → ``554 5.6.0``. A client that loses the connection after
    the commit but before the 250 will send the envelope again: receiving nodes de-duplicate by message id.

The client is ``smtp_client``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.times import utcnow
from gwexchange.errors import (
    ConfigError,
    EnvelopeError,
    GwxError,
    StateError,
    TransientError,
    TrustError,
)
from gwexchange.routing.faults import crash_point
from gwexchange.routing.mime import MessageReader, ReceivedMessage, node_address, node_of_address
from gwexchange.routing.peer_tls import NodeTls, authenticate_peer, stale_crl

log = logging.getLogger("gwexchange.smtp")

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0
"""Seconds the listener lets a connection sit idle."""
MAX_REASON = 300
MAX_CONNECTIONS = 256
"""Connections the listener holds at once; one more is answered 421 and closed (file descriptors stay for work)."""
MAX_CONNECTIONS_PER_ADDRESS = 16
"""Connections from one address at once: a peer keeps one per sending worker, never this many."""
MAX_SESSION_SECONDS = 3600.0
"""A connection's whole life: NOOP and RSET reset the idle timer, not this. Ended between messages, never in one."""
COMMAND_LIMITS = {
    # Per connection. MAIL, RCPT and DATA are the work of a kept-open session between nodes: not limited
    # ("*"); the commands that only keep a connection busy are.
    "*": 1_000_000_000,
    "EHLO": 8,
    "HELO": 8,
    "STARTTLS": 2,
    "NOOP": 20,
    "RSET": 200,
    "HELP": 5,
    "VRFY": 5,
    "EXPN": 5,
    "AUTH": 3,
    "QUIT": 1,
}
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


# --- addresses, outcomes, results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    """The envelope is durably committed; ``message_id`` (as verified) goes into the 250 reply."""

    message_id: str


@dataclass(frozen=True, slots=True)
class Transient:
    """Try again later: disk full, database busy, …; ``error`` is the refusal the reason comes from."""

    reason: str
    error: GwxError | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Permanent:
    """Never: bad signature, unknown node, …; ``error`` is the refusal the reason comes from (which check said no)."""

    reason: str
    error: GwxError | None = field(default=None, compare=False)


Outcome = Accepted | Transient | Permanent
OnEnvelope = Callable[[str, bytes, dict[str, bytes]], Outcome]
"""``on_envelope(peer node id, envelope XML, {cid: part octets}) -> Outcome``; called in a worker thread."""
OnTreeHead = Callable[[str, bytes], None]
"""Called with the peer's node id and the tree head (or directory) XML that came with its message, before
``OnEnvelope``."""


def _reply_text(reason: str) -> str:
    """One line of printable ASCII for an SMTP reply (non-ASCII as \\u escapes), at most ``MAX_REASON`` long."""
    text = reason.replace("\r", " ").replace("\n", " ").encode("ascii", "backslashreplace").decode("ascii")
    text = _PRINTABLE.sub("?", text)
    return text[:MAX_REASON] if len(text) > MAX_REASON else text


def _where(session: Session) -> str:
    """The peer's address as host:port, for logs."""
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


# --- the listener --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Peer:
    """What the peer's certificate showed after STARTTLS: the node it is, or why it was refused (a reply)."""

    node_id: str | None
    refusal: str | None = None


def _too_big(limit: int) -> str:
    return f"552 5.3.4 Message too big for this node (at most {limit} bytes): send it by bundle"


class _Reading:
    """One message as DATA brings it in: fed to a ``MessageReader`` within the listener's size limit and memory
    budget, or refused (``refusal``, the reply), keeping nothing of it from then on."""

    def __init__(self, listener: SmtpListener) -> None:
        self._listener = listener
        self._reader: MessageReader | None = MessageReader()
        self._error: EnvelopeError | None = None
        self.refusal: str | None = None
        self.size = 0
        self._reserved = 0  # of the listener's budget

    def feed(self, line: bytes) -> None:
        self.size += len(line)
        reader = self._reader
        if reader is None:
            return
        if self.size > self._listener.max_message_bytes:
            self.refuse(_too_big(self._listener.max_message_bytes))
            return
        try:
            reader.feed(line)
        except EnvelopeError as e:
            self._error = e
            self.release()
            return
        grown = reader.held - self._reserved
        if grown and not self._listener.reserve(grown):
            self.refuse("451 4.3.1 This node is reading too many messages at once; try again later")
            return
        self._reserved += grown

    @property
    def open(self) -> bool:
        """Still taking lines (False once refused: the rest is only skipped)."""
        return self._reader is not None

    def refuse(self, reply: str) -> None:
        if self.refusal is None and self._error is None:
            self.refusal = reply
        self.release()

    def finish(self) -> ReceivedMessage:
        if self._error is not None:
            raise self._error
        assert self._reader is not None  # noqa: S101 (refused readings never get here)
        return self._reader.finish()

    def release(self) -> None:
        """Keep nothing more and give the budget back (once refused, or once the callback is done with it)."""
        self._listener.reserve(-self._reserved)
        self._reserved = 0
        self._reader = None


class _NodeSMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes on the replies it makes itself.

    aiosmtpd answers a few cases with fixed texts (mail before STARTTLS, oversize, a refused TLS peer); ``push``
    swaps exactly those lines for Postfix-style ones. The TLS context is set after ``__init__``: aiosmtpd logs a
    warning for every connection whose context requires client certificates, which ours must.
    """

    def __init__(self, handler: _Handler, *, tls: ssl.SSLContext, max_message_bytes: int, **kwargs: Any) -> None:
        super().__init__(handler, data_size_limit=max_message_bytes, tls_context=None, **kwargs)
        self._handler = handler
        self.tls_context = tls
        self.require_starttls = True
        self._replies = {
            "530 Must issue a STARTTLS command first": "530 5.7.0 Must issue a STARTTLS command first",
            "552 Error: message size exceeds fixed maximum message size": _too_big(max_message_bytes),
            "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
            "503 Error: send HELO first": "503 5.5.1 Error: send EHLO first",
            "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
        }

    async def smtp_DATA(self, arg: str) -> None:
        """DATA read line by line into a ``MessageReader`` (aiosmtpd's own keeps every line as an object until
        the end: 64 MiB of empty lines took gigabytes). Whatever goes wrong, the data is read to its final dot
        before the one reply, as RFC 5321 §4.2.5 wants, keeping nothing once the message is refused."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if self.envelope is None or not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reading = _Reading(self._handler.listener)
        try:
            ended = False
            at_line_start = True
            while self.transport is not None and reading.open:
                try:
                    line = await self._reader.readuntil(b"\r\n")
                except asyncio.CancelledError:
                    self._writer.close()  # the connection is lost during DATA
                    raise
                except asyncio.LimitOverrunError as e:
                    await self._reader.read(e.consumed)
                    reading.refuse("500 5.5.2 Line too long (RFC 5321 section 4.5.3.1.6)")
                    at_line_start = False
                    break
                if line == b".\r\n":
                    ended = True
                    break
                reading.feed(line[1:] if line.startswith(b".") else line)
            if not ended and not await self._skip_to_end(at_line_start):
                return  # the connection is gone
            assert self.session is not None  # noqa: S101 (set when the connection was made)
            reply = await self._handler.take(self.session, reading)
        finally:
            reading.release()
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(reply)

    async def _skip_to_end(self, at_line_start: bool) -> bool:
        """Read a refused message to its final dot in blocks, not lines (a flood of empty lines costs a few reads
        per 64 KiB); False if the connection ended first. Without PIPELINING a client sends nothing after the
        dot before the reply, so whatever came in the same block after it is dropped."""
        window = b"\r\n" if at_line_start else b""
        while self.transport is not None:
            block = await self._reader.read(1 << 16)
            if not block:
                return False
            data = window + block
            if data.find(b"\r\n.\r\n") >= 0:
                return True
            window = data[-4:]
        return False

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None:  # RFC 3207 §4.2: once only; aiosmtpd would nest a second TLS layer
            await self.push("503 5.5.1 TLS already active")
            return
        await super().smtp_STARTTLS(arg)

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            if status == "554 Command refused due to lack of security":
                peer = self._handler.peer
                status = peer.refusal if peer is not None and peer.refusal else "554 5.7.1 Peer not accepted"
            else:
                status = self._replies.get(status, status)
        await super().push(status)
        if isinstance(status, str) and status.startswith("250 2.0.0 stored"):
            crash_point("acknowledged")


class _Handler:
    """The aiosmtpd event handler of one connection: authenticates the peer, checks the envelope addresses,
    takes the message. ``peer`` is set by STARTTLS (None before: no mail is taken)."""

    def __init__(self, listener: SmtpListener) -> None:
        self.listener = listener
        self.peer: _Peer | None = None

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        listener = self.listener
        ssl_object = session.ssl.get("ssl_object") if session.ssl else None
        der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
        now = listener.clock()
        if stale_crl(listener.trust, now):
            listener.quiet.log(
                logging.ERROR,
                "smtp.refused",
                f"peer={_where(session)} reason=crl-expired (this node's CRL is out of date)",
            )
            self.peer = _Peer(None, "451 4.7.0 Cannot check certificates now: this node's CRL is out of date")
            return False
        try:
            node_id = authenticate_peer(der, listener.trust, now)
        except TrustError as e:
            listener.quiet.warning(
                "smtp.refused", f"peer={_where(session)} reason=certificate detail={_reply_text(str(e))}"
            )
            self.peer = _Peer(None, f"554 5.7.1 Certificate not accepted: {_reply_text(str(e))}")
            return False
        self.peer = _Peer(node_id)
        session.authenticated = True
        log.info("smtp.tls peer=%s node=%s", _where(session), node_id)
        return True

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        peer = self.peer
        if peer is not None and peer.node_id is not None and hostname != peer.node_id:
            log.info(
                "smtp.ehlo peer=%s node=%s ehlo=%s (differs, not refused)", _where(session), peer.node_id, hostname
            )
        # No AUTH: peers authenticate with their certificates.
        return [r for r in responses if not r[4:].startswith("AUTH")]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        peer = self.peer
        if peer is None or peer.node_id is None:  # aiosmtpd refuses first; never rely on it alone
            return "530 5.7.0 Must issue a STARTTLS command first"
        claimed = node_of_address(address)
        if claimed != peer.node_id:
            self.listener.quiet.warning(
                "smtp.refused",
                f"peer={_where(session)} node={peer.node_id} mail_from={_reply_text(address)} reason=mismatch",
            )
            return f"550 5.7.1 Sender {_reply_text(address)} is not node {peer.node_id} of the TLS certificate"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if node_of_address(address) != self.listener.node_id:
            return f"550 5.1.1 {_reply_text(address)}: this is node {self.listener.node_id}"
        if address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def take(self, session: Session, reading: _Reading) -> str:
        """The reply to a message read to its end: its callbacks run in threads, 250 only once it is committed."""
        listener = self.listener
        peer = self.peer
        if peer is None or peer.node_id is None:
            return "530 5.7.0 Must issue a STARTTLS command first"
        if reading.refusal is not None:
            return reading.refusal
        crash_point("data-received")
        try:
            received = reading.finish()
        except EnvelopeError as e:
            listener.quiet.warning(
                "smtp.refused", f"peer={_where(session)} node={peer.node_id} reason=format detail={e}"
            )
            return f"554 5.6.0 Not a gwexchange envelope message: {_reply_text(str(e))}"
        if received.tree_head is not None and listener.on_tree_head is not None:
            try:  # evidence about the peer's log: kept if it verifies, never a reason to refuse the envelope
                await asyncio.to_thread(listener.on_tree_head, peer.node_id, received.tree_head)
            except Exception:
                log.exception("smtp.error peer=%s node=%s reason=on_tree_head-raised", _where(session), peer.node_id)
        if received.directory is not None and listener.on_directory is not None:
            try:  # a newer directory travels from node to node; never a reason to refuse the envelope
                await asyncio.to_thread(listener.on_directory, peer.node_id, received.directory)
            except Exception:
                log.exception("smtp.error peer=%s node=%s reason=on_directory-raised", _where(session), peer.node_id)
        try:
            outcome = await asyncio.to_thread(listener.on_envelope, peer.node_id, received.envelope_xml, received.parts)
        except Exception:
            log.exception(
                "smtp.error peer=%s node=%s message_id=%s reason=on_envelope-raised",
                _where(session),
                peer.node_id,
                received.message_id,
            )
            return "451 4.3.0 Internal error while storing the envelope; try again later"
        fields = f"peer={_where(session)} node={peer.node_id} message_id={received.message_id} bytes={reading.size}"
        if isinstance(outcome, Accepted):
            log.info("smtp.accepted %s stored=%s", fields, outcome.message_id)
            return f"250 2.0.0 stored {_reply_text(outcome.message_id)}"
        if isinstance(outcome, Transient):
            listener.quiet.warning("smtp.deferred", f"{fields} reason={_reply_text(outcome.reason)}")
            return f"451 4.3.0 {_reply_text(outcome.reason)}"
        if isinstance(outcome, Permanent):
            listener.quiet.warning("smtp.rejected", f"{fields} reason={_reply_text(outcome.reason)}")
            return f"554 5.7.1 {_reply_text(outcome.reason)}"
        log.error("smtp.error %s reason=on_envelope-returned type=%s", fields, type(outcome).__name__)
        return "451 4.3.0 Internal error while storing the envelope; try again later"

    async def handle_exception(self, error: Exception) -> str:
        if error.__class__.__name__ == "TLSSetupException":  # the handshake failed: no certificate, wrong root, …
            cause = error.__cause__
            self.listener.quiet.warning(
                "smtp.refused", f"reason=tls-handshake detail={_reply_text(str(cause or error))}"
            )
        else:
            log.error("smtp.error reason=exception", exc_info=error)
        return "451 4.3.0 Internal error; try again later"


class SmtpListener:
    """The SMTP listener of node ``node_id`` on ``host:port`` (port 0: any free port, see ``port``).

    Start and stop it as an async context manager in a running loop (``async with listener: …``), or as a plain
    context manager (``with listener: …``), which runs it in a thread of its own — for tests and simple tools.
    ``trust`` may be replaced while it runs (a new CRL): each new TLS peer is checked with the current one.
    """

    def __init__(
        self,
        host: str,
        port: int,
        node_id: str,
        tls: NodeTls,
        trust: TrustPolicy,
        on_envelope: OnEnvelope,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
        max_session_seconds: float = MAX_SESSION_SECONDS,
        max_buffered_bytes: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_tree_head: OnTreeHead | None = None,
        on_directory: OnTreeHead | None = None,
    ) -> None:
        node_address(node_id)
        if tls.node_id != node_id:
            raise ConfigError(f"the TLS identity is node {tls.node_id}'s, not {node_id}'s")
        if max_message_bytes < 1:
            raise ConfigError("the message size limit must be positive")
        self.host = host
        self.node_id = node_id
        self.tls = tls
        self.trust = trust
        self.on_envelope = on_envelope
        self.on_tree_head = on_tree_head
        self.on_directory = on_directory
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.max_session_seconds = max_session_seconds
        self.max_buffered_bytes = max_message_bytes if max_buffered_bytes is None else max_buffered_bytes
        self._buffered = 0  # decoded bytes of the messages being read, on the loop's thread only
        self.quiet = _Quiet(log, 10.0)  # the warnings a client's flood would repeat
        self.clock = clock
        self._requested_port = port
        self._port: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[_Connection, None] = {}  # in the order they came
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None
        self._thread_error: BaseException | None = None

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the memory budget for a message being read (negative: give them back)."""
        if size > 0 and self._buffered + size > self.max_buffered_bytes:
            return False
        self._buffered += size
        return True

    @property
    def port(self) -> int:
        """The port listened on (known once started)."""
        if self._port is None:
            raise StateError("the listener is not running")
        return self._port

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- in a running loop --

    async def start(self) -> None:
        if self._server is not None:
            raise StateError("the listener is already running")
        loop = asyncio.get_running_loop()

        def factory() -> _Connection:
            protocol = _Connection(
                _Handler(self),
                self,
                tls=self.tls.server_context,
                max_message_bytes=self.max_message_bytes,
                hostname=self.node_id,
                ident="gwexchange",
                auth_exclude_mechanism=["LOGIN", "PLAIN"],  # peers authenticate by certificate only
                timeout=self.idle_timeout,
                command_call_limit=COMMAND_LIMITS,
                loop=loop,
            )
            self._connections[protocol] = None
            return protocol

        _quiet_accept_errors(loop)
        _quiet_library()
        self._server = await loop.create_server(factory, self.host, self._requested_port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("smtp.listening node=%s endpoint=%s", self.node_id, self.endpoint)

    async def stop(self) -> None:
        """Stop listening and cut open connections (a message not yet answered with 250 is not taken)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        closing = []
        for protocol in list(self._connections):
            closing.append(protocol.closed)
            protocol.abort()
        if closing:
            await asyncio.wait(closing, timeout=5)
        await server.wait_closed()
        log.info("smtp.stopped node=%s", self.node_id)
        self._port = None

    async def __aenter__(self) -> SmtpListener:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- in a thread of its own --

    def __enter__(self) -> SmtpListener:
        if self._thread is not None:
            raise StateError("the listener is already running")
        ready = threading.Event()
        self._thread_error = None
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(ready)), name=f"smtp-{self.node_id}", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=30) or self._thread_error is not None:
            error = self._thread_error
            self.__exit__(None, None, None)
            if error is not None:
                raise error
            raise TransientError("the SMTP listener did not start in time")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        thread, loop, stop = self._thread, self._thread_loop, self._thread_stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        self._thread = self._thread_loop = self._thread_stop = None
        if thread.is_alive():
            raise TransientError("the SMTP listener thread did not stop")

    async def _serve(self, ready: threading.Event) -> None:
        self._thread_stop = asyncio.Event()
        try:
            await self.start()
        except BaseException as e:
            self._thread_error = e
            ready.set()
            return
        self._thread_loop = asyncio.get_running_loop()
        ready.set()
        try:
            await self._thread_stop.wait()
        finally:
            await self.stop()


class _Connection(_NodeSMTP):
    """One connection: tracked by its listener, so stopping the listener can close it and wait for it."""

    def __init__(self, handler: _Handler, listener: SmtpListener, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._listener = listener
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.address = ""
        self._turned_away = False  # refused at once: aiosmtpd never started on it
        self._evicted = False  # closed to make room for a newer connection
        self._lifetime: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self._listener
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        others = [c for c in listener._connections if c is not self and not (c._turned_away or c._evicted)]
        same = sum(1 for c in others if c.address == self.address)
        if len(others) >= listener.max_connections and same < listener.max_per_address:
            # Full: the oldest connection that never showed a node certificate makes room, so clients without one
            # (from as many addresses as they like) can hold the places only until a node needs one.
            strangers = [c for c in others if c._handler.peer is None or c._handler.peer.node_id is None]
            if strangers:
                listener.quiet.warning("smtp.evicted", f"address={strangers[0].address} for={self.address}")
                strangers[0].turn_away(b"421 4.7.0 Too many connections; closing the oldest unauthenticated\r\n")
                others.remove(strangers[0])
        if len(others) >= listener.max_connections or same >= listener.max_per_address:
            # Turned away before aiosmtpd sees it: one line and the door, nothing read, nothing logged per try.
            self._turned_away = True
            listener.quiet.warning("smtp.too-many-connections", f"address={self.address}")
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(b"421 4.7.0 Too many connections; try again later\r\n")
            transport.close()
            return
        super().connection_made(transport)
        self._lifetime = self.loop.call_later(listener.max_session_seconds, self._end_of_life)

    def turn_away(self, reply: bytes) -> None:
        """One reply line and the door, whatever the session was doing."""
        self._evicted = True
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(reply)
            transport.close()

    def _end_of_life(self) -> None:
        """The session has lived long enough: closed now if between messages, else once this one is answered."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.envelope is not None and self.envelope.mail_from is not None:  # a message under way
            self._lifetime = self.loop.call_later(5.0, self._end_of_life)
            return
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(b"421 4.4.2 Session too long; reconnect\r\n")
        transport.close()

    def abort(self) -> None:
        transport = self.transport
        if transport is not None:
            transport.abort()  # type: ignore[attr-defined]
        original = self._original_transport
        if original is not None:
            original.abort()  # type: ignore[attr-defined]
        if transport is None and original is None and not self.closed.done():
            self.closed.set_result(None)
            self._listener._connections.pop(self, None)

    def connection_lost(self, error: Exception | None) -> None:
        if self._lifetime is not None:
            self._lifetime.cancel()
        try:
            if not self._turned_away:  # aiosmtpd never started on a connection turned away
                super().connection_lost(error)
        finally:
            self._listener._connections.pop(self, None)
            if not self.closed.done():
                self.closed.set_result(None)


class _RateLimit:
    """At most ``burst`` events of a kind in any ``every`` seconds: ``admit`` answers None for one left out, else
    how many of its kind were left out since the last one admitted."""

    def __init__(self, every: float, burst: int) -> None:
        self._every = every
        self._burst = burst
        self._windows: dict[str, tuple[float, int]] = {}  # kind: (window start, events admitted in it)
        self._left_out: dict[str, int] = {}
        self._lock = threading.Lock()  # listeners of several loops may share one (the accept errors')

    def admit(self, kind: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            start, count = self._windows.get(kind, (now, 0))
            if now - start >= self._every:
                start, count = now, 0
            if count >= self._burst:
                self._left_out[kind] = self._left_out.get(kind, 0) + 1
                return None
            self._windows[kind] = (start, count + 1)
            return self._left_out.pop(kind, 0)


class _Quiet:
    """Lines a flood would repeat: at most ``burst`` per event in any ``every`` seconds, then one with the count of
    those left out, so no client can fill the node's log however fast it makes a node refuse it."""

    def __init__(self, logger: logging.Logger, every: float, burst: int = 10) -> None:
        self._log = logger
        self._limit = _RateLimit(every, burst)

    def log(self, level: int, event: str, fields: str) -> None:
        left_out = self._limit.admit(event)
        if left_out is not None:
            self._log.log(level, "%s %s%s", event, fields, f" left_out={left_out}" if left_out else "")

    def warning(self, event: str, fields: str) -> None:
        self.log(logging.WARNING, event, fields)


class _LibraryQuiet(logging.Filter):
    """aiosmtpd warns once or more per session for what a flood does (a command over its limit, one it does not
    know, an aborted session): at most ``burst`` of its warnings in any ``every`` seconds pass; the next one that
    does says how many were left out."""

    def __init__(self, every: float = 10.0, burst: int = 10) -> None:
        super().__init__()
        self._limit = _RateLimit(every, burst)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:  # its per-command lines: a node keeps the library at WARNING
            return True
        left_out = self._limit.admit("warning")
        if left_out:
            record.msg, record.args = f"{record.getMessage()} left_out={left_out}", None
        return left_out is not None


def _quiet_library() -> None:
    library = logging.getLogger("mail.log")
    if not any(isinstance(f, _LibraryQuiet) for f in library.filters):
        library.addFilter(_LibraryQuiet())


_accept_errors = _Quiet(log, 10.0, burst=1)
_ACCEPT_HANDLER = "gwexchange_quiet_accept_errors"


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio reports each failed accept (EMFILE: out of file descriptors) through the loop's exception handler,
    as an ERROR with a traceback, many times a second, and retries by itself a second later: one line a while."""
    previous = loop.get_exception_handler()
    if previous is not None and previous.__name__ == _ACCEPT_HANDLER:
        return  # a listener started again on this loop: installed once

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            _accept_errors.warning("smtp.accept-failed", f"reason={context.get('exception')!r}")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.__name__ = _ACCEPT_HANDLER
    loop.set_exception_handler(handler)


__all__ = [
    "COMMAND_LIMITS",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_ADDRESS",
    "MAX_REASON",
    "MAX_SESSION_SECONDS",
    "Accepted",
    "OnEnvelope",
    "OnTreeHead",
    "Outcome",
    "Permanent",
    "SmtpListener",
    "Transient",
]
