"""Private keys: generation and storage as PKCS#8, encrypted under a passphrase unless the caller says unsafe."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gwexchange.crypto.suite import PrivateKey
from gwexchange.errors import ConfigError

MIN_PASSPHRASE = 8


class KeyAlgorithm(StrEnum):
    EC_P256 = "ec-p256"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"


def generate_key(algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> PrivateKey:
    if algorithm is KeyAlgorithm.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    bits = {KeyAlgorithm.RSA_2048: 2048, KeyAlgorithm.RSA_3072: 3072}[algorithm]
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass(frozen=True, slots=True)
class UnsafeUnencrypted:
    """Stands for "store this private key in the clear". Only for tests and interop with tools that need it."""


Protection = bytes | UnsafeUnencrypted


def key_to_pem(key: PrivateKey, protection: Protection) -> bytes:
    """PKCS#8 PEM, encrypted with ``protection`` (a passphrase) unless it is ``UnsafeUnencrypted()``."""
    if isinstance(protection, UnsafeUnencrypted):
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    else:
        if len(protection) < MIN_PASSPHRASE:
            raise ConfigError(f"passphrase is too short: use at least {MIN_PASSPHRASE} characters")
        encryption = serialization.BestAvailableEncryption(protection)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def key_from_pem(pem: bytes, passphrase: bytes | None, *, source: str = "key") -> PrivateKey:
    """Load a PKCS#8 key; ``passphrase`` None only loads an unencrypted one."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as e:
        if passphrase is None:
            raise ConfigError(f"{source} is encrypted: give its passphrase") from e
        raise ConfigError(f"{source} is not encrypted, but a passphrase was given") from e
    except ValueError as e:
        raise ConfigError(f"cannot load {source}: wrong passphrase or not a PEM private key") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(f"{source} holds a {type(key).__name__}; only EC P-256 and RSA keys are used")
    return key


__all__ = [
    "MIN_PASSPHRASE",
    "KeyAlgorithm",
    "Protection",
    "UnsafeUnencrypted",
    "generate_key",
    "key_from_pem",
    "key_to_pem",
]
