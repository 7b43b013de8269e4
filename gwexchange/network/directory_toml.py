"""The directory as the authority writes it by hand: TOML (``examples/network.toml``) compiled into a ``Directory``,
its certificates read through a ``read(path) -> bytes`` callable.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, TypeVar

from cryptography import x509

from gwexchange.codes import check_node_id
from gwexchange.crypto.certificates import Usage
from gwexchange.envelope.model import Classification
from gwexchange.envelope.times import parse_utc
from gwexchange.errors import ConfigError, GwxError
from gwexchange.network.directory import (
    DepartmentEntry,
    Directory,
    Link,
    NodeEntry,
    Reader,
    Zone,
    ZonePolicy,
    check_department_code,
    parse_endpoint,
)

_TOP_KEYS = frozenset(
    {"serial", "issued", "expires", "valid_days", "certificates", "policy", "node", "department", "link"}
)
_NODE_KEYS = frozenset({"id", "smtp", "zone", "certificate"})
_DEPARTMENT_KEYS = frozenset({"code", "name", "node", "signing_certificate", "encryption_certificate"})
_LINK_KEYS = frozenset({"nodes", "zone"})

E = TypeVar("E", Zone, Classification)


def compile_directory(toml_text: str, read: Reader, *, now: datetime) -> Directory:
    """The directory an authority wrote as TOML (the format of ``examples/network.toml``).

    ``read`` returns the bytes (PEM or DER) of a certificate file named relative to the TOML file. Without
    ``issued`` the directory is issued at ``now``; ``expires`` is a time or ``valid_days`` after ``issued``.
    """
    try:
        spec = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"the directory file is not valid TOML: {e}") from e
    _only_keys(spec, _TOP_KEYS, "the directory file")
    folder = spec.get("certificates", ".")
    if not isinstance(folder, str) or not folder:
        raise ConfigError('certificates must name the folder of issued certificates, e.g. "ca/issued"')

    def certificate(entry: Mapping[str, Any], key: str, holder: str, usage: Usage, place: str) -> x509.Certificate:
        name = entry.get(key, str(PurePosixPath(folder) / holder / f"{usage.value}.crt"))
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{place}: {key} must be a file name")
        return _load_certificate(name, read, place)

    issued = _toml_time(spec["issued"], "issued") if "issued" in spec else now.astimezone(UTC).replace(microsecond=0)
    expires = _toml_expires(spec, issued)

    policy_spec = spec.get("policy")
    if not isinstance(policy_spec, dict):
        raise ConfigError('the directory file needs a [policy] table: "内网" = "绝密" and so on for each zone')
    limits: dict[Zone, Classification] = {}
    for zone, limit in policy_spec.items():
        limits[_enum(Zone, zone, "a zone of the policy")] = _enum(Classification, limit, f"the 密级 of {zone}")

    nodes = []
    for entry in _tables(spec, "node"):
        _only_keys(entry, _NODE_KEYS, "a [[node]]")
        node_id = check_node_id(_string(entry, "id", "a [[node]]"), ConfigError)
        place = f"node {node_id}"
        host, port = parse_endpoint(_string(entry, "smtp", place), place)
        nodes.append(
            NodeEntry(
                node_id=node_id,
                smtp_host=host,
                smtp_port=port,
                zone=_enum(Zone, entry.get("zone"), f"the zone of {place}"),
                certificate=certificate(entry, "certificate", node_id, Usage.NODE, place),
            )
        )
    departments = []
    for entry in _tables(spec, "department"):
        _only_keys(entry, _DEPARTMENT_KEYS, "a [[department]]")
        code = check_department_code(_string(entry, "code", "a [[department]]"))
        place = f"department {code}"
        departments.append(
            DepartmentEntry(
                code=code,
                name=_string(entry, "name", place),
                home_node=_string(entry, "node", place),
                signing_certificate=certificate(entry, "signing_certificate", code, Usage.SIGNING, place),
                encryption_certificate=certificate(entry, "encryption_certificate", code, Usage.ENCRYPTION, place),
            )
        )
    links = []
    for entry in _tables(spec, "link"):
        _only_keys(entry, _LINK_KEYS, "a [[link]]")
        ends = entry.get("nodes")
        if not isinstance(ends, list) or len(ends) != 2 or not all(isinstance(e, str) for e in ends):
            raise ConfigError('a [[link]] names its two nodes: nodes = ["gd-hub", "gz-hub"]')
        links.append(Link(ends[0], ends[1], _enum(Zone, entry.get("zone"), f"the zone of link {ends[0]}–{ends[1]}")))

    serial = spec.get("serial")
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise ConfigError("the directory file needs serial = N, a whole number raised with every publication")
    return Directory(
        serial=serial,
        issued=issued,
        expires=expires,
        policy=ZonePolicy(limits),
        nodes=tuple(nodes),
        departments=tuple(departments),
        links=tuple(links),
    )


def _load_certificate(name: str, read: Reader, place: str) -> x509.Certificate:
    try:
        data = read(name)
    except GwxError:
        raise
    except OSError as e:
        raise ConfigError(f"{place}: cannot read the certificate {name}: {e.strerror or e}") from e
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            if data.lstrip().startswith(b"-----BEGIN"):
                return x509.load_pem_x509_certificate(data)
            return x509.load_der_x509_certificate(data)
    except (ValueError, Warning) as e:
        raise ConfigError(f"{place}: {name} is not an X.509 certificate") from e


def _only_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")


def _tables(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    tables = spec.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{key} must be written as [[{key}]] tables")
    return tables


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be given as a string")
    return value


def _enum(kind: type[E], value: object, what: str) -> E:
    choices = ", ".join(m.value for m in kind)
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be given, as one of {choices}")
    try:
        return kind(value)
    except ValueError as e:
        raise ConfigError(f"{what}: {value!r} is not one of {choices}") from e


def _toml_expires(spec: Mapping[str, Any], issued: datetime) -> datetime:
    if ("expires" in spec) == ("valid_days" in spec):
        raise ConfigError("give the directory either expires (a time) or valid_days (a number of days)")
    if "expires" in spec:
        return _toml_time(spec["expires"], "expires")
    days = spec["valid_days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= 3660:
        raise ConfigError("valid_days must be a whole number of days from 1 to 3660")
    try:
        return issued + timedelta(days=days)
    except OverflowError as e:
        raise ConfigError(f"issued plus valid_days lies beyond the year 9999: {e}") from e


def _toml_time(value: object, key: str) -> datetime:
    if isinstance(value, str):
        parsed = parse_utc(value)
        if parsed is None:
            raise ConfigError(f"{key} must be a time like 2026-11-20T08:00:00Z")
        return parsed
    if isinstance(value, datetime) and value.tzinfo is not None:
        if value.microsecond:
            raise ConfigError(f"{key} must be whole seconds")
        try:
            return value.astimezone(UTC)
        except OverflowError as e:  # 0001-01-01T00:00:00+14:00 is in no year UTC can write
            raise ConfigError(f"{key} is out of the range of times: {e}") from e
    if isinstance(value, datetime | date):
        raise ConfigError(f"{key} must be a time with its zone, like 2026-11-20T08:00:00Z")
    raise ConfigError(f"{key} must be a time like 2026-11-20T08:00:00Z")


__all__ = [
    "compile_directory",
]
