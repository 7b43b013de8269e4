"""The Merkle log on disk: entries kept byte for byte, proofs from stored hashes, crash recovery, and an audit
(``verify_log``) that finds every change.

* Appending, reading back, roots and every inclusion and consistency proof up to 64 entries, agreeing with the
  in-memory tree of ``merkle`` (itself checked against the RFC 9162 reference in test_merkle.py) and verifying.
* Recovery: a torn tail record, entries written without their hashes, missing or half-written hash and offset
  files, a lost commit record, a zero-filled tail; a process killed while appending. Refused at reopening:
  committed entries gone, stored hashes that disagree with the commit.
* Tampering, each detected by ``verify_log`` and named exactly: any single byte of the entries, offsets, hash,
  commit and heads files changed; an entry removed; two entries swapped; an entry changed with every hash, the
  commit and the offsets rebuilt to match (only the signed heads can tell, and they do); a head replaced by one
  the node signed over a forked history.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gwexchange.archive.head_store import TreeHeadStore
from gwexchange.archive.log import (
    COMMIT_FILE,
    ENTRIES_FILE,
    HEADS_FILE,
    OFFSETS_FILE,
    MerkleLog,
    level_file,
    read_commit,
)
from gwexchange.archive.log_verify import LogReport, verify_log
from gwexchange.archive.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    TreeState,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from gwexchange.archive.treehead import SignedTreeHead, head_to_line, sign_tree_head
from gwexchange.crypto.certificates import Usage
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.errors import ConfigError, InputError, VerificationError


def make_entries(count: int, seed: str = "e") -> list[bytes]:
    """Distinct entries of 3 to 45 bytes, with every byte value somewhere (newlines and zeros included)."""
    return [f"{seed}{i}:".encode() + bytes((i * 7 + k) % 256 for k in range(i * 13 % 41)) for i in range(count)]


ENTRIES = make_entries(64)
assert len(set(ENTRIES)) == len(ENTRIES)


@pytest.fixture(scope="module")
def node(pki: Any) -> tuple[str, Signer]:
    code: str = pki.NODE
    return code, pki.signer(code, Usage.NODE)


def build_log(
    directory: Path,
    entries: list[bytes],
    head_sizes: tuple[int, ...],
    node: tuple[str, Signer],
    start: datetime,
) -> list[SignedTreeHead]:
    """A log of ``entries`` whose node signed a head (one minute apart from ``start``) at each of ``head_sizes``."""
    node_id, signer = node
    heads = []
    with MerkleLog(directory, create=True) as log:
        store = TreeHeadStore(log.heads_path)
        done = 0
        for k, size in enumerate(head_sizes):
            log.append_many(entries[done:size])
            done = size
            heads.append(store.sign(log, signer, node_id, start + timedelta(minutes=k)))
        log.append_many(entries[done:])
    return heads


# --- appending, reading, proving -------------------------------------------------------------------------------


def test_append_and_read_back_byte_for_byte(tmp_path: Path) -> None:
    with MerkleLog(tmp_path / "log", create=True) as log:
        assert (log.size, log.root()) == (0, EMPTY_ROOT)
        assert log.append(ENTRIES[0]) == 0
        assert log.append_many(ENTRIES[1:10]) == range(1, 10)
        assert log.append_many([]) == range(10, 10)
        assert [log.entry(i) for i in range(10)] == ENTRIES[:10]  # before any commit
        state = log.flush()
        assert state.size == 10 == log.committed_size and state.root == MemoryTree.of_entries(ENTRIES[:10]).root()
        assert [e for _, e in log.iter_entries(3)] == ENTRIES[3:10]
        assert log.leaf_hash(4) == leaf_hash(ENTRIES[4])
    with MerkleLog(tmp_path / "log") as log:
        assert log.size == 10 and log.root() == state.root
        assert [log.entry(i) for i in range(10)] == ENTRIES[:10]
        log.append_many(ENTRIES[10:])
    with MerkleLog(tmp_path / "log") as log:
        assert [log.entry(i) for i in range(64)] == ENTRIES
    assert verify_log(tmp_path / "log", trust=None).ok


def test_every_root_and_proof_up_to_64_entries(tmp_path: Path) -> None:
    reference = MemoryTree.of_entries(ENTRIES)
    with MerkleLog(tmp_path / "log", create=True) as log:
        for k, entry in enumerate(ENTRIES):
            log.append(entry)
            if k % 5 == 0:
                log.flush()  # proofs must not care where the commits fall
        pairs = 0
        for n in range(65):
            root = log.root(n)
            assert root == reference.root(n)
            for i in range(n):
                proof = log.inclusion_proof(i, n)
                assert proof == reference.inclusion_proof(i, n)
                verify_inclusion(leaf_hash(ENTRIES[i]), i, n, proof, root)
            for m in range(n + 1):
                proof = log.consistency_proof(m, n)
                assert proof == reference.consistency_proof(m, n)
                verify_consistency(m, n, log.root(m), root, proof)
                pairs += 1
        assert pairs == 65 * 66 // 2
        assert log.inclusion_proof(3) == reference.inclusion_proof(3, 64)
        assert log.consistency_proof(7) == reference.consistency_proof(7, 64)


def test_proofs_see_uncommitted_entries(tmp_path: Path) -> None:
    with MerkleLog(tmp_path / "log", create=True) as log:
        log.append_many(ENTRIES[:20])
        log.flush()
        log.append_many(ENTRIES[20:33])
        assert log.committed_size == 20 and log.size == 33
        assert log.root() == MemoryTree.of_entries(ENTRIES[:33]).root() == log.state.root
        verify_consistency(20, 33, log.committed.root, log.root(), log.consistency_proof(20))
        verify_inclusion(leaf_hash(ENTRIES[32]), 32, 33, log.inclusion_proof(32), log.root())


def test_bad_appends_and_reads_are_input_errors(tmp_path: Path) -> None:
    with MerkleLog(tmp_path / "log", create=True) as log:
        for bad in (b"", "text", bytearray(b"x")):
            with pytest.raises(InputError):
                log.append(bad)  # type: ignore[arg-type]
        log.append(b"one")
        for call in (
            lambda: log.entry(1),
            lambda: log.entry(-1),
            lambda: log.root(2),
            lambda: log.inclusion_proof(1),
            lambda: log.inclusion_proof(0, 2),
            lambda: log.consistency_proof(2),
            lambda: log.node(1, 0),
        ):
            with pytest.raises(InputError):
                call()
        assert log.size == 1
    with pytest.raises(InputError):
        log.append(b"closed")


def test_a_log_is_opened_by_one_writer_only(tmp_path: Path) -> None:
    with MerkleLog(tmp_path / "log", create=True), pytest.raises(ConfigError, match="another process"):
        MerkleLog(tmp_path / "log")
    with MerkleLog(tmp_path / "log") as log:  # released on close
        assert log.size == 0


def test_a_log_is_made_only_where_it_belongs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a gwexchange log"):
        MerkleLog(tmp_path / "missing")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        MerkleLog(tmp_path / "busy", create=True)
    with pytest.raises(ConfigError, match="not a gwexchange log"):
        verify_log(tmp_path / "busy", trust=None)


# --- crash recovery ------------------------------------------------------------------------------------------


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    """A log of the first 40 entries, committed and closed."""
    with MerkleLog(tmp_path / "log", create=True) as log:
        log.append_many(ENTRIES[:40])
    return tmp_path / "log"


def record(entry: bytes) -> bytes:
    return len(entry).to_bytes(4, "big") + entry


def reopened(directory: Path, expected: list[bytes]) -> None:
    """Reopening gives exactly ``expected``, committed, and the audit finds nothing wrong."""
    with MerkleLog(directory) as log:
        assert log.size == log.committed_size == len(expected)
        assert log.root() == MemoryTree.of_entries(expected).root()
        assert [e for _, e in log.iter_entries()] == expected
        if expected:
            log.entry(len(expected) - 1)
            verify_consistency(1, log.size, log.root(1), log.root(), log.consistency_proof(1))
    report = verify_log(directory, trust=None)
    assert report.ok, str(report)
    assert read_commit(directory) is not None and read_commit(directory).size == len(expected)  # type: ignore[union-attr]


@pytest.mark.parametrize("tail", [b"\x00\x00", b"\x00\x00\x00\x64partial", b"\x00" * 4096, record(b"x")[:-1]])
def test_a_torn_tail_is_cut_off(committed: Path, tail: bytes) -> None:
    with (committed / ENTRIES_FILE).open("ab") as f:
        f.write(tail)
    assert not verify_log(committed, trust=None).ok  # the audit sees it, and says what it is
    reopened(committed, ENTRIES[:40])
    assert (committed / ENTRIES_FILE).stat().st_size == sum(len(record(e)) for e in ENTRIES[:40])


def test_complete_entries_written_before_a_crash_are_kept(committed: Path) -> None:
    """Entries reached the file but their offsets, hashes and the commit did not: they are recovered."""
    with (committed / ENTRIES_FILE).open("ab") as f:
        f.write(b"".join(record(e) for e in ENTRIES[40:50]) + record(ENTRIES[50])[:7])
    with (committed / level_file(0)).open("ab") as f:
        f.write(leaf_hash(ENTRIES[40]) + b"half a hash")  # some hashes half-written too
    reopened(committed, ENTRIES[:50])


@pytest.mark.parametrize(
    "damage",
    [
        "delete level-00",
        "delete every level",
        "truncate level-02",
        "delete offsets",
        "truncate offsets",
        "junk after level-01",
        "delete commit",
    ],
)
def test_missing_or_half_written_hashes_are_recomputed(committed: Path, damage: str) -> None:
    action, name = damage.split(" ", 1)
    targets = sorted(committed.glob("level-*")) if name == "every level" else [committed / name]
    for path in targets:
        if action == "delete":
            path.unlink()
        elif action == "truncate":
            os.truncate(path, path.stat().st_size // 2 - 3)
        else:
            with path.open("ab") as f:
                f.write(b"\xff" * 45)
    reopened(committed, ENTRIES[:40])


def test_committed_entries_that_vanished_are_refused(committed: Path) -> None:
    size = (committed / ENTRIES_FILE).stat().st_size
    os.truncate(committed / ENTRIES_FILE, size - 3)
    with pytest.raises(VerificationError, match="committed entries were removed"):
        MerkleLog(committed)


def test_stored_hashes_that_disagree_with_the_commit_are_refused(committed: Path) -> None:
    # 40 = 32 + 8: the root is read from level-05 record 0 and level-03 record 4
    path = committed / level_file(5)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="do not give the root of its last commit"):
        MerkleLog(committed)


def test_a_log_killed_while_appending_recovers(tmp_path: Path) -> None:
    """A real crash: a process appends and commits every 50 entries until it is killed with SIGKILL."""
    directory = tmp_path / "log"
    script = f"""
