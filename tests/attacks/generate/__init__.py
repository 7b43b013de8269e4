"""The generators of the hostile-input corpus, one module per target. Run them through their entry points,
``tests/attacks/make_attacks.py`` (documents; ``documents.main``) and ``tests/attacks/make_exchange_attacks.py``
(the exchange; ``exchange.main``), whose docstrings say which files they own.

``base`` holds what both share and ``pki`` the test PKI; ``document_corpus`` and ``exchange_common`` (with
``exchange_pki`` and ``exchange_zip``) are each corpus's own helpers; every other module is one target, run in the
order ``documents.SECTIONS`` and ``exchange.SECTIONS`` give — the exchange's random bytes are drawn in that order.

Importing the package puts the repository first on ``sys.path``, as the scripts always did: the corpus is made
with, and checked against, the gwexchange of this checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
