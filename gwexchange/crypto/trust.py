"""The trust policy: is this certificate, found in a signature, one the root vouches for, for this use, then?

Strict by default: the path must lead to the configured root, the certificate must be valid at the signing time,
carry the key usage for the job, not be a CA, and not be revoked by a CRL that the root signed. A certificate
found inside a signature is only a claim until ``validate`` says otherwise; a self-signed one never is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from gwexchange.crypto.certificates import Identity, RevocationReason, Role, Usage, identity_of
from gwexchange.errors import ConfigError, TrustError

MAX_CERT_BYTES = 16 * 1024
T = TypeVar("T", bound=x509.ExtensionType)


@dataclass(frozen=True, slots=True)
class ValidatedCertificate:
    """A certificate that passed ``TrustPolicy.validate`` for ``usage`` at one time; ``identity`` is trusted."""

    certificate: x509.Certificate
    identity: Identity
    usage: Usage


@dataclass(frozen=True)
class TrustPolicy:
    """The root to trust and the CRLs to consult; ``unsafe_skip_revocation=True`` consults none, asked for by name.

    ``now`` is the verifier's clock (the system clock when None): every CRL must still be current then. It is
    not the signing time a signature claims, or a signer could backdate past a stale CRL's end.
    """

    root: x509.Certificate
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    unsafe_skip_revocation: bool = False
    now: datetime | None = None
    # DER → certificate whose root signature already verified, with the identity it names: the expensive part
    # of a path check, done once per certificate. Time, usage and revocation are checked on every call.
    _issued_by_root: dict[bytes, tuple[x509.Certificate, Identity]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.root.issuer != self.root.subject:
            raise ConfigError("the configured root certificate is not self-signed")
        try:
            self.root.verify_directly_issued_by(self.root)
        except (InvalidSignature, ValueError, TypeError) as e:
            raise ConfigError("the configured root certificate's self-signature does not verify") from e
        for crl in self.crls:
            if crl.issuer != self.root.subject or not crl.is_signature_valid(self.root.public_key()):  # type: ignore[arg-type]
                raise ConfigError("a configured CRL is not signed by the root")
        if self.check_revocation and not self.crls:
            raise ConfigError("no CRL is configured: revocation cannot be checked (give the root's crl.pem)")

    @property
    def check_revocation(self) -> bool:
        return not self.unsafe_skip_revocation

    def validate(self, der: bytes, *, usage: Usage, at: datetime) -> ValidatedCertificate:
        """Validate the DER certificate for ``usage`` at time ``at`` (timezone-aware), or raise ``TrustError``."""
        cert, identity = self._chain_to_root(der)
        if identity.role is Role.ROOT:
            raise TrustError("the root certificate cannot sign documents")
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise TrustError(
                f"certificate of {identity.code} (serial {identity.serial:x}) is not valid at {_iso(at)}: "
                f"valid {_iso(cert.not_valid_before_utc)} to {_iso(cert.not_valid_after_utc)}"
            )
        if not self.root.not_valid_before_utc <= at <= self.root.not_valid_after_utc:
            raise TrustError(f"the root certificate is not valid at {_iso(at)}")
        check_usage(cert, identity, usage)
        if self.check_revocation:
            self._check_not_revoked(cert, identity, at)
        return ValidatedCertificate(certificate=cert, identity=identity, usage=usage)

    def _chain_to_root(self, der: bytes) -> tuple[x509.Certificate, Identity]:
        cached = self._issued_by_root.get(der)
        if cached is not None:
            return cached
        if len(der) > MAX_CERT_BYTES:
            raise TrustError("certificate is too large")
        try:
            # cryptography parses names and serials lazily, and warns about malformed serials: read them all
            # here, where a malformed certificate becomes a TrustError, not a stray ValueError or warning.
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                cert = x509.load_der_x509_certificate(der)
                issuer, subject, _ = cert.issuer, cert.subject, cert.serial_number
        except (ValueError, x509.InvalidVersion, Warning) as e:
            raise TrustError("certificate is not valid DER X.509") from e
        if not der.endswith(b"\x00" + cert.signature):
            # A signature BIT STRING that claims unused bits still parses to the same signature bytes: refuse
            # that second encoding of the same certificate, so one certificate has one DER form.
            raise TrustError("certificate's signature is not encoded as a whole number of octets")
        if issuer == subject:
            raise TrustError("certificate is self-signed; only certificates issued by the root are trusted")
        if issuer != self.root.subject:
            raise TrustError("certificate is not issued by the configured root")
        try:
            cert.verify_directly_issued_by(self.root)
        except (InvalidSignature, ValueError, TypeError) as e:
            raise TrustError("certificate's signature does not verify with the configured root") from e
        basic = _extension(cert, x509.BasicConstraints)
        if basic is None or basic.ca:
            raise TrustError("an end-entity certificate must say it is not a CA")
        self._issued_by_root[der] = (cert, identity_of(cert))
        return self._issued_by_root[der]

    def _check_not_revoked(self, cert: x509.Certificate, identity: Identity, at: datetime) -> None:
        current = self.now or datetime.now(UTC)
        for crl in self.crls:
            if crl.next_update_utc is not None and crl.next_update_utc < current:
                raise TrustError(
                    f"the CRL expired on {_iso(crl.next_update_utc)}: get the current CRL from the security centre"
                )
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is None:
                continue
            reason = RevocationReason.UNSPECIFIED
            try:
                flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
                reason = RevocationReason(flag.value)
            except (x509.ExtensionNotFound, ValueError):
                pass
            revoked_at = entry.revocation_date_utc
            if reason.voids_past_signatures or at >= revoked_at:
                raise TrustError(
                    f"certificate of {identity.code} (serial {identity.serial:x}) was revoked on "
                    f"{_iso(revoked_at)} ({reason.value})"
                )


def check_usage(cert: x509.Certificate, identity: Identity, usage: Usage) -> None:
    """Raise ``TrustError`` unless the certificate's role and key usage allow ``usage``."""
    ku = _extension(cert, x509.KeyUsage)
    if ku is None:
        raise TrustError("certificate has no key usage extension")
    expected_role = Role.NODE if usage is Usage.NODE else Role.DEPARTMENT
    if identity.role is not expected_role:
        raise TrustError(f"certificate of {identity.code} is a {identity.role} certificate, not a {expected_role} one")
    if usage is Usage.SIGNING and not (ku.digital_signature and ku.content_commitment):
        raise TrustError(f"certificate of {identity.code} is not a signing certificate (key usage)")
    if usage is Usage.NODE and not ku.digital_signature:
        raise TrustError(f"certificate of {identity.code} may not sign (key usage)")
    if usage is Usage.ENCRYPTION and not (ku.key_encipherment or ku.key_agreement):
        raise TrustError(f"certificate of {identity.code} is not an encryption certificate (key usage)")
    if usage is not Usage.ENCRYPTION and (ku.key_encipherment or ku.key_agreement):
        raise TrustError(f"certificate of {identity.code} is an encryption certificate; it may not sign")


def _extension(cert: x509.Certificate, kind: type[T]) -> T | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension) as e:  # extensions, too, are parsed lazily
        raise TrustError(f"certificate extensions are malformed: {e}") from e


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "MAX_CERT_BYTES",
    "TrustPolicy",
    "ValidatedCertificate",
    "check_usage",
]
