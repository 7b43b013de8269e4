"""Algorithms as enums of their W3C URIs. Anything not listed here is refused, by construction."""

from __future__ import annotations

from enum import StrEnum


class Canonicalization(StrEnum):
    EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


class Transform(StrEnum):
    ENVELOPED_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
    EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


class Digest(StrEnum):
    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


class SignatureMethod(StrEnum):
    ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


class ContentEncryption(StrEnum):
    AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"


class KeyTransport(StrEnum):
    RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
    ECDH_ES = "http://www.w3.org/2009/xmlenc11#ECDH-ES"


class KeyWrap(StrEnum):
    AES256_KW = "http://www.w3.org/2001/04/xmlenc#kw-aes256"


class KeyDerivation(StrEnum):
    CONCAT_KDF = "http://www.w3.org/2009/xmlenc11#ConcatKDF"


class MaskGeneration(StrEnum):
    MGF1_SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"


__all__ = [
    "Canonicalization",
    "ContentEncryption",
    "Digest",
    "KeyDerivation",
    "KeyTransport",
    "KeyWrap",
    "MaskGeneration",
    "SignatureMethod",
    "Transform",
]
