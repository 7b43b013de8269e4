"""Algorithm suites: which signature, digest, canonicalization and encryption algorithms go together.

Callers name a suite, never an algorithm, so a second suite — the national SM2/SM3/SM4 algorithms — can be added
beside ``INTERNATIONAL`` without touching them. A suite also decides which key types it can sign with.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from gwexchange.crypto.algorithms import (
    Canonicalization,
    ContentEncryption,
    Digest,
    KeyTransport,
    SignatureMethod,
)
from gwexchange.errors import ConfigError, SignatureError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

MIN_RSA_BITS = 2048
_P256_BYTES = 32


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    canonicalization: Canonicalization
    digest: Digest
    signature_methods: frozenset[SignatureMethod]
    content_encryption: ContentEncryption
    key_transports: frozenset[KeyTransport]

    def signature_method_for(self, key: PrivateKey | PublicKey) -> SignatureMethod:
        """The signature method this suite uses with ``key``; refuses keys the suite does not allow."""
        if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ConfigError(f"EC key on curve {key.curve.name} is not allowed; use P-256")
            method = SignatureMethod.ECDSA_SHA256
        elif isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise ConfigError(f"RSA key of {key.key_size} bits is too short; use 2048 or more")
            method = SignatureMethod.RSA_SHA256
        else:
            raise ConfigError(f"key type {type(key).__name__} is not supported")
        if method not in self.signature_methods:
            raise ConfigError(f"suite {self.name} does not sign with {method.name}")
        return method

    def digest_bytes(self, data: bytes) -> bytes:
        h = hashes.Hash(hashes.SHA256())
        h.update(data)
        return h.finalize()

    def sign(self, key: PrivateKey, data: bytes) -> tuple[SignatureMethod, bytes]:
        """The method and XML-DSig SignatureValue: raw r‖s for ECDSA (RFC 4051), PKCS#1 v1.5 for RSA-SHA256."""
        method = self.signature_method_for(key)
        if method is SignatureMethod.ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return method, r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
        if method is SignatureMethod.RSA_SHA256 and isinstance(key, rsa.RSAPrivateKey):
            return method, key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        raise ConfigError(f"{method.name} cannot sign with a {type(key).__name__}")

    def verify(self, key: PublicKey, method: SignatureMethod, signature: bytes, data: bytes) -> None:
        """Raise ``SignatureError`` unless ``signature`` over ``data`` verifies with ``key`` under ``method``."""
        if method not in self.signature_methods:
            raise SignatureError(f"signature method {method} is not allowed in suite {self.name}")
        try:
            if method is SignatureMethod.ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePublicKey):
                if len(signature) != 2 * _P256_BYTES:
                    raise SignatureError("ECDSA signature value has the wrong length")
                r = int.from_bytes(signature[:_P256_BYTES], "big")
                s = int.from_bytes(signature[_P256_BYTES:], "big")
                key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
            elif method is SignatureMethod.RSA_SHA256 and isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                raise SignatureError(f"signature method {method.name} does not match the certificate's key type")
        except InvalidSignature as e:
            raise SignatureError("signature value does not verify") from e


INTERNATIONAL = Suite(
    name="international",
    canonicalization=Canonicalization.EXCLUSIVE_C14N,
    digest=Digest.SHA256,
    signature_methods=frozenset({SignatureMethod.ECDSA_SHA256, SignatureMethod.RSA_SHA256}),
    content_encryption=ContentEncryption.AES256_GCM,
    key_transports=frozenset({KeyTransport.RSA_OAEP, KeyTransport.ECDH_ES}),
)


__all__ = [
    "INTERNATIONAL",
    "MIN_RSA_BITS",
    "PrivateKey",
    "PublicKey",
    "Suite",
]
