"""What every gwx command shares: options, passphrases, the trust policy, dates and JSON output."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509

from gwexchange.crypto.keys import Protection, UnsafeUnencrypted
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.errors import ConfigError, InputError

CA_PASSPHRASE_ENV = "GWX_CA_PASSPHRASE"

HomeOption = Annotated[Path, typer.Option("--home", help="CA home directory.", envvar="GWX_PKI_HOME")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
RootOption = Annotated[Path, typer.Option("--root", help="Root certificate (root.crt) to trust.", envvar="GWX_ROOT")]
CrlOption = Annotated[
    list[Path] | None, typer.Option("--crl", help="CRL signed by the root (repeatable).", envvar="GWX_CRL")
]


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def read_passphrase(env: str, file: Path | None, what: str) -> bytes:
    """A passphrase from a file (first line) or an environment variable; never from the command line."""
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").splitlines()[0].encode("utf-8")
        except (OSError, IndexError) as e:
            raise ConfigError(f"cannot read the passphrase for {what} from {file}") from e
    value = os.environ.get(env)
    if not value:
        raise ConfigError(f"no passphrase for {what}: set ${env} or give --passphrase-file")
    return value.encode("utf-8")


def key_protection(env: str, file: Path | None, unsafe: bool, what: str) -> Protection:
    return UnsafeUnencrypted() if unsafe else read_passphrase(env, file, what)


def trust_policy(root: Path, crls: list[Path] | None, unsafe_no_revocation: bool) -> TrustPolicy:
    try:
        root_cert = x509.load_pem_x509_certificate(root.read_bytes())
        loaded = tuple(x509.load_pem_x509_crl(p.read_bytes()) for p in crls or [])
    except FileNotFoundError as e:
        raise ConfigError(f"{e.filename} does not exist") from e
    except ValueError as e:
        raise ConfigError(f"cannot read the root certificate or CRL: {e}") from e
    return TrustPolicy(root_cert, loaded, unsafe_skip_revocation=unsafe_no_revocation)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{path} does not exist") from e


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


KeysOption = Annotated[
    Path, typer.Option("--keys", help="The department's key folder (signing.* and encryption.*).", envvar="GWX_KEYS")
]
NodeKeysOption = Annotated[
    Path, typer.Option("--node-keys", help="The node's key folder (node.key, node.crt).", envvar="GWX_NODE_KEYS")
]


_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, option: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d`` → a timedelta; anything else is a one-line error naming the option."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise InputError(f"{option} {text!r} is not a duration such as 90s, 30m, 12h or 7d")
    return timedelta(**{_UNITS[m[2]]: int(m[1])})


__all__ = [
    "CA_PASSPHRASE_ENV",
    "CrlOption",
    "HomeOption",
    "JsonOption",
    "KeysOption",
    "NodeKeysOption",
    "RootOption",
    "emit_json",
    "key_protection",
    "now",
    "parse_duration",
    "read",
    "read_passphrase",
    "to_json",
    "trust_policy",
]
