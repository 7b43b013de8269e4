"""Key folders as ``gwx pki issue`` writes them: ``<usage>.key`` (its passphrase from the environment) and
``<usage>.crt``."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509

from gwexchange.crypto.keys import key_from_pem
from gwexchange.crypto.suite import PrivateKey
from gwexchange.errors import ConfigError
from gwexchange.files import read_file

KEY_PASSPHRASE_ENV = "GWX_KEY_PASSPHRASE"  # noqa: S105  # the name of the variable, not a passphrase


def load_certificate(path: Path, what: str = "the certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_file(path, what))
    except ValueError as e:
        raise ConfigError(f"{path} is not a PEM certificate") from e


def load_keypair(
    folder: Path, usage: str, passphrase_env: str = KEY_PASSPHRASE_ENV
) -> tuple[PrivateKey, x509.Certificate]:
    """``<usage>.key`` and ``<usage>.crt`` from a holder's folder, laid out as ``gwx pki issue`` writes them.

    The key's passphrase comes from ``passphrase_env``; an unencrypted key loads only when that variable is unset.
    """
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a key folder (it should hold {usage}.key and {usage}.crt)")
    pem = read_file(folder / f"{usage}.key", "the key")
    secret = os.environ.get(passphrase_env)
    key = key_from_pem(pem, secret.encode("utf-8") if secret else None, source=str(folder / f"{usage}.key"))
    return key, load_certificate(folder / f"{usage}.crt")


__all__ = [
    "KEY_PASSPHRASE_ENV",
    "load_certificate",
    "load_keypair",
]