import sys
from pathlib import Path
from gwexchange.archive.log import MerkleLog
log = MerkleLog(Path({str(directory)!r}), create=True)
i = 0
while True:
    log.append(b"entry %d " % i + b"." * (i % 50))
    i += 1
    if i % 50 == 0:
        log.flush()
        print(i, flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed_count = 0
    deadline = time.monotonic() + 30
    while committed_count < 2000 and time.monotonic() < deadline:
        committed_count = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert committed_count >= 2000
    with MerkleLog(directory) as log:
        assert log.size >= committed_count
        expected = [b"entry %d " % i + b"." * (i % 50) for i in range(log.size)]
        assert [e for _, e in log.iter_entries()] == expected
        assert log.root() == MemoryTree.of_entries(expected).root()
    assert verify_log(directory, trust=None).ok


# --- the audit ------------------------------------------------------------------------------------------------

HEAD_SIZES = (5, 13, 24)
AUDITED = ENTRIES[:30]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory, node: tuple[str, Signer], now: datetime) -> Path:
    """A closed log of 30 entries with heads signed at sizes 5, 13 and 24 (read-only: tests copy it)."""
    directory = tmp_path_factory.mktemp("audited") / "log"
    build_log(directory, AUDITED, HEAD_SIZES, node, now - timedelta(hours=1))
    return directory


