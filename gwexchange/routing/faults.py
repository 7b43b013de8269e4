"""Fault injection for the resilience campaign: named kill points and storage errors, off unless asked for.

``GWX_CRASH_AT=point`` (or ``point:N``, the N-th time the point is reached in this process) makes the process
SIGKILL itself at that point: a crash at an exact place on the path of an envelope, reached deterministically
rather than by luck of timing. The points, in the order an envelope meets them at a receiving node:

    data-received    the SMTP DATA is in, nothing verified or stored
    verified         the node signature verified
    receipt-signed   the decision is made: the document opened, its 送达 receipt signed, nothing committed
    committed        the one transaction committed: envelope stored, inbox filed, receipt and copies queued
    acknowledged     the 250 reply written to the peer
    hop-sending      a queued copy (a document or a receipt) is about to be sent to its next hop
    hop-sent         the next hop answered 250, the copy not yet marked sent
    hop-recorded     the copy marked sent
    log-appended     envelopes appended to the Merkle log, not yet committed to it

``GWX_IO_FAULT_FILE=path``: while that file exists and holds ``ENOSPC`` or ``EIO``, every write to the store
fails with that error — a full or failing disk that recovers when the file is removed.

Both are read once per process (the environment) and cost one dictionary lookup per point when off.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

CRASH_ENV = "GWX_CRASH_AT"
IO_FAULT_ENV = "GWX_IO_FAULT_FILE"
CRASH_POINTS = (
    "data-received",
    "verified",
    "receipt-signed",
    "committed",
    "acknowledged",
    "hop-sending",
    "hop-sent",
    "hop-recorded",
    "log-appended",
)


def _crash_target() -> tuple[str, int] | None:
    spec = os.environ.get(CRASH_ENV, "")
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name not in CRASH_POINTS:
        raise ValueError(f"{CRASH_ENV}={spec}: no such kill point (one of {', '.join(CRASH_POINTS)})")
    return name, int(count) if count else 1


_TARGET = _crash_target()
_IO_FAULT = os.environ.get(IO_FAULT_ENV) or None
_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process here if ``GWX_CRASH_AT`` names this point (and this is its N-th passage)."""
    if _TARGET is None or _TARGET[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def check_storage() -> None:
    """Raise the injected storage error, if ``GWX_IO_FAULT_FILE`` names an existing file."""
    if _IO_FAULT is None:
        return
    try:
        kind = Path(_IO_FAULT).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return
    code = errno.ENOSPC if kind == "ENOSPC" else errno.EIO
    raise OSError(code, os.strerror(code) + " (injected)")


__all__ = [
    "CRASH_ENV",
    "CRASH_POINTS",
    "IO_FAULT_ENV",
    "check_storage",
    "crash_point",
]
