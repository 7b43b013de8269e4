"""The node's store on a real SQLite file: WAL and synchronous=FULL on every connection, duplicates remembered
across restarts, part files written before the commit and swept after a crash, all-or-nothing transactions, and
disk-full and busy faults as ``StoreFull`` and ``StoreBusy``.

Envelopes here are ``InspectedEnvelope`` values made by hand (the store never looks at signatures): no PKI needed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import event, text

from gwexchange.envelope.header import MessageKind, RoutingHeader
from gwexchange.envelope.model import Classification
from gwexchange.envelope.sealing import InspectedEnvelope, Part
from gwexchange.errors import EnvelopeError, NotFoundError
from gwexchange.routing.node_logic import Accept, Enqueue, HopRetry, HopSent, SetInboxState
from gwexchange.routing.node_logic import InboxState as State
from gwexchange.routing.store import Store, StoreBusy, StoreFull

NOW = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
PART_OCTETS = b"\x00encrypted part\xff" * 1000
NO_GRACE = timedelta(0)


def envelope(*, parts: tuple[Part, ...] = (), xml: bytes | None = None) -> InspectedEnvelope:
    header = RoutingHeader(
        message_id=str(uuid.uuid4()),
        kind=MessageKind.DOCUMENT,
        sender_department="gd.gov.office",
        sender_node="gd-hub",
        recipients=("gd.gov.czt", "gz.gov.office"),
        classification=Classification.INTERNAL,
        created=NOW,
        expires=NOW + timedelta(days=7),
    )
    xml = xml or b'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope>\xe2\x80\x94 ' + header.message_id.encode()
    return InspectedEnvelope(header=header, node=cast(Any, None), parts=parts, envelope_xml=xml)


def a_part(octets: bytes = PART_OCTETS, cid: str = "part-1") -> Part:
    return Part(cid=cid, file_name="scan.pdf", size=len(octets), sha256=hashlib.sha256(octets).hexdigest())


def test_every_connection_is_wal_and_synchronous_full(tmp_path: Path) -> None:
    with Store(tmp_path, busy_timeout=2.5) as store:
        assert (tmp_path / "node.db").is_file()
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 2500


def test_duplicates_are_remembered_across_restarts(tmp_path: Path) -> None:
    env = envelope()
    with Store(tmp_path) as store:
        assert not store.seen(env.header.message_id)
        store.apply([Accept(env, NOW)])
        assert store.seen(env.header.message_id)
    with Store(tmp_path) as store:
        assert store.seen(env.header.message_id)
        assert store.envelope_xml(env.header.message_id) == env.envelope_xml  # byte for byte
        store.apply([Accept(env, NOW + timedelta(hours=1))])  # a racing duplicate changes nothing


def test_parts_are_files_written_before_the_commit(tmp_path: Path) -> None:
    part = a_part()
    env = envelope(parts=(part,))
    mid = env.header.message_id
    with Store(tmp_path) as store:
        with pytest.raises(StoreBusy, match="is not on disk"):
            store.apply([Accept(env, NOW)])  # the row may never point at a missing file
        assert not store.seen(mid)
        store.stage_parts(mid, env.parts, {"part-1": [PART_OCTETS[:7], PART_OCTETS[7:]]})
        store.apply([Accept(env, NOW)])
        assert store.parts(mid) == (part,)
    with Store(tmp_path) as store:  # restarted: kept, not swept
        assert b"".join(store.read_part(mid, "part-1")) == PART_OCTETS


def test_a_crash_between_part_write_and_commit_leaves_nothing(tmp_path: Path) -> None:
    env = envelope(parts=(a_part(),))
    mid = env.header.message_id
    store = Store(tmp_path)
    store.stage_parts(mid, env.parts, {"part-1": [PART_OCTETS]})
    (tmp_path / "parts" / mid / ".part-2.tmp").write_bytes(b"half a part")  # killed while writing another
    store.engine.dispose()  # killed before apply: no commit
    with Store(tmp_path, sweep_grace=NO_GRACE) as store:
        assert not (tmp_path / "parts" / mid).exists()  # orphans swept on open
        assert not store.seen(mid)
        # the sender retries, and this time it commits
        store.stage_parts(mid, env.parts, {"part-1": [PART_OCTETS]})
        store.apply([Accept(env, NOW)])
    kept = envelope(parts=(a_part(),))
    with Store(tmp_path, sweep_grace=NO_GRACE) as store:
        store.stage_parts(kept.header.message_id, kept.parts, {"part-1": [PART_OCTETS]})
        (tmp_path / "parts" / mid / ".part-9.tmp").write_bytes(b"debris")
    with Store(tmp_path, sweep_grace=NO_GRACE) as store:
        assert store.seen(mid) and (tmp_path / "parts" / mid / "part-1").is_file()
        assert not (tmp_path / "parts" / mid / ".part-9.tmp").exists()
        assert not (tmp_path / "parts" / kept.header.message_id).exists()


def test_parts_another_process_is_about_to_commit_are_not_swept(tmp_path: Path) -> None:
    env = envelope(parts=(a_part(),))
    mid = env.header.message_id
    clerk = Store(tmp_path)  # a clerk's command staged the parts and has not committed yet …
    clerk.stage_parts(mid, env.parts, {"part-1": [PART_OCTETS]})
    with Store(tmp_path):  # … when the daemon starts and sweeps
        assert (tmp_path / "parts" / mid / "part-1").is_file()
    clerk.apply([Accept(env, NOW)])  # the commit finds its files
    clerk.close()
    old = time.time() - 3600
    debris = tmp_path / "parts" / str(uuid.uuid4())
    debris.mkdir()
    (debris / "part-1").write_bytes(b"left by a crash an hour ago")
    for path in (debris / "part-1", debris):
        os.utime(path, (old, old))
    with Store(tmp_path):
        assert not debris.exists()  # old enough: debris
        assert (tmp_path / "parts" / mid / "part-1").is_file()  # referenced: kept


@pytest.mark.parametrize(
    "octets",
    [PART_OCTETS[:-1], PART_OCTETS + b"x", b"X" + PART_OCTETS[1:]],
    ids=["short", "long", "altered"],
)
def test_a_damaged_part_is_refused_and_not_kept(tmp_path: Path, octets: bytes) -> None:
    env = envelope(parts=(a_part(),))
    mid = env.header.message_id
    with Store(tmp_path) as store:
        with pytest.raises(EnvelopeError, match="part-1"):
            store.stage_parts(mid, env.parts, {"part-1": [octets]})
        assert list((tmp_path / "parts" / mid).iterdir()) == []
        with pytest.raises(EnvelopeError, match="lacks its part"):
            store.stage_parts(mid, env.parts, {})


def test_the_same_envelope_staged_twice_at_once_keeps_a_whole_part(tmp_path: Path) -> None:
    """SMTP and a bundle (or a retry) may stage one message at the same time; a damaged second copy, written while
    the first is half way, must neither spoil the first copy's file nor make it fail."""
    env = envelope(parts=(a_part(),))
    mid = env.header.message_id
    half_way, second_done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def first_copy() -> Iterator[bytes]:
        yield PART_OCTETS[:5000]
        half_way.set()
        second_done.wait(10)
        yield PART_OCTETS[5000:]

    with Store(tmp_path) as store:

        def stage_first() -> None:
            try:
                store.stage_parts(mid, env.parts, {"part-1": first_copy()})
            except BaseException as e:  # reported to the test below
                failures.append(e)

        first = threading.Thread(target=stage_first)
        first.start()
        assert half_way.wait(10)
        with pytest.raises(EnvelopeError, match="does not match"):
            store.stage_parts(mid, env.parts, {"part-1": [b"X" * len(PART_OCTETS)]})
        second_done.set()
        first.join(10)
        assert failures == []
        assert (tmp_path / "parts" / mid / "part-1").read_bytes() == PART_OCTETS
        assert [p.name for p in (tmp_path / "parts" / mid).iterdir()] == ["part-1"]