@pytest.fixture
def copy(audited: Path, tmp_path: Path) -> Path:
    target = tmp_path / "log"
    shutil.copytree(audited, target)
    (target / "lock").unlink(missing_ok=True)
    return target


def audit(directory: Path, trust: TrustPolicy, node_id: str | None = None) -> LogReport:
    return verify_log(directory, trust=trust, node_id=node_id)


def test_a_sound_log_verifies(audited: Path, trust: TrustPolicy, node: tuple[str, Signer]) -> None:
    report = audit(audited, trust, node[0])
    assert report.ok, str(report)
    assert (report.size, report.heads, report.signatures_checked) == (30, 3, True)
    assert report.root == MemoryTree.of_entries(AUDITED).root()
    assert report.committed is not None and report.committed.size == 30
    assert report.raise_on_problems() is report
    structure_only = verify_log(audited, trust=None)
    assert structure_only.ok and not structure_only.signatures_checked
    assert "signatures not checked" in str(structure_only)


def heads_covering(index: int) -> tuple[int, ...]:
    """The lines of the heads whose tree includes entry ``index``."""
    return tuple(k for k, size in enumerate(HEAD_SIZES) if size > index)


def flipped(path: Path, offset: int, mask: int = 0x01) -> None:
    """XOR one byte of ``path`` with ``mask``, in place (doing it again restores the byte).

    In place, not by rewriting the file: ext4 flushes a file truncated and rewritten when it is closed, which
    costs milliseconds a time and these tests change thousands of bytes.
    """
    with path.open("r+b") as f:
        f.seek(offset)
        value = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([value ^ mask]))


