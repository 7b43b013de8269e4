"""Our W3C XML Encryption 1.1 profile: AES-256-GCM content, one wrapped content key per recipient department.

Content: ``xenc11#aes256-gcm``; the cipher octets are nonce (12) ‖ ciphertext ‖ tag (16), as the spec lays them out.
Key transport, chosen by the recipient's certificate:

- RSA: ``xenc11#rsa-oaep`` with SHA-256 and MGF1-SHA256;
- EC P-256: ``xenc11#ECDH-ES`` with an ephemeral key, ConcatKDF (SHA-256; AlgorithmID is the key-wrap URI,
  PartyUInfo and PartyVInfo empty) and ``xmlenc#kw-aes256``. The originator's ephemeral public key travels
  inline (``dsig11:ECKeyValue``) and is also named by ``KeyName``, so libxmlsec1, which only looks keys up by
  name, can be given it.

Every EncryptedKey names its department in ``Recipient`` and in a ``KeyName``. Anything else — CBC, PKCS#1 v1.5,
other digests or curves, a malformed element, a wrong key, a failed tag — ends in the same ``DecryptionError``.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from lxml import etree

from gwexchange.crypto.algorithms import (
    ContentEncryption,
    Digest,
    KeyDerivation,
    KeyTransport,
    KeyWrap,
    MaskGeneration,
)
from gwexchange.crypto.suite import PrivateKey, PublicKey
from gwexchange.errors import ConfigError, DecryptionError

XENC_NS = "http://www.w3.org/2001/04/xmlenc#"
XENC11_NS = "http://www.w3.org/2009/xmlenc11#"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"
_E = "{" + XENC_NS + "}"
_E11 = "{" + XENC11_NS + "}"
_DS = "{" + DSIG_NS + "}"
_DS11 = "{" + DSIG11_NS + "}"
NSMAP = {"xenc": XENC_NS, "xenc11": XENC11_NS, "ds": DSIG_NS, "dsig11": DSIG11_NS}

CONTENT_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_P256_OID_URI = "urn:oid:1.2.840.10045.3.1.7"
# ConcatKDF parameters are hexBinary bit strings whose first octet counts padding bits (always 0 here).
_EMPTY_BITSTRING = "00"
_KDF_OTHER_INFO = KeyWrap.AES256_KW.value.encode("ascii")  # NIST SP 800-56A: AlgorithmID names what the key is for
_ALGORITHM_ID = "00" + _KDF_OTHER_INFO.hex()

Random = Callable[[int], bytes]


def new_content_key(random: Random = os.urandom) -> bytes:
    return random(CONTENT_KEY_BYTES)


# --- content encryption ----------------------------------------------------------------------------------------


def gcm_encrypt(key: bytes, plaintext: bytes, random: Random = os.urandom) -> bytes:
    """nonce ‖ ciphertext ‖ tag, with a fresh random nonce."""
    nonce = random(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None)


def gcm_decrypt(key: bytes, octets: bytes) -> bytes:
    if len(octets) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError()
    try:
        return AESGCM(key).decrypt(octets[:NONCE_BYTES], octets[NONCE_BYTES:], None)
    except (InvalidTag, ValueError) as e:
        raise DecryptionError() from e


class GcmStreamEncryptor:
    """AES-256-GCM over a stream: ``header`` (the nonce) first, then each ``update``, then ``finalize`` (the tag)."""

    def __init__(self, key: bytes, random: Random = os.urandom) -> None:
        self.header = random(NONCE_BYTES)
        self._encryptor = Cipher(algorithms.AES(key), modes.GCM(self.header)).encryptor()

    def update(self, chunk: bytes) -> bytes:
        return self._encryptor.update(chunk)

    def finalize(self) -> bytes:
        return self._encryptor.finalize() + self._encryptor.tag


class GcmStreamDecryptor:
    """The inverse of ``GcmStreamEncryptor``. Plaintext from ``update`` is unauthenticated until ``finalize``
    returns: callers write it somewhere private and publish it only then."""

    def __init__(self, key: bytes, nonce: bytes, tag: bytes) -> None:
        if len(nonce) != NONCE_BYTES or len(tag) != TAG_BYTES:
            raise DecryptionError()
        self._decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()

    def update(self, chunk: bytes) -> bytes:
        return self._decryptor.update(chunk)

    def finalize(self) -> None:
        try:
            self._decryptor.finalize()
        except InvalidTag as e:
            raise DecryptionError() from e


# --- XML elements ----------------------------------------------------------------------------------------------


def encrypted_data(octets: bytes, encrypted_keys: list[etree._Element], *, mime_type: str) -> etree._Element:
    """An ``xenc:EncryptedData`` holding ``octets`` (from ``gcm_encrypt``) and the recipients' wrapped keys."""
    data = etree.Element(_E + "EncryptedData", nsmap=NSMAP, MimeType=mime_type)
    etree.SubElement(data, _E + "EncryptionMethod", Algorithm=ContentEncryption.AES256_GCM.value)
    key_info = etree.SubElement(data, _DS + "KeyInfo")
    for encrypted_key in encrypted_keys:
        key_info.append(encrypted_key)
    cipher_data = etree.SubElement(data, _E + "CipherData")
    etree.SubElement(cipher_data, _E + "CipherValue").text = _b64(octets)
    return data


