"""Disks: ENOSPC and EIO injected at the store of a receiving node (``GWX_IO_FAULT_FILE``).

One network (``two_hubs(2)``: leaf-1 ── hub-a ── hub-b ── leaf-2); hub-b and leaf-2 run with
``GWX_IO_FAULT_FILE=<home>/io-fault``, a file the campaign writes (``ENOSPC`` or ``EIO``) and removes. While it
exists every store write of that daemon fails. Each letter goes from gd.leaf-1.d1 to gd.leaf-2.d1 with a copy to
gd.hub-b.d1. The checks of a case:

* the faulty node answers 4xx: its upstream neighbour's queued copy stays ``queued``, with attempts and a 451 as
  its last error, and the faulty node logs ``smtp.deferred``;
* it acknowledges nothing it could not store: the message id is not seen there, nothing is filed there, and the
  sender does not hold its 送达;
* it recovers by itself when the file is removed: the letter is delivered (once: the final check counts) and
  signed for, with no restart.

A last case turns the fault on at a hub that already holds a copy for a recipient that was down, then brings the
recipient back: the copy must stay queued (not failed, not marked sent), the sender must hold no 送达 that only
the failing hub could have passed on, and after recovery the letter arrives once. (As built, a node whose store
fails sends nothing at all: each delivery round stops at its first write, the Merkle log's indices, before it
looks at the queue — ``figures["passed on during the fault"]`` says what happened.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from campaign.network import (
    DELIVERED,
    SIGNED_FOR,
    CampaignError,
    CampaignPki,
    Network,
    Sent,
    drive,
    finish,
    two_hubs,
)
from campaign.report import CaseResult, ClassResult
from gwexchange.errors import GwxError
from gwexchange.routing.faults import IO_FAULT_ENV

CLASS = "disks"
TOPOLOGY = two_hubs(2)
SENDER = "gd.leaf-1.d1"
TO = ("gd.leaf-2.d1",)
CC = ("gd.hub-b.d1",)
FAULTY = ("hub-b", "leaf-2")
UPSTREAM = {"hub-b": "hub-a", "leaf-2": "hub-b"}
DEPARTMENT = {"hub-b": "gd.hub-b.d1", "leaf-2": "gd.leaf-2.d1"}
ERRNO_TEXT = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}
WAIT = 45.0  # seconds without progress that make a wait a failure
BOUND = 300.0  # seconds any wait may take at all (a busy machine is slow, not stuck)
STUCK = f"{WAIT:.0f} s without progress, or {BOUND:.0f} s in all"
OBSERVE = 3.0  # seconds the faulty hub is watched with the recipient back


def fault_file(net: Network, node: str) -> Path:
    return net.homes[node] / "io-fault"


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _deferred(net: Network, node: str, message_id: str, attempts: int) -> bool:
    upstream = UPSTREAM[node]
    for q in net.queue(upstream):
        if q.message_id == message_id and q.next_hop == node:
            return q.state == "queued" and q.attempts >= attempts and (q.last_error or "").startswith("4")
    return False


def _nothing_acknowledged(net: Network, node: str, doc: Sent) -> list[str]:
    problems = []
    if net.seen(node, doc.message_id):
        problems.append(f"{node} holds message {doc.message_id} although it could not store")
    filed = [r for r in net.inbox(node) if r.message_id == doc.message_id]
    if filed:
        problems.append(f"{node} filed {doc.message_id} for {', '.join(r.department for r in filed)}")
    state = net.outbox_states(doc.sender_node, [doc.message_id]).get((doc.message_id, DEPARTMENT[node]))
    if state not in ("queued", "in transit"):
        problems.append(f"the sender sees {state} for {DEPARTMENT[node]} while {node}'s disk fails")
    return problems


def receiving_case(net: Network, node: str, kind: str, serial: int, sent: list[Sent]) -> CaseResult:
    """``kind`` at ``node`` while a letter comes to it: 4xx, nothing acknowledged, recovery when the file goes."""
    name = f"{kind} at {node} (receiving)"
    t0 = time.monotonic()
    problems: list[str] = []
    flag = fault_file(net, node)
    flag.write_text(kind, encoding="ascii")
    try:
        doc = net.send(serial, SENDER, TO, CC)
        sent.append(doc)
        if not wait_until(lambda: _deferred(net, node, doc.message_id, attempts=2), WAIT):
            problems.append(f"{UPSTREAM[node]} never saw a 4xx from {node} twice: {net.queue(UPSTREAM[node])}")
        problems += _nothing_acknowledged(net, node, doc)
        log = net.log_path(node).read_text(errors="replace")
        if not any(
            "smtp.deferred" in ln and doc.message_id in ln and ERRNO_TEXT[kind] in ln for ln in log.splitlines()
        ):
            problems.append(f"{node} did not log smtp.deferred for {doc.message_id} with {ERRNO_TEXT[kind]!r}")
    finally:
        flag.unlink(missing_ok=True)
    pending = drive(net, [doc], BOUND, stall=WAIT)
    if pending:
        problems.append(f"not recovered after the fault cleared ({STUCK}): {'; '.join(pending)}")
    filed = [r for r in net.inbox(node) if r.message_id == doc.message_id]
    if len(filed) != 1:
        problems.append(f"{doc.message_id} filed {len(filed)} times at {node}")
    return CaseResult(CLASS, name, not problems, time.monotonic() - t0, "\n".join(problems), documents=1)


def relay_case(net: Network, kind: str, serial: int, sent: list[Sent]) -> CaseResult:
    """hub-b holds a copy for leaf-2 (down) when its disk starts failing; leaf-2 comes back. Whatever hub-b does
    with the copy meanwhile, it must not lose it (still queued, not failed, not marked sent), the sender must not
    hold a 送达 that only hub-b could have passed on, and once the disk recovers the letter arrives once."""
    node, recipient = "hub-b", "leaf-2"
    name = f"{kind} at {node} (holding a queued copy)"
    t0 = time.monotonic()
    problems: list[str] = []
    figures: dict[str, Any] = {}
    net.stop(recipient)
    flag = fault_file(net, node)
    try:
        doc = net.send(serial, SENDER, TO, CC)
        sent.append(doc)

        def holds_copy() -> bool:
            return any(
                q.message_id == doc.message_id and q.next_hop == recipient and q.attempts >= 1 for q in net.queue(node)
            )

        if not wait_until(holds_copy, WAIT):
            problems.append(f"{node} never tried to pass {doc.message_id} to {recipient}")
        flag.write_text(kind, encoding="ascii")
        net.start(recipient, envs={recipient: {IO_FAULT_ENV: str(fault_file(net, recipient))}})
        time.sleep(OBSERVE)
        copy = [q for q in net.queue(node) if q.message_id == doc.message_id and q.next_hop == recipient]
        if not copy or copy[0].state != "queued":
            problems.append(f"{node} marked the copy {copy[0].state if copy else 'gone'} while its disk fails")
        state = net.outbox_states(doc.sender_node, [doc.message_id]).get((doc.message_id, TO[0]))
        if state in (DELIVERED, SIGNED_FOR):
            problems.append(f"the sender holds {state} for {TO[0]} although only the failing {node} could pass it on")
        figures["passed on during the fault"] = any(r.message_id == doc.message_id for r in net.inbox(recipient))
    finally:
        flag.unlink(missing_ok=True)
    pending = drive(net, [doc], BOUND, stall=WAIT)
    if pending:
        problems.append(f"not recovered after the fault cleared ({STUCK}): {'; '.join(pending)}")
    filed = [r for r in net.inbox(recipient) if r.message_id == doc.message_id]
    if len(filed) != 1:
        problems.append(f"{doc.message_id} filed {len(filed)} times at {recipient}")
    return CaseResult(
        CLASS, name, not problems, time.monotonic() - t0, "\n".join(problems), documents=1, figures=figures
    )


def run(*, workdir: Path, pki: CampaignPki | None = None) -> ClassResult:
    result = ClassResult(CLASS)
    t0 = time.monotonic()
    pki = pki or CampaignPki(workdir / "pki")
    sent: list[Sent] = []
    try:
        with Network(workdir / "disks", TOPOLOGY, pki) as net:
            net.start(envs={n: {IO_FAULT_ENV: str(fault_file(net, n))} for n in FAULTY})
            serial = 0
            for node in ("leaf-2", "hub-b"):
                for kind in ("ENOSPC", "EIO"):
                    serial += 1
                    result.cases.append(_guard(f"{kind} at {node}", receiving_case, net, node, kind, serial, sent))
            serial += 1
            result.cases.append(_guard("EIO at hub-b (relay)", relay_case, net, "EIO", serial, sent))
            t1 = time.monotonic()
            verdict = finish(net, sent, BOUND)
            result.cases.append(
                CaseResult(
                    CLASS,
                    "check",
                    verdict.ok,
                    time.monotonic() - t1,
                    "\n".join(verdict.problems()),
                    lost=verdict.lost_documents,
                    duplicated=verdict.duplicated_documents,
                    figures={"deliveries": verdict.deliveries, "repeats dropped": verdict.repeats},
                )
            )
    except (CampaignError, GwxError, OSError) as e:
        result.cases.append(CaseResult(CLASS, "harness", False, 0.0, f"harness: {e}"))
    result.seconds = time.monotonic() - t0
    result.notes.append("ENOSPC and EIO at a leaf and at a hub while receiving; EIO at a hub holding a queued copy")
    return result


def _guard(name: str, case: Callable[..., CaseResult], *args: Any) -> CaseResult:
    t0 = time.monotonic()
    try:
        return case(*args)
    except (CampaignError, GwxError, OSError) as e:
        return CaseResult(CLASS, name, False, time.monotonic() - t0, f"harness: {e}")
