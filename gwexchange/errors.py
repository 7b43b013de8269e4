"""The one error tree of gwexchange.

Every failure the library reports is a ``GwxError``; foreign exceptions (lxml, cryptography, xmlschema) are
wrapped at the boundary where they happen, never leaked. The tree is split by whose fault it is:

    GwxError
    ├── InputError              the caller handed us something wrong: fix the input
    │   ├── DocumentError       a 公文 element breaks GB/T 9704 or our schema (names the element in Chinese)
    │   ├── XmlInputError       bytes that are not acceptable XML (DTD, entities, too large, too deep, …)
    │   ├── ConfigError         a file, passphrase or option the user supplied is missing or unusable
    │   ├── NotFoundError       what was asked for is not there (a message this store does not hold)
    │   └── RouteError          no route the document's 密级 permits reaches a recipient (names it and the zone)
    ├── TransientError          nobody's fault: the same call later may work (a busy or full store); a node
    │                           answers it with SMTP 4xx, the sender tries again
    ├── StateError              a call made at the wrong moment (a listener asked for its port before it started)
    └── VerificationError       a signature, certificate or digest does not prove what it claims
        ├── SignatureError      the XML-DSig is outside our profile or does not verify
        ├── TrustError          the certificate does not chain to the root, is expired, revoked or misused
        ├── DecryptionError     an envelope cannot be opened with this key (one message, whatever the cause)
        └── EnvelopeError       an envelope or receipt breaks a rule: expired, not addressed here, wrong binding

The CLI prints ``str(error)`` as one plain line; the message is written for the clerk, in Chinese where it
names a document element.
"""

from __future__ import annotations


class GwxError(Exception):
    """Base of every error gwexchange raises on purpose."""


class InputError(GwxError):
    """The input is wrong; the same call with corrected input will work."""


class DocumentError(InputError):
    """A document element is missing or malformed. ``element`` is its Chinese name (份号, 密级, …)."""

    def __init__(self, element: str, problem: str) -> None:
        self.element = element
        self.problem = problem
        super().__init__(f"{element}：{problem}")


class XmlInputError(InputError):
    """Bytes that the hardened XML parser refuses (malformed, DTD, entities, oversized, too deep)."""


class ConfigError(InputError):
    """A key, certificate, passphrase or option the user supplied cannot be used."""


class NotFoundError(InputError):
    """What was asked for is not there: a message id this store or inbox does not hold."""


class TransientError(GwxError):
    """Trouble that passes: the store is busy or full, a resource is exhausted. Nothing was done; try again."""


class StateError(GwxError):
    """The object is not in a state that allows the call (not started, already running, not connected)."""


class VerificationError(GwxError):
    """Something signed does not verify. Never caught and ignored: a caller either handles it or fails."""


class SignatureError(VerificationError):
    """The XML signature is outside the accepted profile, or its digest or value does not match."""


class TrustError(VerificationError):
    """The signer's certificate is not trusted for this use at this time (path, validity, usage, revocation)."""


class DecryptionError(VerificationError):
    """Decryption failed. Always the same message, whatever went wrong inside: no padding or MAC oracle."""

    MESSAGE = "the envelope cannot be opened with this key: it is not addressed to it, or it was altered"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class EnvelopeError(VerificationError):
    """An envelope or receipt is authentic but breaks a rule: expired, not addressed here, bound to other bytes."""


class RouteError(InputError):
    """No permitted route: ``reasons`` maps each unreachable recipient (or the sending node) to why, in Chinese."""

    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = dict(reasons)
        super().__init__("；".join(f"{who}：{why}" for who, why in self.reasons.items()))


__all__ = [
    "ConfigError",
    "DecryptionError",
    "DocumentError",
    "EnvelopeError",
    "GwxError",
    "InputError",
    "NotFoundError",
    "RouteError",
    "SignatureError",
    "StateError",
    "TransientError",
    "TrustError",
    "VerificationError",
    "XmlInputError",
]
