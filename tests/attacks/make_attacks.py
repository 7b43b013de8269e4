"""Generate the hostile-input corpus of gwexchange: a throw-away test PKI, signed vectors and attack files.

Run by hand from the repository root (pytest does not collect it)::

    python tests/attacks/make_attacks.py

It rewrites, and owns, exactly these files:

* ``tests/vectors/pki/`` — the trusted test PKI, an ``Authority`` home: root (valid from 2026-01-01 for 20 years),
  signing certificates of gd.gov.office (EC P-256; a second one with an RSA-2048 key), one that EXPIRED in
  February 2026, one REVOKED for keyCompromise on 2026-06-01, an encryption certificate of gd.gov.office,
  signing certificates of gd.gov.czt and gd.gov.gxt (the joint notice) and a node certificate; the CRL is good for
  20 years. Keys are stored UNENCRYPTED: they are test vectors, never to be used for anything real.
* ``tests/vectors/attacker/`` — what an attacker holds: an unrelated root with a gd.gov.office certificate, an
  impostor root that copies the trusted root's name, a self-signed gd.gov.office certificate, and certificates
  the trusted root mis-issued (a CA certificate, and a sub-CA's end-entity certificate).
* ``tests/vectors/*.xml`` — the draft notice and the valid signed vectors, all signed at ``SIGNED_AT``.
* ``tests/attacks/*.xml`` and ``tests/attacks/index.toml`` — every hostile variant, and for each its class (see
  ``attack_class`` in ``generate/documents.py``), the exception class ``verify_document`` must raise, a substring
  its message must contain and what the attack is.

The exchange corpus (``tests/attacks/exchange/``, ``tests/vectors/exchange/``) is signed by this PKI too: after a
full run, ``make_exchange_attacks.py`` runs as well and makes it again. ``--reindex`` rewrites only index.toml
from the entries it holds (to change classes or descriptions without new keys and signatures).

Every attack is checked against the library before it is written: a file that is accepted, or refused with
another error than the one expected, is NOT written and is reported on stderr (exit status 1), so that a hole is
fixed in the library before its test lands in the corpus.

Where an attack needs a signature over a shape our profile refuses (SHA-1, XSLT, ID references, …), the
signature is computed here from the W3C specifications with the real gd.gov.office key, so that nothing but the
profile stops it; none of the XML-DSig code of gwexchange is used for that.

The code is the package ``generate/``, one module per target (``base``, ``pki``, ``document_*``, ``documents``; see
its ``__init__``); this script is its entry point.
"""

from __future__ import annotations

import sys

from generate.documents import main

if __name__ == "__main__":
    sys.exit(main())