def entry_at_byte(offset: int, entries: list[bytes]) -> int:
    end = 0
    for i, e in enumerate(entries):
        end += 4 + len(e)
        if offset < end:
            return i
    raise AssertionError(offset)


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_every_byte_of_the_entries_is_covered(audited: Path, tmp_path: Path, trust: TrustPolicy, mask: int) -> None:
    target = tmp_path / "log"
    shutil.copytree(audited, target)
    size = (target / ENTRIES_FILE).stat().st_size
    original = (target / ENTRIES_FILE).read_bytes()
    for offset in range(size):
        flipped(target / ENTRIES_FILE, offset, mask)
        report = audit(target, trust)
        i = entry_at_byte(offset, AUDITED)
        first = next(p for p in report.problems if p.kind in ("entry", "tail"))
        assert first.index == i, (offset, str(report))
        assert report.heads_failed() == heads_covering(i), (offset, str(report))
        flipped(target / ENTRIES_FILE, offset, mask)
    assert (target / ENTRIES_FILE).read_bytes() == original
    assert audit(target, trust).ok


@pytest.mark.parametrize("name", [level_file(level) for level in range(5)] + [OFFSETS_FILE])
def test_every_byte_of_the_stored_hashes_and_offsets_is_covered(copy: Path, trust: TrustPolicy, name: str) -> None:
    path = copy / name
    original = path.read_bytes()
    record_size = 8 if name == OFFSETS_FILE else 32
    level = None if name == OFFSETS_FILE else int(name[-2:])
    for offset in range(len(original)):
        flipped(path, offset)
        report = audit(copy, trust)
        assert len(report.problems) == 1, (name, offset, str(report))
        (problem,) = report.problems
        record_index = offset // record_size
        if level is None:
            assert (problem.kind, problem.index) == ("offset", record_index)
        elif level == 0:
            assert (problem.kind, problem.index) == ("entry", record_index)  # the entry or its hash: named
        else:
            assert (problem.kind, problem.level, problem.index) == ("hash", level, record_index << level)
        assert report.heads_failed() == ()  # the entries, and so the signed roots, are intact
        flipped(path, offset)


