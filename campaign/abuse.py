"""Abuse: a hub attacked while it works, by clients with no certificate and by one with a node's certificate.

Daemons (``one_hub(2)``: leaf-1 ── hub-a ── leaf-2). Each case runs an attack against hub-a from another loopback
address (127.0.0.x: the nodes themselves connect from 127.0.0.1, as peers on other machines would from theirs),
and while it runs a real document goes from leaf-1 through the hub and must reach 送达 and 签收 at the sender
within ``PROBE_BOUND`` seconds:

* **command flood**: clients with no certificate sending NOOP, HELP and RSET as fast as the hub answers, session
  after session; the hub's log may grow by at most ``LOG_BOUND`` bytes (one such client wrote ~9 MB/s once).
* **connection flood**: more plain connections than the hub holds (from 20 addresses, 16 each): the oldest that
  never showed a node certificate make room for the nodes.
* **slow and idle clients**: a node's certificate trickling a message, a line a second, beside idle connections.
* **hostile MIME** (a node's certificate): 60 MiB of empty lines, 5 million empty parts, 3,000 nested parts,
  and three 60 MiB messages at once; each refused, and the hub stays within ``MEMORY_BOUND`` (peak RSS).
* **hung neighbour**: leaf-2 stopped with SIGSTOP (its socket still accepts, nothing answers): the hub's own
  department still gets the document; leaf-2, continued, gets the copy that waited for it.

The class ends with the checker (``network.finish``): nothing lost, nothing filed twice. Each daemon's peak RSS
(VmHWM) is reported.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography import x509

from campaign.network import CampaignError, CampaignPki, Network, Sent, drive, finish, one_hub
from campaign.report import CaseResult, ClassResult
from gwexchange.crypto.certificates import Usage
from gwexchange.crypto.keys import key_from_pem
from gwexchange.errors import GwxError
from gwexchange.routing.mime import encode_message, node_address
from gwexchange.routing.peer_tls import node_tls

CLASS = "abuse"
TOPOLOGY = one_hub(2)
HUB, LEAF_1, LEAF_2 = "hub-a", "leaf-1", "leaf-2"
L1, L2, HD = "gd.leaf-1.d1", "gd.leaf-2.d1", "gd.hub-a.d1"
PROBE_BOUND = 60.0  # seconds for the document sent while an attack runs
BOUND = 300.0  # seconds any other wait may take
LOG_BOUND = 1 << 20  # bytes the hub's log may grow by in a flood case
MEMORY_BOUND = 256 << 20  # bytes of peak RSS for any daemon
MIB = 1 << 20


def peak_rss(net: Network, node: str) -> int:
    """The most memory the daemon of ``node`` has held (VmHWM), in bytes; 0 if it is not running."""
    proc = net.procs.get(node)
    if proc is None or proc.poll() is not None:
        return 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class Attack:
    """Threads that attack until ``stop``; ``problems`` says what the hub did that it must not."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.problems: list[str] = []
        self.counts: dict[str, int] = {}
        self.documents: list[Sent] = []  # sent by the attack itself, settled by the end of the class
        self._lock = threading.Lock()

    def spawn(self, work: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                work()
            except Exception as e:  # an attacker's error is a finding, never a crash of the campaign
                if not self.stopping.is_set():
                    self.note(f"{type(e).__name__}: {e}")

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        self.threads.append(thread)

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def note(self, problem: str) -> None:
        with self._lock:
            if problem not in self.problems:
                self.problems.append(problem)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _connect(net: Network, source: str, timeout: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", net.ports[HUB]), timeout=timeout, source_address=(source, 0))


def _reply(sock: socket.socket) -> bytes:
    """One (multi-line) SMTP reply from ``sock``."""
    lines = b""
    while True:
        line = b""
        while not line.endswith(b"\n"):
            chunk = sock.recv(1)
            if not chunk:
                return lines + line
            line += chunk
        lines += line
        if line[3:4] != b"-":
            return lines


class NodeClient:
    """An SMTP session with a node's own certificate: what a peer that turned hostile can send."""

    def __init__(self, net: Network, pki: CampaignPki, node: str, source: str) -> None:
        key = key_from_pem((pki.keys(node) / f"{Usage.NODE.value}.key").read_bytes(), None)
        root = x509.load_pem_x509_certificate(pki.root_path.read_bytes())
        tls = node_tls(node, key, pki.cert(node, Usage.NODE), root)
        self.node = node
        plain = _connect(net, source, timeout=120.0)
        self._expect(plain, b"220")
        plain.sendall(f"EHLO {node}\r\n".encode())
        self._expect(plain, b"250")
        plain.sendall(b"STARTTLS\r\n")
        self._expect(plain, b"220")
        self.sock: ssl.SSLSocket = tls.client_context.wrap_socket(plain, server_hostname=HUB)
        self.sock.sendall(f"EHLO {node}\r\n".encode())
        self._expect(self.sock, b"250")

    @staticmethod
    def _expect(sock: socket.socket, code: bytes) -> bytes:
        reply = _reply(sock)
        if not reply.startswith(code):
            raise CampaignError(f"expected {code.decode()}, the hub said {reply[:200]!r}")
        return reply

    def message(self, data: bytes) -> bytes:
        """``data`` (dot-stuffed, without the final dot) as one message; the hub's reply."""
        self.sock.sendall(f"MAIL FROM:<{node_address(self.node)}>\r\n".encode())
        self._expect(self.sock, b"250")
        self.sock.sendall(f"RCPT TO:<{node_address(HUB)}>\r\n".encode())
        self._expect(self.sock, b"250")
        self.sock.sendall(b"DATA\r\n")
        self._expect(self.sock, b"354")
        view = memoryview(data)
        for start in range(0, len(view), 1 << 20):
            self.sock.sendall(view[start : start + (1 << 20)])
        self.sock.sendall(b".\r\n")
        return _reply(self.sock)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --- the attacks -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def command_flood(net: Network, pki: CampaignPki) -> Iterator[Attack]:
    attack = Attack()

    def flood(source: str) -> None:
        burst = b"NOOP\r\n" * 25 + b"HELP\r\n" * 6 + b"RSET\r\n" * 250
        while not attack.stopping.is_set():
            with _connect(net, source) as sock:
                sock.sendall(burst)
                received = b""
                while chunk := sock.recv(1 << 16):
                    received += chunk
                if b"421" not in received:
                    attack.note(f"a session of {len(burst)} bytes of commands was not ended with 421")
                attack.count("sessions")

    for k in range(4):
        attack.spawn(lambda s=f"127.0.0.{2 + k}": flood(s))  # type: ignore[misc]
    try:
        yield attack
    finally:
        attack.stop()


@contextlib.contextmanager
def connection_flood(net: Network, pki: CampaignPki) -> Iterator[Attack]:
    attack = Attack()
    held: list[socket.socket] = []
    for a in range(20):
        for _ in range(17):  # one over the per-address cap
            try:
                sock = _connect(net, f"127.0.1.{10 + a}", timeout=10.0)
            except OSError as e:
                attack.note(f"connect: {e}")
                continue
            held.append(sock)
    received = {sock: _read_now(sock, 5.0) for sock in held}  # the banner, and a 421 if it was evicted already
    turned_away = sum(1 for data in received.values() if data.startswith(b"421"))
    attack.counts = {"tried": len(held), "turned away at once": turned_away}
    if turned_away < 20:  # the 17th of each address at least
        attack.note(f"connections: {attack.counts}")
    try:
        yield attack
    finally:
        for sock in held:
            received[sock] += _read_now(sock, 0.01)
            sock.close()
        # Strangers make room for newcomers, strangers or nodes: the hub never holds more than its cap at once.
        still_held = sum(1 for data in received.values() if data.startswith(b"220") and b"421" not in data)
        attack.count("evicted", sum(1 for data in received.values() if data.startswith(b"220") and b"421" in data))
        attack.count("held at the end", still_held)
        if still_held > 256:
            attack.note(f"the hub held {still_held} connections, over its cap of 256")


def _read_now(sock: socket.socket, timeout: float) -> bytes:
    """What ``sock`` has to read within ``timeout`` (up to its end, if it was closed)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(4096):
            data += chunk
            sock.settimeout(0.01)
    return data


@contextlib.contextmanager
def slow_clients(net: Network, pki: CampaignPki) -> Iterator[Attack]:
    attack = Attack()
    idle = [_connect(net, "127.0.0.20") for _ in range(15)]
    slow = NodeClient(net, pki, LEAF_2, "127.0.0.21")

    def trickle() -> None:
        sock = slow.sock
        sock.sendall(f"MAIL FROM:<{node_address(LEAF_2)}>\r\nRCPT TO:<{node_address(HUB)}>\r\nDATA\r\n".encode())
        while not attack.stopping.wait(1.0):
            sock.sendall(b"QUFBQUFBQUFB\r\n")
            attack.count("lines trickled")

    attack.spawn(trickle)
    try:
        yield attack
    finally:
        attack.stop()
        slow.close()
        for sock in idle:
            sock.close()


def _hostile_messages() -> list[tuple[str, bytes]]:
    head = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    nested = b"".join(
        f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n'.encode() for i in range(3000)
    )
    return [
        ("60 MiB of empty lines", head + b"\r\n" * (30 * MIB)),
        ("5 million empty parts", head + b"--b\r\n\r\n" * 5_000_000),
        ("3,000 nested parts", b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n' + nested),
    ]


def _large_message() -> bytes:
    """60 MiB of well-formed MIME around an envelope that is not one: read whole before it can be refused."""
    fake = b"<env:Envelope xmlns:env='urn:gwexchange:envelope:1'/>"
    part = bytes(44 * MIB)
    return encode_message(LEAF_2, HUB, fake, {"part-1": part}, message_id="00000000-0000-4000-8000-000000000001")


@contextlib.contextmanager
def hostile_mime(net: Network, pki: CampaignPki) -> Iterator[Attack]:
    attack = Attack()

    def one_by_one() -> None:
        client = NodeClient(net, pki, LEAF_2, "127.0.0.30")
        try:
            for name, data in _hostile_messages():
                reply = client.message(data)
                attack.count("refused" if reply.startswith(b"554") else "other")
                if not reply.startswith(b"554 5.6.0"):
                    attack.note(f"{name}: {reply[:120]!r}")
        finally:
            client.close()

    def large(k: int, data: bytes) -> None:
        client = NodeClient(net, pki, LEAF_2, f"127.0.0.{31 + k}")
        try:
            reply = client.message(data)
            attack.count(reply[:5].decode(errors="replace"))
            if not reply.startswith((b"554", b"451 4.3.1")):
                attack.note(f"a large message: {reply[:120]!r}")
        finally:
            client.close()

    attack.spawn(one_by_one)
    data = _large_message()
    for k in range(3):
        attack.spawn(lambda k=k: large(k, data))  # type: ignore[misc]
    try:
        yield attack
    finally:
        for thread in attack.threads:  # each message is answered: wait for the answers, not a timer
            thread.join(timeout=BOUND)
        attack.stop()


@contextlib.contextmanager
def hung_neighbour(net: Network, pki: CampaignPki) -> Iterator[Attack]:
    attack = Attack()
    proc = net.procs[LEAF_2]
    proc.send_signal(signal.SIGSTOP)  # the kernel still accepts its connections; nothing answers
    attack.documents.append(net.send(150, L1, [L2]))  # the hub tries to deliver it, and hangs on leaf-2
    try:
        yield attack
    finally:
        proc.send_signal(signal.SIGCONT)


# --- the cases -----------------------------------------------------------------------------------------------------

Attacker = Callable[[Network, CampaignPki], contextlib.AbstractContextManager[Attack]]


def case(
    net: Network, pki: CampaignPki, name: str, attacker: Attacker, serial: int, sent: list[Sent], to: list[str]
) -> CaseResult:
    t0 = time.monotonic()
    problems: list[str] = []
    log_before = net.log_path(HUB).stat().st_size
    probe_seconds = -1.0
    with attacker(net, pki) as attack:
        time.sleep(2.0)  # the attack in full swing
        doc = net.send(serial, L1, to)
        sent.append(doc)
        started = time.monotonic()
        pending = drive(net, [doc], PROBE_BOUND)
        probe_seconds = time.monotonic() - started
        if pending:
            problems.append(f"the document sent during the attack was not settled in {PROBE_BOUND:.0f} s: {pending}")
        if attacker is command_flood:
            time.sleep(3.0)  # a few more seconds of flood, for the log's sake
    grown = net.log_path(HUB).stat().st_size - log_before
    if attacker in (command_flood, connection_flood) and grown > LOG_BOUND:
        problems.append(f"the hub's log grew by {grown} bytes during the flood")
    problems += attack.problems
    sent += attack.documents
    peaks = {node: peak_rss(net, node) for node in net.topology.node_ids}
    problems += [f"{n} peaked at {p / MIB:.0f} MiB RSS" for n, p in peaks.items() if p > MEMORY_BOUND]
    figures: dict[str, object] = {
        "probe_seconds": round(probe_seconds, 2),
        "hub_log_bytes": grown,
        **{f"peak_rss_mib_{n}": round(p / MIB) for n, p in peaks.items()},
        **attack.counts,
    }
    return CaseResult(
        CLASS, name, not problems, time.monotonic() - t0, "\n".join(problems), documents=1, figures=figures
    )


def run(*, workdir: Path, pki: CampaignPki | None = None) -> ClassResult:
    result = ClassResult(CLASS)
    t0 = time.monotonic()
    pki = pki or CampaignPki(workdir / "pki")
    steps: list[tuple[str, Attacker, list[str]]] = [
        ("command flood (no certificate)", command_flood, [L2]),
        ("connection flood (no certificate)", connection_flood, [L2]),
        ("slow and idle clients", slow_clients, [L2]),
        ("hostile MIME (a node's certificate)", hostile_mime, [L2]),
        ("hung neighbour (leaf-2 stopped)", hung_neighbour, [HD]),
    ]
    try:
        with Network(workdir / "network", TOPOLOGY, pki) as net:
            net.start()
            sent: list[Sent] = []
            for k, (name, attacker, to) in enumerate(steps):
                try:
                    result.cases.append(case(net, pki, name, attacker, 100 + k, sent, to))
                except (CampaignError, GwxError, OSError) as e:
                    result.cases.append(CaseResult(CLASS, name, False, 0.0, f"harness: {e}"))
            sent.append(net.send(200, L1, [L2]))  # one more through the neighbour that hung
            peaks = {node: peak_rss(net, node) for node in net.topology.node_ids}
            t1 = time.monotonic()
            verdict = finish(net, sent, BOUND)
            result.cases.append(
                CaseResult(
                    CLASS,
                    "check (every document once)",
                    verdict.ok,
                    time.monotonic() - t1,
                    "\n".join(verdict.problems()),
                    documents=len(sent),
                    lost=verdict.lost_documents,
                    duplicated=verdict.duplicated_documents,
                )
            )
    except (CampaignError, GwxError, OSError) as e:
        result.cases.append(CaseResult(CLASS, "harness", False, 0.0, f"harness: {e}"))
        peaks = {}
    result.seconds = time.monotonic() - t0
    result.figures = {f"peak_rss_mib_{n}": round(p / MIB) for n, p in peaks.items()}
    if peaks:
        result.notes.append(
            "peak RSS (VmHWM) per daemon: " + ", ".join(f"{n} {p / MIB:.0f} MiB" for n, p in sorted(peaks.items()))
        )
    return result
