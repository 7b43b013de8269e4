"""gwexchange: official documents (公文) signed, sealed for their recipients, exchanged between nodes, receipted.

The names a Python user needs, in one place (each loaded on first use, so ``gwx`` starts no slower)::

    import gwexchange as gwx

    doc = gwx.load_description_file(Path("notice.toml"))           # a 公文 from a clerk's description
    signed = gwx.sign_document(gwx.document_to_xml(doc), signer, at=now)
    verified = gwx.verify_document(signed, trust, now=now)          # who signed what, or VerificationError
    sealed = gwx.seal(verified, {code: cert}, node_signer, trust=trust, sender_department=..., node_id=...)
    opened = gwx.open_envelope(sealed.envelope_xml, code, key, trust, now=now)

Everything else is in the parts (see README, "Where things are"): ``crypto``, ``pki``, ``envelope``, ``network``,
``render``, ``archive``, ``routing``, ``cli``. Every error is a ``GwxError``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported when first asked for
    __version__: str
    from gwexchange.crypto.keys import key_from_pem
    from gwexchange.crypto.trust import TrustPolicy
    from gwexchange.crypto.xmldsig import Signer
    from gwexchange.envelope.description import load_description_file
    from gwexchange.envelope.model import Classification, Document
    from gwexchange.envelope.receipts import Receipt, ReceiptKind, make_receipt, sign_receipt, verify_receipt
    from gwexchange.envelope.sealing import OpenedEnvelope, Sealed, inspect, open_envelope, seal
    from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document
    from gwexchange.envelope.xmlform import document_to_xml
    from gwexchange.errors import (
        ConfigError,
        DecryptionError,
        DocumentError,
        EnvelopeError,
        GwxError,
        InputError,
        SignatureError,
        TransientError,
        TrustError,
        VerificationError,
    )
    from gwexchange.pki.keyfiles import load_certificate, load_keypair
    from gwexchange.routing.clerk import answer_document, send_document
    from gwexchange.routing.context import load_context
    from gwexchange.routing.home import NodeConfig

_WHERE = {
    "key_from_pem": "gwexchange.crypto.keys",
    "TrustPolicy": "gwexchange.crypto.trust",
    "Signer": "gwexchange.crypto.xmldsig",
    "load_description_file": "gwexchange.envelope.description",
    "Classification": "gwexchange.envelope.model",
    "Document": "gwexchange.envelope.model",
    "Receipt": "gwexchange.envelope.receipts",
    "ReceiptKind": "gwexchange.envelope.receipts",
    "make_receipt": "gwexchange.envelope.receipts",
    "sign_receipt": "gwexchange.envelope.receipts",
    "verify_receipt": "gwexchange.envelope.receipts",
    "OpenedEnvelope": "gwexchange.envelope.sealing",
    "Sealed": "gwexchange.envelope.sealing",
    "inspect": "gwexchange.envelope.sealing",
    "open_envelope": "gwexchange.envelope.sealing",
    "seal": "gwexchange.envelope.sealing",
    "VerifiedDocument": "gwexchange.envelope.signing",
    "sign_document": "gwexchange.envelope.signing",
    "verify_document": "gwexchange.envelope.signing",
    "document_to_xml": "gwexchange.envelope.xmlform",
    "ConfigError": "gwexchange.errors",
    "DecryptionError": "gwexchange.errors",
    "DocumentError": "gwexchange.errors",
    "EnvelopeError": "gwexchange.errors",
    "GwxError": "gwexchange.errors",
    "InputError": "gwexchange.errors",
    "SignatureError": "gwexchange.errors",
    "TransientError": "gwexchange.errors",
    "TrustError": "gwexchange.errors",
    "VerificationError": "gwexchange.errors",
    "load_certificate": "gwexchange.pki.keyfiles",
    "load_keypair": "gwexchange.pki.keyfiles",
    "answer_document": "gwexchange.routing.clerk",
    "send_document": "gwexchange.routing.clerk",
    "NodeConfig": "gwexchange.routing.home",
    "load_context": "gwexchange.routing.context",
}

__all__ = [
    "Classification",
    "ConfigError",
    "DecryptionError",
    "Document",
    "DocumentError",
    "EnvelopeError",
    "GwxError",
    "InputError",
    "NodeConfig",
    "OpenedEnvelope",
    "Receipt",
    "ReceiptKind",
    "Sealed",
    "SignatureError",
    "Signer",
    "TransientError",
    "TrustError",
    "TrustPolicy",
    "VerificationError",
    "VerifiedDocument",
    "__version__",
    "answer_document",
    "document_to_xml",
    "inspect",
    "key_from_pem",
    "load_certificate",
    "load_context",
    "load_description_file",
    "load_keypair",
    "make_receipt",
    "open_envelope",
    "seal",
    "send_document",
    "sign_document",
    "sign_receipt",
    "verify_document",
    "verify_receipt",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 — read once, when asked for

        value: Any = version("gwexchange")
    elif name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'gwexchange' has no attribute {name!r}")
    globals()[name] = value  # the next lookup finds it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