def test_a_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    env = envelope()
    mid = env.header.message_id
    with Store(tmp_path) as store:
        enqueue = Enqueue(mid, "gz-hub", ("gz.gov.office",), env.header.expires, NOW)
        with pytest.raises(NotFoundError, match=r"is not in the inbox of gd\.gov\.czt"):  # the first two are undone
            store.apply([Accept(env, NOW), enqueue, SetInboxState("gd.gov.czt", mid, State.SIGNED_FOR, None, NOW)])
        assert not store.seen(mid) and store.queue() == ()
        store.apply([Accept(env, NOW), enqueue])
        (hop,) = store.due(NOW)
        assert hop.expires == env.header.expires and hop.expires.tzinfo is not None
        assert store.due(NOW - timedelta(seconds=1)) == ()
        later = NOW + timedelta(minutes=3)
        store.apply([HopRetry(mid, "gz-hub", 1, later, "421 try later")])
        assert store.due(NOW) == () and [h.attempts for h in store.due(later)] == [1]
        store.apply([HopSent(mid, "gz-hub", later)])
        assert store.due(later + timedelta(days=1)) == ()
        assert [(i.state, i.attempts) for i in store.queue()] == [("sent", 2)]  # the retry, then the send


def test_due_reads_the_queued_copies_by_index_not_the_sent_history(tmp_path: Path) -> None:
    """The copies sent stay in the table for ever: finding the due ones must not scan them."""
    with Store(tmp_path) as store, store.engine.connect() as c:
        c.execute(text("DROP INDEX ix_queue_item_due"))  # a store made before the index existed
        c.commit()
    with Store(tmp_path) as store, store.engine.connect() as c:  # opened again, it adds what it lacks
        query = (
            "EXPLAIN QUERY PLAN SELECT message_id FROM queue_item WHERE state = :s AND next_attempt_at <= :t "
            "ORDER BY next_attempt_at LIMIT 100"
        )
        plan = c.execute(text(query), {"s": "queued", "t": NOW}).all()
    assert any("ix_queue_item_due (state=? AND next_attempt_at<?)" in row[-1] for row in plan), plan


