"""X.509 certificates and CRLs of the gwexchange PKI (安全中心), as pure functions of keys and times.

One root authority issues every certificate directly. Each names its holder in the subject: CN is the display
name, UID the directory code, OU the role (root, node, department). A department holds two certificates with
separate key usages: one to sign (digitalSignature, nonRepudiation) and one to receive encrypted documents
(keyEncipherment for RSA, keyAgreement for EC). A node holds one, for TLS and for signing envelopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gwexchange.codes import is_department_code, is_node_id
from gwexchange.crypto.suite import PrivateKey, PublicKey
from gwexchange.errors import ConfigError, TrustError


class Role(StrEnum):
    ROOT = "root"
    NODE = "node"
    DEPARTMENT = "department"


class Usage(StrEnum):
    SIGNING = "signing"  # documents, receipts, directories
    ENCRYPTION = "encryption"  # content keys wrapped for this holder
    NODE = "node"  # TLS between nodes and envelope signatures


class RevocationReason(StrEnum):
    """The RFC 5280 reasons a clerk of the security centre chooses from."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"

    @property
    def flag(self) -> x509.ReasonFlags:
        return x509.ReasonFlags(self.value)

    @property
    def voids_past_signatures(self) -> bool:
        """A compromised key (or one revoked without a reason) proves nothing, whatever time a signature claims."""
        return self in (RevocationReason.UNSPECIFIED, RevocationReason.KEY_COMPROMISE)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a certificate names: read from a certificate, trusted only once ``TrustPolicy`` validated it."""

    code: str
    name: str
    role: Role
    serial: int


def identity_of(cert: x509.Certificate) -> Identity:
    def one(oid: x509.ObjectIdentifier, what: str) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        if len(values) != 1 or not isinstance(values[0].value, str):
            raise TrustError(f"certificate subject must carry exactly one {what}")
        return values[0].value

    try:
        role = Role(one(NameOID.ORGANIZATIONAL_UNIT_NAME, "role (OU)"))
    except ValueError as e:
        raise TrustError("certificate subject names an unknown role") from e
    return Identity(
        code=one(NameOID.USER_ID, "code (UID)"),
        name=one(NameOID.COMMON_NAME, "name (CN)"),
        role=role,
        serial=cert.serial_number,
    )


def _subject(code: str, name: str, role: Role) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
            x509.NameAttribute(NameOID.USER_ID, code),
        ]
    )


def _key_usage(usage: Usage | None, key: PublicKey) -> x509.KeyUsage:
    is_ca = usage is None
    sign = usage in (Usage.SIGNING, Usage.NODE)
    encrypt_rsa = usage is Usage.ENCRYPTION and isinstance(key, rsa.RSAPublicKey)
    agree_ec = usage is Usage.ENCRYPTION and isinstance(key, ec.EllipticCurvePublicKey)
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=usage is Usage.SIGNING,
        key_encipherment=encrypt_rsa,
        data_encipherment=False,
        key_agreement=agree_ec,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_root(
    key: PrivateKey, *, code: str, name: str, not_before: datetime, lifetime: timedelta, serial: int
) -> x509.Certificate:
    """A self-signed root certificate, the one trust anchor of the exchange."""
    subject = _subject(code, name, Role.ROOT)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(None, public), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    public: PublicKey,
    *,
    code: str,
    name: str,
    role: Role,
    usage: Usage,
    not_before: datetime,
    lifetime: timedelta,
    serial: int,
) -> x509.Certificate:
    """An end-entity certificate signed by the root, for one role and one usage."""
    if role is Role.ROOT:
        raise ConfigError("the root certificate is made with make_root, not issued")
    if (role is Role.NODE) != (usage is Usage.NODE):
        raise ConfigError(f"a {role} certificate cannot have the {usage} usage")
    if role is Role.NODE and not is_node_id(code):
        raise ConfigError(f"node id {code!r} must be one label of lower-case letters, digits and '-', like gd-hub")
    if role is Role.DEPARTMENT and not is_department_code(code):
        raise ConfigError(f"department code {code!r} must be dotted lower-case labels, like gd.gov.czt")
    not_after = min(not_before + lifetime, ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(code, name, role))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(usage, public), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if usage is Usage.NODE:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        ).add_extension(x509.SubjectAlternativeName([x509.DNSName(code)]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True, slots=True)
class Revocation:
    serial: int
    revoked_at: datetime
    reason: RevocationReason


def make_crl(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    revocations: list[Revocation],
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for r in revocations:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(r.serial)
            .revocation_date(r.revoked_at)
            .add_extension(x509.CRLReason(r.reason.flag), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca_key, hashes.SHA256())


__all__ = [
    "Identity",
    "Revocation",
    "RevocationReason",
    "Role",
    "Usage",
    "identity_of",
    "issue",
    "make_crl",
    "make_root",
]