def encrypted_key_for(
    content_key: bytes, certificate_key: PublicKey, *, recipient: str, random: Random = os.urandom
) -> etree._Element:
    """The content key wrapped for one recipient department, by RSA-OAEP or ECDH-ES as its key calls for."""
    encrypted_key = etree.Element(_E + "EncryptedKey", nsmap=NSMAP, Recipient=recipient)
    if isinstance(certificate_key, rsa.RSAPublicKey):
        method = etree.SubElement(encrypted_key, _E + "EncryptionMethod", Algorithm=KeyTransport.RSA_OAEP.value)
        etree.SubElement(method, _DS + "DigestMethod", Algorithm=Digest.SHA256.value)
        etree.SubElement(method, _E11 + "MGF", Algorithm=MaskGeneration.MGF1_SHA256.value)
        key_info = etree.SubElement(encrypted_key, _DS + "KeyInfo")
        etree.SubElement(key_info, _DS + "KeyName").text = recipient
        wrapped = certificate_key.encrypt(content_key, _OAEP)
    elif isinstance(certificate_key, ec.EllipticCurvePublicKey) and isinstance(certificate_key.curve, ec.SECP256R1):
        etree.SubElement(encrypted_key, _E + "EncryptionMethod", Algorithm=KeyWrap.AES256_KW.value)
        key_info = etree.SubElement(encrypted_key, _DS + "KeyInfo")
        ephemeral = _ephemeral_key(random)
        kek = _concat_kdf(ephemeral.exchange(ec.ECDH(), certificate_key))
        key_info.append(_agreement_method(ephemeral.public_key(), recipient))
        wrapped = keywrap.aes_key_wrap(kek, content_key)
    else:
        raise ConfigError(f"the encryption certificate of {recipient} has a key type gwexchange cannot encrypt to")
    cipher_data = etree.SubElement(encrypted_key, _E + "CipherData")
    etree.SubElement(cipher_data, _E + "CipherValue").text = _b64(wrapped)
    return encrypted_key


def content_key_from(encrypted_key: etree._Element, key: PrivateKey) -> bytes:
    """Unwrap the content key with the recipient's private key; any failure is the one ``DecryptionError``."""
    try:
        return _unwrap(encrypted_key, key)
    except DecryptionError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, binascii.Error, keywrap.InvalidUnwrap) as e:
        raise DecryptionError() from e


def cipher_octets(data: etree._Element) -> bytes:
    """The octets of an EncryptedData in our profile (AES-256-GCM, inline CipherValue)."""
    method = data.find(_E + "EncryptionMethod")
    if method is None or method.get("Algorithm") != ContentEncryption.AES256_GCM.value or len(method):
        raise DecryptionError()
    value = data.find(f"{_E}CipherData/{_E}CipherValue")
    if value is None:
        raise DecryptionError()
    return _unb64(value.text)


def encrypted_keys(data: etree._Element) -> list[etree._Element]:
    return list(data.iterfind(f"{_DS}KeyInfo/{_E}EncryptedKey"))


# --- internals -------------------------------------------------------------------------------------------------

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _unwrap(encrypted_key: etree._Element, key: PrivateKey) -> bytes:
    method = encrypted_key.find(_E + "EncryptionMethod")
    cipher_value = encrypted_key.find(f"{_E}CipherData/{_E}CipherValue")
    if method is None or cipher_value is None:
        raise DecryptionError()
    wrapped = _unb64(cipher_value.text)
    algorithm = method.get("Algorithm")
    if algorithm == KeyTransport.RSA_OAEP.value and isinstance(key, rsa.RSAPrivateKey):
        parameters = [(child.tag, child.get("Algorithm")) for child in method]
        if parameters != [
            (_DS + "DigestMethod", Digest.SHA256.value),
            (_E11 + "MGF", MaskGeneration.MGF1_SHA256.value),
        ]:
            raise DecryptionError()
        content_key = key.decrypt(wrapped, _OAEP)
    elif algorithm == KeyWrap.AES256_KW.value and isinstance(key, ec.EllipticCurvePrivateKey) and not len(method):
        agreement = encrypted_key.find(f"{_DS}KeyInfo/{_E}AgreementMethod")
        if agreement is None:
            raise DecryptionError()
        originator = _originator_key(agreement)
        content_key = keywrap.aes_key_unwrap(_concat_kdf(key.exchange(ec.ECDH(), originator)), wrapped)
    else:
        raise DecryptionError()
    if len(content_key) != CONTENT_KEY_BYTES:
        raise DecryptionError()
    return content_key