def test_due_leaves_out_the_peers_asked_to_skip(tmp_path: Path) -> None:
    """The delivery loop skips the peers whose worker is busy: their copies are not read again each round."""
    env = envelope()
    mid = env.header.message_id
    with Store(tmp_path) as store:
        hops = ("gz-hub", "sz-hub", "fs-hub")
        store.apply([Accept(env, NOW), *(Enqueue(mid, h, ("gz.gov.office",), env.header.expires, NOW) for h in hops)])
        assert sorted(h.next_hop for h in store.due(NOW)) == sorted(hops)
        assert sorted(h.next_hop for h in store.due(NOW, skip=("gz-hub", "fs-hub"))) == ["sz-hub"]
        assert store.due(NOW, skip=hops) == ()
        assert len(store.due(NOW, limit=2, skip=())) == 2


def test_a_full_database_is_store_full(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.engine.dispose()

    @event.listens_for(store.engine, "connect")
    def cap(dbapi_connection: Any, _record: Any) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages + 2}")

    big = envelope(xml=os.urandom(256 * 1024))
    with pytest.raises(StoreFull, match="full"):
        store.apply([Accept(big, NOW)])
    assert not store.seen(big.header.message_id)
    store.close()


def test_a_full_disk_while_writing_a_part_is_store_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = envelope(parts=(a_part(),))
    with Store(tmp_path) as store:

        def no_space(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", no_space)
        with pytest.raises(StoreFull, match="disk is full"):
            store.stage_parts(env.header.message_id, env.parts, {"part-1": [PART_OCTETS]})
        monkeypatch.undo()
        assert list((tmp_path / "parts" / env.header.message_id).iterdir()) == []


def test_a_locked_database_is_store_busy(tmp_path: Path) -> None:
    with Store(tmp_path, busy_timeout=0.05) as store:
        other = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            env = envelope()
            with pytest.raises(StoreBusy, match=r"locked|busy"):
                store.apply([Accept(env, NOW)])
            assert not store.seen(env.header.message_id)  # readers are not blocked (WAL)
            other.execute("ROLLBACK")
            store.apply([Accept(env, NOW)])
            assert store.seen(env.header.message_id)
        finally:
            other.close()


def test_the_log_order_is_the_order_of_acceptance_even_within_one_decision(tmp_path: Path) -> None:
    envelopes = [envelope() for _ in range(6)]  # random message ids: their sort order is not the accept order
    with Store(tmp_path) as store:
        store.apply([Accept(e, NOW) for e in envelopes[:3]])  # one decision, one time
        store.apply([Accept(envelopes[3], NOW - timedelta(hours=1))])  # a clock that went back: still later
        store.apply([Accept(e, NOW) for e in envelopes[4:]])
        assert store.assign_log_indices(limit=4) == 4
        assert store.assign_log_indices() == 2
        assert store.assign_log_indices() == 0
        logged = store.logged_from(0)
    assert [index for index, _ in logged] == list(range(6))
    assert [xml for _, xml in logged] == [e.envelope_xml for e in envelopes]