def test_every_byte_of_the_commit_record_is_covered(copy: Path, trust: TrustPolicy) -> None:
    path = copy / COMMIT_FILE
    original = path.read_bytes()
    for offset in range(len(original)):
        for mask in (0x01, 0x02, 0x10):
            flipped(path, offset, mask)
            report = audit(copy, trust)
            assert [p.kind for p in report.problems] == ["commit"], (offset, mask, str(report))
            flipped(path, offset, mask)


def test_every_byte_of_the_tree_heads_is_covered(copy: Path, trust: TrustPolicy) -> None:
    path = copy / HEADS_FILE
    original = path.read_bytes()
    line_of = [original[:offset].count(b"\n") for offset in range(len(original))]
    for offset in range(len(original)):
        flipped(path, offset)
        report = audit(copy, trust)
        assert report.problems and all(p.kind == "head" for p in report.problems), (offset, str(report))
        line = line_of[offset]
        if original[offset : offset + 1] == b"\n":
            assert report.heads_failed()[0] == line, (offset, str(report))  # two lines run together
        else:
            assert report.heads_failed() == (line,), (offset, str(report))
        flipped(path, offset)


def rebuilt(directory: Path, entries: list[bytes]) -> None:
    """Rewrite the log as if ``entries`` were its history — entries, offsets, hashes and commit all consistent —
    keeping the heads the node signed: what someone who can write the disk but not sign can do."""
    heads = (directory / HEADS_FILE).read_bytes()
    shutil.rmtree(directory)
    with MerkleLog(directory, create=True) as log:
        log.append_many(entries)
    (directory / HEADS_FILE).write_bytes(heads)


@pytest.mark.parametrize("index", [0, 4, 5, 12, 20, 23, 24, 29])
def test_a_removed_entry_is_found(copy: Path, trust: TrustPolicy, index: int) -> None:
    raw = (copy / ENTRIES_FILE).read_bytes()
    start = sum(4 + len(e) for e in AUDITED[:index])
    (copy / ENTRIES_FILE).write_bytes(raw[:start] + raw[start + 4 + len(AUDITED[index]) :])
    report = audit(copy, trust)
    if index < len(AUDITED) - 1:
        assert report.entries_failed()[0] == index, str(report)
    else:  # the last entry: the hashes and the commit still count it
        assert report.entries_failed() == () and "committed at 30 entries but has only 29" in str(report)
    assert report.heads_failed() == heads_covering(index)
    with pytest.raises(VerificationError):
        MerkleLog(copy)

    rebuilt(copy, AUDITED[:index] + AUDITED[index + 1 :])
    report = audit(copy, trust)
    assert report.entries_failed() == ()  # every stored hash agrees with the entries now
    assert report.heads_failed() == heads_covering(index), str(report)  # but what the node signed does not


@pytest.mark.parametrize(("i", "j"), [(0, 1), (3, 4), (4, 5), (6, 11), (13, 22), (2, 27), (25, 29)])
def test_two_swapped_entries_are_found(copy: Path, trust: TrustPolicy, i: int, j: int) -> None:
    swapped = list(AUDITED)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    (copy / ENTRIES_FILE).write_bytes(b"".join(record(e) for e in swapped))
    report = audit(copy, trust)
    assert report.entries_failed() == (i, j), str(report)
    assert report.heads_failed() == heads_covering(i)

    rebuilt(copy, swapped)
    report = audit(copy, trust)
    assert report.entries_failed() == () and report.heads_failed() == heads_covering(i), str(report)


def test_a_changed_entry_with_every_hash_rebuilt_is_found_by_the_heads(copy: Path, trust: TrustPolicy) -> None:
    changed = list(AUDITED)
    changed[9] = b"a different envelope"
    rebuilt(copy, changed)
    report = audit(copy, trust)
    assert report.heads_failed() == (1, 2) and [p.kind for p in report.problems] == ["head", "head"], str(report)


