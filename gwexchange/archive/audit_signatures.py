"""Each log entry's signatures checked, in this process or in worker processes for a large log."""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.header import MessageKind, RoutingHeader
from gwexchange.envelope.receipts import Receipt, verify_receipt_signature
from gwexchange.envelope.sealing import inspect, receipt_content
from gwexchange.errors import GwxError


@dataclass(frozen=True, slots=True)
class Checked:
    """What one entry's signature checks established: the verified header (None if the envelope failed), the
    SHA-256 fingerprint of the node certificate that signed it, and for a receipt envelope the verified receipt
    (None if it failed); ``error`` says why; ``seconds`` is the time the checks took."""

    header: RoutingHeader | None
    envelope_sha256: str
    node_certificate: bytes
    receipt: Receipt | None
    error: str | None
    seconds: float


def _check_entry(data: bytes, trust: TrustPolicy) -> Checked:
    t0 = time.perf_counter()
    try:
        envelope = inspect(data, trust)
    except GwxError as e:
        return Checked(None, "", b"", None, str(e), time.perf_counter() - t0)
    receipt, error = None, None
    if envelope.header.kind is MessageKind.RECEIPT:
        try:
            receipt = verify_receipt_signature(receipt_content(envelope), trust).receipt
        except GwxError as e:
            error = str(e)
    node_key = fingerprint(envelope.node.certificate)
    return Checked(envelope.header, envelope.envelope_sha256, node_key, receipt, error, time.perf_counter() - t0)


def fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


def checked_here(entries: Iterable[tuple[int, bytes]], trust: TrustPolicy) -> Iterator[tuple[int, bytes, Checked]]:
    for index, data in entries:
        yield index, data, _check_entry(data, trust)


_BATCH = 128
_TrustArgs = tuple[bytes, tuple[bytes, ...], bool, datetime]
_worker_trust: dict[_TrustArgs, TrustPolicy] = {}


def _trust_args(trust: TrustPolicy) -> _TrustArgs:
    """A trust policy as a worker process rebuilds it: root and CRLs (PEM), revocation, the auditor's clock."""
    pem = serialization.Encoding.PEM
    return (
        trust.root.public_bytes(pem),
        tuple(c.public_bytes(pem) for c in trust.crls),
        trust.unsafe_skip_revocation,
        trust.now or datetime.now(UTC),
    )


def _check_batch(args: _TrustArgs, batch: list[bytes]) -> list[Checked]:
    """In a worker process: the trust policy made once per node audited, then ``_check_entry`` for each entry."""
    trust = _worker_trust.get(args)
    if trust is None:
        root, crls, skip_revocation, at = args
        trust = TrustPolicy(
            x509.load_pem_x509_certificate(root),
            tuple(x509.load_pem_x509_crl(c) for c in crls),
            unsafe_skip_revocation=skip_revocation,
            now=at,
        )
        _worker_trust[args] = trust
    return [_check_entry(data, trust) for data in batch]


def worker_pool(workers: int) -> ProcessPoolExecutor:
    # spawned, not forked: a fork of a process holding threads and locks (a test runner, a daemon) can deadlock
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def checked_in_pool(
    entries: Iterable[tuple[int, bytes]], trust: TrustPolicy, pool: ProcessPoolExecutor, workers: int
) -> Iterator[tuple[int, bytes, Checked]]:
    """``checked_here`` over the pool's processes, in log order, with at most a few batches per worker in flight
    (memory stays bounded whatever the size of the log)."""
    args = _trust_args(trust)
    pending: deque[tuple[list[tuple[int, bytes]], Future[list[Checked]]]] = deque()

    def ready() -> Iterator[tuple[int, bytes, Checked]]:
        batch, future = pending.popleft()
        for (index, data), result in zip(batch, future.result(), strict=True):
            yield index, data, result

    batch: list[tuple[int, bytes]] = []
    for item in entries:
        batch.append(item)
        if len(batch) == _BATCH:
            pending.append((batch, pool.submit(_check_batch, args, [d for _, d in batch])))
            batch = []
            if len(pending) >= 4 * workers:
                yield from ready()
    if batch:
        pending.append((batch, pool.submit(_check_batch, args, [d for _, d in batch])))
    while pending:
        yield from ready()


__all__ = ["Checked", "checked_here", "checked_in_pool", "fingerprint", "worker_pool"]
