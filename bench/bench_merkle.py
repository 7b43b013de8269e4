"""The archive's Merkle log: append rate, verifying a one-million-entry log, and proofs on it.

Run from the repository root with the project's virtual environment::

    python bench/bench_merkle.py                  # about a minute; ~280 MB in a temporary folder, removed after
    python bench/bench_merkle.py --entries 200000 # a smaller log

What is measured, against the goals of the archive issue:

* **append** — ``MerkleLog.append_many`` of 1,000-entry batches of ~200-byte entries, each batch committed with
  ``flush()`` (every file written is fdatasync'd, then the commit record is replaced): entries per second over
  the whole build of the log, commits included. Making the entries is not timed. Goal: ≥ 20,000/s.
* **verify structure** — ``verify_log(trust=None)`` on the closed log: every entry read and hashed again, the
  whole tree rebuilt from those hashes and compared with every stored hash record, offset and the commit, and
  every kept tree head's root compared with the rebuilt root at its size. Goal: 1,000,000 entries in < 60 s.
  The files were just written, so they are read from the page cache (a cold disk adds its read time).
* **signatures, counted separately** — ``verify_tree_head`` (trust policy with the node certificate and CRL,
  then ECDSA P-256) per second, and ``sign_tree_head`` per second.
* **proofs** — on the reopened 1,000,000-entry log: inclusion proofs of random entries in random tree sizes
  and consistency proofs between random sizes, plus the deepest shapes (the last entry, sizes one past a power
  of two), each produced from the stored hash files (O(log n) reads by offset) and verified (RFC 9162
  §2.1.3.2 / §2.1.4.2), timed one by one. Goal: every proof under 1 ms — the maximum is what is judged.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a source tree without installing
    sys.path.insert(0, str(REPO))

import benchenv  # noqa: E402
from cryptography import x509  # noqa: E402

from gwexchange.archive.head_store import TreeHeadStore  # noqa: E402
from gwexchange.archive.log import MerkleLog  # noqa: E402
from gwexchange.archive.log_verify import verify_log  # noqa: E402
from gwexchange.archive.merkle import TreeState, leaf_hash, verify_consistency, verify_inclusion  # noqa: E402
from gwexchange.archive.treehead import sign_tree_head, verify_tree_head  # noqa: E402
from gwexchange.crypto.certificates import Role, Usage  # noqa: E402
from gwexchange.crypto.keys import KeyAlgorithm, UnsafeUnencrypted, key_from_pem  # noqa: E402
from gwexchange.crypto.trust import TrustPolicy  # noqa: E402
from gwexchange.crypto.xmldsig import Signer  # noqa: E402
from gwexchange.pki.authority import Authority  # noqa: E402

NOW = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
NODE = "gd-hub"
ENTRY_BYTES = 200
BATCH = 1_000
HEADS = 10  # tree heads signed while the log is built, evenly spread

GOAL_APPEND_PER_S = 20_000
GOAL_VERIFY_S = 60.0  # for 1,000,000 entries
GOAL_US = 1_000.0  # per proof


def make_node(home: Path) -> tuple[Signer, TrustPolicy]:
    start = NOW - timedelta(days=10)
    ca = Authority.create(
        home, code="gd.gov.ca", name="广东省电子政务安全中心（测试）", protection=UnsafeUnencrypted(), now=start
    )
    files = ca.issue(
        code=NODE,
        name="广东省公文交换节点（测试）",
        role=Role.NODE,
        usage=Usage.NODE,
        protection=UnsafeUnencrypted(),
        now=start,
        algorithm=KeyAlgorithm.EC_P256,
    )
    signer = Signer(
        key_from_pem(files.key.read_bytes(), None), x509.load_pem_x509_certificate(files.certificate.read_bytes())
    )
    crl = x509.load_pem_x509_crl((home / "crl.pem").read_bytes())
    return signer, TrustPolicy(ca.root, (crl,), now=NOW)


class Entries:
    """Distinct ~200-byte entries, cheap to make: a serial number, then a slice of a random pool."""

    def __init__(self) -> None:
        self.pool = random.Random(9162).randbytes(1 << 20)

    def batch(self, start: int, count: int) -> list[bytes]:
        pool, body = self.pool, ENTRY_BYTES - 13
        out = []
        for i in range(start, start + count):
            at = (i * 7919) % (len(pool) - body)
            out.append(b"%012d " % i + pool[at : at + body])
        return out


def ok(good: bool) -> str:
    return "ok" if good else "MISS"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build(directory: Path, total: int, signer: Signer) -> None:
    entries = Entries()
    head_every = max(1, total // HEADS)
    appended, append_time, commits, commit_time, sign_time, heads = 0, 0.0, 0, 0.0, 0.0, 0
    started = time.perf_counter()
    with MerkleLog(directory, create=True) as log:
        store = TreeHeadStore(log.heads_path)
        while appended < total:
            batch = entries.batch(appended, min(BATCH, total - appended))
            t0 = time.perf_counter()
            log.append_many(batch)
            t1 = time.perf_counter()
            log.flush()
            t2 = time.perf_counter()
            append_time += t1 - t0
            commit_time += t2 - t1
            commits += 1
            appended += len(batch)
            if appended % head_every == 0 or appended == total:
                t3 = time.perf_counter()
                store.sign(log, signer, NODE, NOW - timedelta(hours=1) + timedelta(seconds=heads))
                sign_time += time.perf_counter() - t3
                heads += 1
    wall = time.perf_counter() - started
    rate = appended / (append_time + commit_time)
    print(f"append        {appended:,} entries of {ENTRY_BYTES} bytes in {commits:,} committed batches of {BATCH:,}")
    print(
        f"              {rate:,.0f} entries/s with every batch committed (fdatasync)   goal ≥ {GOAL_APPEND_PER_S:,}/s: "
        f"{ok(rate >= GOAL_APPEND_PER_S)}"
    )
    print(
        f"              appending alone {appended / append_time:,.0f} entries/s; a commit takes "
        f"{commit_time / commits * 1e3:.2f} ms on average; {heads} tree heads signed and kept "
        f"({sign_time / heads * 1e3:.2f} ms each); wall {wall:.1f} s"
    )


def verify_structure(directory: Path, total: int) -> None:
    gc.collect()
    t0 = time.perf_counter()
    report = verify_log(directory, trust=None)
    elapsed = time.perf_counter() - t0
    if not report.ok:
        raise SystemExit(f"the log does not verify:\n{report}")
    goal = GOAL_VERIFY_S * total / 1_000_000
    print(
        f"verify        {report.size:,} entries (leaf rehash, tree, every stored record, {report.heads} heads' roots) "
        f"in {elapsed:.1f} s = {report.size / elapsed:,.0f} entries/s   goal < {goal:.0f} s: {ok(elapsed < goal)}"
    )


def signatures(directory: Path, signer: Signer, trust: TrustPolicy) -> None:
    kept = list(TreeHeadStore(directory / "heads"))
    state = TreeState(kept[-1].size, kept[-1].root_hash)
    count = 300
    t0 = time.perf_counter()
    heads = [
        sign_tree_head(state, signer, NODE, NOW - timedelta(minutes=30) + timedelta(seconds=k)) for k in range(count)
    ]
    sign_rate = count / (time.perf_counter() - t0)
    verify_tree_head(heads[0], trust)  # the certificate's chain is checked once, then cached by the policy
    t0 = time.perf_counter()
    for head in heads + kept:
        verify_tree_head(head, trust)
    verify_rate = (count + len(kept)) / (time.perf_counter() - t0)
    print(
        f"signatures    verify_tree_head {verify_rate:,.0f}/s (trust policy + ECDSA P-256); "
        f"sign_tree_head {sign_rate:,.0f}/s — not part of the structure time above"
    )


@dataclasses.dataclass
class ProofTimes:
    """Microseconds per proof: the first run of each, and the best of ``REPEAT`` (the proof's own cost, without
    the scheduler's interruptions on a shared machine)."""

    produce_first: list[float] = dataclasses.field(default_factory=list)
    produce_best: list[float] = dataclasses.field(default_factory=list)
    verify_first: list[float] = dataclasses.field(default_factory=list)
    verify_best: list[float] = dataclasses.field(default_factory=list)

    def add(self, produce: list[float], verify: list[float]) -> None:
        self.produce_first.append(produce[0] * 1e6)
        self.produce_best.append(min(produce) * 1e6)
        self.verify_first.append(verify[0] * 1e6)
        self.verify_best.append(min(verify) * 1e6)

    def line(self, name: str) -> str:
        def stats(values: list[float]) -> str:
            return f"mean {statistics.fmean(values):5.1f}, p99 {percentile(values, 0.99):5.1f}, max {max(values):6.1f}"

        return (
            f"  {name:<12}{len(self.produce_best):,} proofs, µs   produce: {stats(self.produce_best)} "
            f"(first runs: max {max(self.produce_first):6.1f})   verify: {stats(self.verify_best)} "
            f"(first runs: max {max(self.verify_first):6.1f})"
        )


REPEAT = 3


def proof_cases(n_max: int, samples: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Random (index, size) and (m, n) pairs, and the deepest shapes: paths along the right edge, sizes one past
    a power of two."""
    rng = random.Random(6962)
    inclusion = [(rng.randrange(n), n) for n in (rng.randrange(1, n_max + 1) for _ in range(samples))]
    p = 1 << ((n_max - 1).bit_length() - 1)  # the largest power of two below n_max
    inclusion += [(n_max - 1, n_max), (0, n_max), (p, p + 1), (p - 1, n_max), (p // 2 + 1, p + 3)]
    consistency: list[tuple[int, int]] = []
    for _ in range(samples):
        a, b = rng.randrange(1, n_max + 1), rng.randrange(1, n_max + 1)
        consistency.append((min(a, b), max(a, b)))
    consistency += [(1, n_max), (n_max - 1, n_max), (p + 1, n_max), (p // 2 - 1, p + 3), (p - 1, p + 1)]
    return inclusion, consistency


def proofs(directory: Path, samples: int) -> None:
    t0 = time.perf_counter()
    log = MerkleLog(directory)
    opened = time.perf_counter() - t0
    clock = time.perf_counter
    inc_times, con_times = ProofTimes(), ProofTimes()
    try:
        inclusion, consistency = proof_cases(log.size, samples)
        sizes = {n for _, n in inclusion} | {s for pair in consistency for s in pair}
        roots = {n: log.root(n) for n in sizes}  # what the verifier holds: signed heads' roots
        leaves = {i: leaf_hash(log.entry(i)) for i, _ in inclusion}
        for i, n in inclusion[:50]:  # warm up code paths and the page cache
            log.inclusion_proof(i, n)
        gc.collect()
        gc.disable()
        try:
            for i, n in inclusion:
                produce, verify = [], []
                for _ in range(REPEAT):
                    t0 = clock()
                    path = log.inclusion_proof(i, n)
                    t1 = clock()
                    verify_inclusion(leaves[i], i, n, path, roots[n])
                    verify.append(clock() - t1)
                    produce.append(t1 - t0)
                inc_times.add(produce, verify)
            for m, n in consistency:
                produce, verify = [], []
                for _ in range(REPEAT):
                    t0 = clock()
                    proof = log.consistency_proof(m, n)
                    t1 = clock()
                    verify_consistency(m, n, roots[m], roots[n], proof)
                    verify.append(clock() - t1)
                    produce.append(t1 - t0)
                con_times.add(produce, verify)
        finally:
            gc.enable()
        size = log.size
    finally:
        log.close()
    print(f"proofs        on the reopened log of {size:,} entries (reopening took {opened * 1e3:.1f} ms)")
    print(inc_times.line("inclusion"))
    print(con_times.line("consistency"))
    worst = max(*inc_times.produce_best, *inc_times.verify_best, *con_times.produce_best, *con_times.verify_best)
    print(
        f"              slowest proof, produced or verified (best of {REPEAT}): {worst:.1f} µs   "
        f"goal < 1 ms: {ok(worst < GOAL_US)}"
    )


def disk_use(directory: Path) -> str:
    sizes = {p.name: p.stat().st_size for p in directory.iterdir() if p.is_file()}
    levels = sum(v for k, v in sizes.items() if k.startswith("level-"))
    return (
        f"disk          {sum(sizes.values()) / 1e6:.0f} MB: entries {sizes.get('entries', 0) / 1e6:.0f} MB, offsets "
        f"{sizes.get('offsets', 0) / 1e6:.0f} MB, hashes {levels / 1e6:.0f} MB (all levels), heads "
        f"{sizes.get('heads', 0) / 1e3:.0f} KB"
    )


def environment() -> str:
    return (
        f"gwexchange {benchenv.source_revision('gwexchange/archive')}\n{benchenv.machine()}; "
        f"{benchenv.library_versions('cryptography')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries in the log (default 1,000,000)")
    parser.add_argument("--proofs", type=int, default=2_000, help="random proofs of each kind (default 2,000)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the temporary log (default: $TMPDIR)")
    args = parser.parse_args(argv)
    print(environment())
    with tempfile.TemporaryDirectory(prefix="gwx-bench-merkle-", dir=args.dir) as tmp:
        home = Path(tmp)
        print(f"folder        {home}")
        signer, trust = make_node(home / "ca")
        directory = home / "log"
        build(directory, args.entries, signer)
        print(disk_use(directory))
        verify_structure(directory, args.entries)
        signatures(directory, signer, trust)
        proofs(directory, args.proofs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