@pytest.mark.parametrize(("line", "fork_at", "size"), [(0, 3, 5), (1, 10, 13), (1, 12, 13), (2, 0, 24), (2, 23, 26)])
def test_a_head_from_a_forked_history_is_found(
    copy: Path,
    tmp_path: Path,
    trust: TrustPolicy,
    node: tuple[str, Signer],
    now: datetime,
    line: int,
    fork_at: int,
    size: int,
) -> None:
    """The node signed a head over another history (same first ``fork_at`` entries) at the same moment."""
    forked = AUDITED[:fork_at] + make_entries(40, seed="fork")[fork_at:]
    fork_tree = MemoryTree.of_entries(forked[:size])
    original = (copy / HEADS_FILE).read_bytes().splitlines(keepends=True)
    kept = list(TreeHeadStore(copy / HEADS_FILE))
    fork_head = sign_tree_head(TreeState(size, fork_tree.root(size)), node[1], node[0], kept[line].timestamp)
    original[line] = head_to_line(fork_head) + b"\n"
    (copy / HEADS_FILE).write_bytes(b"".join(original))
    report = audit(copy, trust)
    assert report.heads_failed() == (line,), str(report)
    assert report.entries_failed() == ()
    assert [p.kind for p in report.problems] == ["head"]


def test_heads_out_of_order_or_of_another_node_are_found(
    copy: Path, trust: TrustPolicy, node: tuple[str, Signer]
) -> None:
    lines = (copy / HEADS_FILE).read_bytes().splitlines(keepends=True)
    (copy / HEADS_FILE).write_bytes(lines[1] + lines[0] + lines[2])
    report = audit(copy, trust)
    assert report.heads_failed() == (1,) and "not later" in str(report)
    (copy / HEADS_FILE).write_bytes(b"".join(lines))
    report = audit(copy, trust, node_id="gz-hub.gov")
    assert report.heads_failed() == (0, 1, 2) and "not gz-hub.gov" in str(report)


def test_a_head_beyond_the_log_means_entries_were_removed(copy: Path, trust: TrustPolicy) -> None:
    raw = (copy / ENTRIES_FILE).read_bytes()
    cut = sum(4 + len(e) for e in AUDITED[:20])
    (copy / ENTRIES_FILE).write_bytes(raw[:cut])
    report = audit(copy, trust)
    assert report.heads_failed() == (2,) and "has only 20" in str(report)
    assert any(p.kind == "commit" for p in report.problems)


def test_missing_and_extra_files_are_reported(copy: Path, trust: TrustPolicy) -> None:
    (copy / level_file(3)).unlink()
    with (copy / level_file(1)).open("ab") as f:
        f.write(b"\x00" * 32)
    (copy / OFFSETS_FILE).unlink()
    report = audit(copy, trust)
    assert [p.kind for p in report.problems] == ["file"] * 3, str(report)
    assert sorted(p.level or 0 for p in report.problems) == [0, 1, 3]
    with pytest.raises(VerificationError, match="3 problems"):
        report.raise_on_problems()


def test_a_report_lists_a_bounded_number_of_problems(copy: Path) -> None:
    os.truncate(copy / OFFSETS_FILE, 0)
    with (copy / OFFSETS_FILE).open("wb") as f:
        f.write(b"\x07" * 8 * 30)
    report = verify_log(copy, trust=None, max_problems=4)
    assert len(report.problems) == 4 and report.problems_not_listed == 26
    assert "26 more" in str(report)


def test_signatures_are_checked_with_the_trust_policy(
    copy: Path, make_pki: Callable[..., Any], trust: TrustPolicy
) -> None:
    other = make_pki(departments={}, rsa_department=False)
    report = audit(copy, other.trust())
    assert report.heads_failed() == (0, 1, 2) and "configured root" in str(report)
    assert audit(copy, trust).ok


def test_an_endless_head_line_is_damage_and_never_read_whole(copy: Path, trust: TrustPolicy) -> None:
    lines = (copy / HEADS_FILE).read_bytes().splitlines(keepends=True)
    (copy / HEADS_FILE).write_bytes(lines[0] + b"x" * (1 << 20) + b"\n" + lines[1] + lines[2])
    report = audit(copy, trust)
    assert report.heads_failed() == (1,) and "longer than" in str(report), str(report)
    assert report.heads == 4 and report.entries_failed() == ()
