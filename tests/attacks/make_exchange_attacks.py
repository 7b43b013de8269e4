"""Generate the exchange part of the hostile-input corpus: envelopes, SMTP messages, bundles, packages, receipts,
directories, tree heads, and more documents — all signed with the test PKI of ``tests/vectors/pki``.

Run by hand from the repository root (``make_attacks.py`` runs it too, after it made a new PKI)::

    python tests/attacks/make_exchange_attacks.py

It rewrites, and owns, exactly these files:

* ``tests/vectors/exchange/`` — what the exchange adds to the test PKI, issued by its root (keys UNENCRYPTED, test
  vectors only): the nodes gd-czt, gd-hub and gd-edge; gd-czt's node certificate once EXPIRED (2026-01-01 to
  2026-03-01) and once REVOKED for keyCompromise on 2026-06-01 (``crl.pem``, good for 20 years); encryption
  certificates of gd.gov.czt and gd.gov.gxt (EC P-256); the department gd.gov.fgw (EC signing, RSA-2048
  encryption); the authority's directory signing certificate (gd.gov.ca); and under ``keys/attacker/`` a
  self-signed gd-czt node certificate and one from the attacker's root. Then the valid vectors the runner starts
  from: ``directory.signed.xml`` (serial 5: gd-czt serves gd.gov.czt, gd-hub serves gd.gov.office and
  gd.gov.fgw, gd-edge serves gd.gov.gxt; links gd-czt–gd-hub and gd-czt–gd-edge), ``envelope.xml`` (a notice
  gd.gov.czt sent gd.gov.office through gd-czt), ``sent.json`` (gd-czt's outbox record of it),
  ``receipt.xml`` (gd-hub's envelope carrying gd.gov.office's 送达 for it) and ``treehead.xml`` (gd-hub's).
* ``tests/attacks/exchange/`` — the attack files and ``index.toml`` (format: see ``runner.py``).

Every attack is run by ``runner.py`` before it is kept, exactly as ``tests/test_attacks.py`` runs it: a case that
is accepted, refused for another reason, or leaves anything in a store is NOT written and is reported on stderr
(exit status 1), so that a hole is fixed in the library before its test lands in the corpus.

The code is the package ``generate/``, one module per target (``exchange_*``, ``exchange``; see its ``__init__``);
this script is its entry point.
"""

from __future__ import annotations

import sys

from generate.exchange import main

if __name__ == "__main__":
    sys.exit(main())
