"""The security centre's certificate authority, kept in a directory (the file-system adapter of the PKI).

Layout of an authority home::

    root.crt                 the root certificate: give it to every node and auditor
    root.key                 the root private key, PKCS#8 encrypted
    crl.pem                  the current CRL, signed by the root
    index.json               every certificate issued: serial, holder, usage, validity, revocation
    issued/<code>/<usage>.crt, <usage>.key   certificates and (encrypted) keys handed to their holders

Every write is atomic (``files.atomic_write``), so a crash leaves the old state or the new one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gwexchange.crypto import certificates as certs
from gwexchange.crypto.certificates import RevocationReason, Role, Usage
from gwexchange.crypto.keys import KeyAlgorithm, Protection, generate_key, key_from_pem, key_to_pem
from gwexchange.crypto.suite import PrivateKey
from gwexchange.errors import ConfigError
from gwexchange.files import atomic_write

ROOT_LIFETIME = timedelta(days=20 * 365)
CERT_LIFETIME = timedelta(days=5 * 365)
CRL_LIFETIME = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """One line of the index."""

    serial: str  # hex
    code: str
    name: str
    role: str
    usage: str
    not_after: str
    revoked_at: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class _Index:
    crl_number: int
    issued: list[IssuedCertificate]


@dataclass(frozen=True, slots=True)
class IssuedFiles:
    certificate: Path
    key: Path


class Authority:
    """A root CA in a directory. Open one with ``Authority.create`` or ``Authority.open``."""

    def __init__(self, home: Path, key: PrivateKey, root: x509.Certificate) -> None:
        self.home = home
        self._key = key
        self.root = root

    @classmethod
    def create(
        cls,
        home: Path,
        *,
        code: str,
        name: str,
        protection: Protection,
        now: datetime,
        algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    ) -> Authority:
        if (home / "root.crt").exists():
            raise ConfigError(f"{home} already holds a root CA; refusing to overwrite it")
        home.mkdir(parents=True, exist_ok=True)
        key = generate_key(algorithm)
        root = certs.make_root(
            key, code=code, name=name, not_before=now, lifetime=ROOT_LIFETIME, serial=x509.random_serial_number()
        )
        atomic_write(home / "root.key", key_to_pem(key, protection))
        atomic_write(home / "root.crt", root.public_bytes(serialization.Encoding.PEM))
        authority = cls(home, key, root)
        authority._save_index(_Index(crl_number=0, issued=[]))
        authority.publish_crl(now=now)
        return authority

    @classmethod
    def open(cls, home: Path, passphrase: bytes | None) -> Authority:
        try:
            key_pem = (home / "root.key").read_bytes()
            root = x509.load_pem_x509_certificate((home / "root.crt").read_bytes())
        except FileNotFoundError as e:
            raise ConfigError(
                f"{home} is not a CA home (no root.key / root.crt); create one with 'gwx pki init'"
            ) from e
        return cls(home, key_from_pem(key_pem, passphrase, source=str(home / "root.key")), root)

    def issue(
        self,
        *,
        code: str,
        name: str,
        role: Role,
        usage: Usage,
        protection: Protection,
        now: datetime,
        algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
        lifetime: timedelta = CERT_LIFETIME,
    ) -> IssuedFiles:
        """Generate a key for ``code``, certify it for ``usage``, and store both under ``issued/<code>/``."""
        key = generate_key(algorithm)
        cert = certs.issue(
            self._key,
            self.root,
            key.public_key(),
            code=code,
            name=name,
            role=role,
            usage=usage,
            not_before=now,
            lifetime=lifetime,
            serial=x509.random_serial_number(),
        )
        folder = self.home / "issued" / code
        folder.mkdir(parents=True, exist_ok=True)
        files = IssuedFiles(certificate=folder / f"{usage.value}.crt", key=folder / f"{usage.value}.key")
        atomic_write(files.key, key_to_pem(key, protection))
        atomic_write(files.certificate, cert.public_bytes(serialization.Encoding.PEM))
        index = self._load_index()
        entry = IssuedCertificate(
            serial=f"{cert.serial_number:x}",
            code=code,
            name=name,
            role=role.value,
            usage=usage.value,
            not_after=cert.not_valid_after_utc.isoformat(),
        )
        index.issued.append(entry)
        self._save_index(index)
        return files

    @staticmethod
    def read_issued(home: Path) -> list[IssuedCertificate]:
        """The index of an authority home; reading it needs no key."""
        return list(_load_index(home).issued)

    def revoke(self, serial: str, *, reason: RevocationReason, now: datetime) -> IssuedCertificate:
        """Mark a certificate revoked and publish a new CRL at once."""
        index = self._load_index()
        wanted = serial.lower().removeprefix("0x").lstrip("0")
        for i, entry in enumerate(index.issued):
            if entry.serial == wanted:
                if entry.revoked_at is not None:
                    raise ConfigError(f"certificate {serial} was already revoked on {entry.revoked_at}")
                index.issued[i] = replace(entry, revoked_at=now.isoformat(), reason=reason.value)
                self._save_index(index)
                self.publish_crl(now=now)
                return index.issued[i]
        raise ConfigError(f"no certificate with serial {serial} was issued here ('gwx pki list' shows them)")

    def publish_crl(self, *, now: datetime, lifetime: timedelta = CRL_LIFETIME) -> Path:
        index = self._load_index()
        index.crl_number += 1
        revocations = [
            certs.Revocation(
                serial=int(e.serial, 16),
                revoked_at=datetime.fromisoformat(e.revoked_at),
                reason=RevocationReason(e.reason or RevocationReason.UNSPECIFIED.value),
            )
            for e in index.issued
            if e.revoked_at is not None
        ]
        crl = certs.make_crl(
            self._key, self.root, revocations, number=index.crl_number, this_update=now, next_update=now + lifetime
        )
        path = self.home / "crl.pem"
        atomic_write(path, crl.public_bytes(serialization.Encoding.PEM))
        self._save_index(index)
        return path

    def _load_index(self) -> _Index:
        return _load_index(self.home)

    def _save_index(self, index: _Index) -> None:
        raw = {"crl_number": index.crl_number, "issued": [asdict(e) for e in index.issued]}
        atomic_write(self.home / "index.json", json.dumps(raw, ensure_ascii=False, indent=2).encode("utf-8"))


def _load_index(home: Path) -> _Index:
    raw = json.loads((home / "index.json").read_text(encoding="utf-8"))
    return _Index(crl_number=int(raw["crl_number"]), issued=[IssuedCertificate(**e) for e in raw["issued"]])


__all__ = [
    "CERT_LIFETIME",
    "CRL_LIFETIME",
    "ROOT_LIFETIME",
    "Authority",
    "IssuedCertificate",
    "IssuedFiles",
]