def _ephemeral_key(random: Random) -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key from the injected randomness (so tests can be deterministic)."""
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    scalar = int.from_bytes(random(40), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _concat_kdf(shared_secret: bytes) -> bytes:
    # OtherInfo = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo, each without its padding octet; the parties are empty.
    return ConcatKDFHash(algorithm=hashes.SHA256(), length=32, otherinfo=_KDF_OTHER_INFO).derive(shared_secret)


def _agreement_method(originator: ec.EllipticCurvePublicKey, recipient: str) -> etree._Element:
    agreement = etree.Element(_E + "AgreementMethod", Algorithm=KeyTransport.ECDH_ES.value)
    derivation = etree.SubElement(agreement, _E11 + "KeyDerivationMethod", Algorithm=KeyDerivation.CONCAT_KDF.value)
    params = etree.SubElement(
        derivation,
        _E11 + "ConcatKDFParams",
        AlgorithmID=_ALGORITHM_ID,
        PartyUInfo=_EMPTY_BITSTRING,
        PartyVInfo=_EMPTY_BITSTRING,
    )
    etree.SubElement(params, _DS + "DigestMethod", Algorithm=Digest.SHA256.value)
    originator_info = etree.SubElement(agreement, _E + "OriginatorKeyInfo")
    etree.SubElement(originator_info, _DS + "KeyName").text = f"originator:{recipient}"
    key_value = etree.SubElement(originator_info, _DS + "KeyValue")
    ec_value = etree.SubElement(key_value, _DS11 + "ECKeyValue")
    etree.SubElement(ec_value, _DS11 + "NamedCurve", URI=_P256_OID_URI)
    point = originator.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    etree.SubElement(ec_value, _DS11 + "PublicKey").text = _b64(point)
    recipient_info = etree.SubElement(agreement, _E + "RecipientKeyInfo")
    etree.SubElement(recipient_info, _DS + "KeyName").text = recipient
    return agreement


def _originator_key(agreement: etree._Element) -> ec.EllipticCurvePublicKey:
    if agreement.get("Algorithm") != KeyTransport.ECDH_ES.value:
        raise DecryptionError()
    params = agreement.find(f"{_E11}KeyDerivationMethod/{_E11}ConcatKDFParams")
    derivation = agreement.find(_E11 + "KeyDerivationMethod")
    if derivation is None or derivation.get("Algorithm") != KeyDerivation.CONCAT_KDF.value or params is None:
        raise DecryptionError()
    expected = {"AlgorithmID": _ALGORITHM_ID, "PartyUInfo": _EMPTY_BITSTRING, "PartyVInfo": _EMPTY_BITSTRING}
    if {str(k): str(v) for k, v in params.attrib.items()} != expected:
        raise DecryptionError()
    digest = params.find(_DS + "DigestMethod")
    if digest is None or digest.get("Algorithm") != Digest.SHA256.value:
        raise DecryptionError()
    curve = agreement.find(f"{_E}OriginatorKeyInfo/{_DS}KeyValue/{_DS11}ECKeyValue/{_DS11}NamedCurve")
    point = agreement.find(f"{_E}OriginatorKeyInfo/{_DS}KeyValue/{_DS11}ECKeyValue/{_DS11}PublicKey")
    if curve is None or curve.get("URI") != _P256_OID_URI or point is None:
        raise DecryptionError()
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(point.text))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except ValueError as e:  # binascii.Error, or non-ASCII characters
        raise DecryptionError() from e


__all__ = [
    "CONTENT_KEY_BYTES",
    "DSIG11_NS",
    "DSIG_NS",
    "NONCE_BYTES",
    "NSMAP",
    "TAG_BYTES",
    "XENC11_NS",
    "XENC_NS",
    "GcmStreamDecryptor",
    "GcmStreamEncryptor",
    "Random",
    "cipher_octets",
    "content_key_from",
    "encrypted_data",
    "encrypted_key_for",
    "encrypted_keys",
    "gcm_decrypt",
    "gcm_encrypt",
    "new_content_key",
]
