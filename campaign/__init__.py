"""The resilience campaign: crashes at named kill points, failing disks, a partitioned network and load, run
against real ``gwx node run`` processes, checked as Jepsen's queue checker checks a queue, and reported as one
table by ``python -m campaign``.

``network``  the harness: a PKI, a signed directory and node homes; daemons started, killed and restarted with
             their own environment; a clerk that sends and signs for as ``gwx send``/``gwx sign-for`` do; the
             checker that reads every store and every Merkle log.
``crashes``  every kill point of ``gwexchange.routing.faults`` at the hub and at the recipient, R kills each.
``disks``    ENOSPC and EIO injected at a receiving node's store.
``network_faults``  a hub cut off, envelopes past expiry, clock skew, tree-head times.
``abuse``    floods, slow and idle clients, hostile MIME with a node's certificate, a hung neighbour, against a
             working hub: a document still reaches 送达 in time, and each daemon's peak RSS is reported.
``load``     thousands of documents of mixed sizes and fan-outs while a hub is killed and restarted.
``hostile``  the hostile-input corpus of ``tests/attacks`` (its ``runner.run_corpus``).
``report``   the table (and ``--json``).
"""

import os as _os

# The campaign arms its daemons one by one through their own environment; the campaign process itself (its clerks,
# the in-process nodes of the clock-skew cases) must never be armed, whatever the calling shell exported.
for _name in ("GWX_CRASH_AT", "GWX_IO_FAULT_FILE"):
    _os.environ.pop(_name, None)
