"""The directory (交换目录) the root authority publishes, as immutable, self-checking values — and its XML form.

A ``Directory`` names, under a version ``serial`` and a validity from ``issued`` to ``expires``:

* the **zone policy** — the highest 密级 that each zone (内网, 专网, 外网) may carry;
* the **nodes** — id, SMTP endpoint (host:port), zone and node certificate;
* the **departments** — code, name, home node, signing and encryption certificates;
* the **links** between nodes, each in one zone.

A ``Directory`` that exists is a consistent one: ids are unique, links and home nodes name listed nodes, the policy
covers every zone, and every certificate names its holder (``identity_of``: UID = code or node id) with the role
and key usage of its place. Whether the certificates chain to the root is the trust policy's question, asked by
``check_certificates``. Everything here is pure: the authority writes the directory by hand as TOML
(``examples/network.toml``), ``compile_directory`` reads it through a ``read(path) -> bytes`` callable, and the
XML form travels as bytes.

Who signs the directory
    The root key only certifies (keyCertSign, cRLSign) and ``TrustPolicy.validate`` never accepts the root
    certificate as a signer, so the security centre signs directories with a department-style signing certificate
    issued to its *own* code — the root certificate's UID, e.g. ``gwx pki issue --code gd.gov.ca --name …
    --role department``. No role or usage is added to the PKI. ``verify_directory`` requires the signer's code to
    equal ``authority_code`` (``authority_code_of(root)``): the CA issues certificates under its own code to
    nobody but itself, so no department can publish a directory. The signer's certificate is validated at the
    verifier's clock ``now``, not at ``issued``: a directory is live data, and once its signing key is revoked or
    expired no directory it signed is taken any more.

Which directory a node takes (``verify_directory`` with the one it ``held``)
    Refused: an unsigned one, a bad signature, a signer other than the authority, one not yet valid (``issued``
    later than ``now`` plus five minutes of clock skew), an expired one (``now`` after ``expires``), an older
    serial (rollback), and the held serial with other content (two directories under one serial: the authority
    must raise the serial). The held serial with the *same* content — a re-delivery, even re-signed — is accepted
    as the same directory (``VerifiedDirectory.is_update`` is False: keep the one held). Only a higher serial is an
    update.

Errors: inconsistent content is a ``ConfigError``; a missing or broken signature a ``SignatureError``; the wrong
signer, a stale or future directory and a rollback are each a ``TrustError``, as a stale CRL is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gwexchange import xmlsafe
from gwexchange.codes import check_node_id, is_department_code
from gwexchange.crypto.certificates import Identity, Role, Usage, identity_of
from gwexchange.crypto.trust import TrustPolicy, ValidatedCertificate
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, Signer, sign_enveloped, verify_enveloped
from gwexchange.envelope import schema
from gwexchange.envelope.model import Classification
from gwexchange.envelope.times import format_utc, parse_utc
from gwexchange.errors import ConfigError, GwxError, SignatureError, TrustError

DIRECTORY_NS = "urn:gwexchange:directory:1"
_Q = "{" + DIRECTORY_NS + "}"
MAX_DIRECTORY_BYTES = 16 * 1024 * 1024
MAX_SERIAL = 2**63 - 1
MAX_NAME = 200
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a directory's ``issued`` may lie on the verifier's clock."""

# The same forms as the envelope schema's DepartmentCodeType and NodeIdType: department codes have dots, node ids
# have none, so the two can never be confused.
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ENDPOINT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):(?P<port>[0-9]{1,5})")
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

Reader = Callable[[str], bytes]
E = TypeVar("E", "Zone", Classification)


class Zone(StrEnum):
    """The three networks (三网) every node and link belongs to."""

    INTERNAL = "内网"  # internal network
    PRIVATE = "专网"  # government private network
    PUBLIC = "外网"  # public network


# --- the values ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZonePolicy:
    """The highest 密级 each zone may carry; every zone has a line."""

    limits: Mapping[Zone, Classification]

    def __post_init__(self) -> None:
        if not isinstance(self.limits, Mapping):
            raise ConfigError("the zone policy must map each zone to a 密级")
        for zone, limit in self.limits.items():
            if not isinstance(zone, Zone):
                raise ConfigError(f"the zone policy names an unknown zone {zone!r} (zones: 内网, 专网, 外网)")
            if not isinstance(limit, Classification):
                raise ConfigError(f"the zone policy gives {zone} the unknown 密级 {limit!r}")
        missing = [z.value for z in Zone if z not in self.limits]
        if missing:
            raise ConfigError(f"the zone policy must give the highest 密级 of each zone; missing: {', '.join(missing)}")
        object.__setattr__(self, "limits", MappingProxyType({z: self.limits[z] for z in Zone}))

    def __hash__(self) -> int:  # the read-only mapping is not hashable itself
        return hash(tuple(self.limits.items()))

    def limit(self, zone: Zone) -> Classification:
        return self.limits[zone]

    def allows(self, zone: Zone, classification: Classification) -> bool:
        """May ``zone`` carry a document of ``classification``?"""
        return classification.rank <= self.limits[zone].rank


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """An exchange node: where its SMTP listener is, which zone it sits in, and its node certificate."""

    node_id: str
    smtp_host: str
    smtp_port: int
    zone: Zone
    certificate: x509.Certificate

    def __post_init__(self) -> None:
        check_node_id(self.node_id, ConfigError)
        _check_host(self.smtp_host, self.node_id)
        if isinstance(self.smtp_port, bool) or not isinstance(self.smtp_port, int) or not 0 < self.smtp_port < 65536:
            raise ConfigError(f"node {self.node_id}: SMTP port {self.smtp_port!r} is not a port number (1-65535)")
        _check_zone(self.zone, f"node {self.node_id}")
        _check_certificate(self.certificate, code=self.node_id, usage=Usage.NODE, place=f"node {self.node_id}")

    @property
    def smtp_endpoint(self) -> str:
        """``host:port``, an IPv6 address in brackets."""
        host = f"[{self.smtp_host}]" if ":" in self.smtp_host else self.smtp_host
        return f"{host}:{self.smtp_port}"

    @property
    def name(self) -> str:
        """The node's name, as its certificate gives it (CN)."""
        return identity_of(self.certificate).name


@dataclass(frozen=True, slots=True)
class DepartmentEntry:
    """A department: its code and name, the node that receives for it, and its two certificates."""

    code: str
    name: str
    home_node: str
    signing_certificate: x509.Certificate
    encryption_certificate: x509.Certificate

    def __post_init__(self) -> None:
        check_department_code(self.code)
        if (
            not isinstance(self.name, str)
            or not self.name
            or self.name != self.name.strip()
            or len(self.name) > MAX_NAME
            or _FORBIDDEN_CHARS.search(self.name)
        ):
            raise ConfigError(f"department {self.code}: the name must be one line of 1 to {MAX_NAME} characters")
        check_node_id(self.home_node, ConfigError)
        _check_certificate(
            self.signing_certificate, code=self.code, usage=Usage.SIGNING, place=f"department {self.code} (signing)"
        )
        _check_certificate(
            self.encryption_certificate,
            code=self.code,
            usage=Usage.ENCRYPTION,
            place=f"department {self.code} (encryption)",
        )


@dataclass(frozen=True, slots=True)
class Link:
    """A link between two nodes, in one zone. Links are undirected: ``a`` is always the smaller node id."""

    a: str
    b: str
    zone: Zone

    def __post_init__(self) -> None:
        check_node_id(self.a, ConfigError)
        check_node_id(self.b, ConfigError)
        if self.a == self.b:
            raise ConfigError(f"a link joins two different nodes, not {self.a} with itself")
        _check_zone(self.zone, f"link {self.a}–{self.b}")
        if self.b < self.a:
            a, b = self.b, self.a
            object.__setattr__(self, "a", a)
            object.__setattr__(self, "b", b)

    @property
    def nodes(self) -> tuple[str, str]:
        return self.a, self.b

    def other(self, node_id: str) -> str:
        """The node at the other end from ``node_id``."""
        if node_id == self.a:
            return self.b
        if node_id == self.b:
            return self.a
        raise ConfigError(f"link {self.a}–{self.b} does not touch node {node_id}")


@dataclass(frozen=True, slots=True)
class Directory:
    """A whole, consistent directory. Entries keep the order the authority wrote them in."""

    serial: int
    issued: datetime
    expires: datetime
    policy: ZonePolicy
    nodes: tuple[NodeEntry, ...]
    departments: tuple[DepartmentEntry, ...]
    links: tuple[Link, ...]

    _nodes: Mapping[str, NodeEntry] = field(init=False, repr=False, compare=False)
    _departments: Mapping[str, DepartmentEntry] = field(init=False, repr=False, compare=False)
    _adjacency: Mapping[str, tuple[tuple[str, Link], ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.serial, bool) or not isinstance(self.serial, int) or not 0 < self.serial <= MAX_SERIAL:
            raise ConfigError(f"the directory serial must be a whole number from 1 to {MAX_SERIAL}")
        for what, t in (("issue", self.issued), ("expiry", self.expires)):
            if not isinstance(t, datetime) or t.tzinfo is None or t.microsecond:
                raise ConfigError(f"the directory's {what} time must be whole seconds with a time zone (UTC)")
        object.__setattr__(self, "issued", self.issued.astimezone(UTC))
        object.__setattr__(self, "expires", self.expires.astimezone(UTC))
        if self.expires <= self.issued:
            raise ConfigError("the directory must expire after it is issued")
        if not isinstance(self.policy, ZonePolicy):
            raise ConfigError("the directory needs a zone policy")
        for name, kind in (("nodes", NodeEntry), ("departments", DepartmentEntry), ("links", Link)):
            entries = tuple(getattr(self, name))
            if not all(isinstance(e, kind) for e in entries):
                raise ConfigError(f"the directory's {name} must all be {kind.__name__} values")
            object.__setattr__(self, name, entries)

        nodes: dict[str, NodeEntry] = {}
        for node in self.nodes:
            if node.node_id in nodes:
                raise ConfigError(f"node {node.node_id} is listed twice")
            nodes[node.node_id] = node
        departments: dict[str, DepartmentEntry] = {}
        for dept in self.departments:
            if dept.code in departments:
                raise ConfigError(f"department {dept.code} is listed twice")
            if dept.home_node not in nodes:
                raise ConfigError(f"department {dept.code}: its home node {dept.home_node} is not a listed node")
            departments[dept.code] = dept
        adjacency: dict[str, list[tuple[str, Link]]] = {n: [] for n in nodes}
        seen: set[tuple[str, str]] = set()
        for link in self.links:
            for end in link.nodes:
                if end not in nodes:
                    raise ConfigError(f"link {link.a}–{link.b} names {end}, which is not a listed node")
            if link.nodes in seen:
                raise ConfigError(f"nodes {link.a} and {link.b} are linked twice; give one link with one zone")
            seen.add(link.nodes)
            adjacency[link.a].append((link.b, link))
            adjacency[link.b].append((link.a, link))
        object.__setattr__(self, "_nodes", MappingProxyType(nodes))
        object.__setattr__(self, "_departments", MappingProxyType(departments))
        ordered = {n: tuple(sorted(adj, key=lambda e: e[0])) for n, adj in adjacency.items()}
        object.__setattr__(self, "_adjacency", MappingProxyType(ordered))

    # --- lookups ---

    def find_node(self, node_id: str) -> NodeEntry | None:
        return self._nodes.get(node_id)

    def find_department(self, code: str) -> DepartmentEntry | None:
        return self._departments.get(code)

    def node(self, node_id: str) -> NodeEntry:
        found = self._nodes.get(node_id)
        if found is None:
            raise ConfigError(f"node {node_id} is not in directory {self.serial}")
        return found

    def department(self, code: str) -> DepartmentEntry:
        found = self._departments.get(code)
        if found is None:
            raise ConfigError(f"department {code} is not in directory {self.serial}")
        return found

    def neighbours(self, node_id: str) -> tuple[tuple[str, Link], ...]:
        """The nodes linked to ``node_id``, with the link, in order of node id."""
        return self._adjacency.get(node_id, ())

    def link_between(self, a: str, b: str) -> Link | None:
        return next((link for other, link in self.neighbours(a) if other == b), None)

    def departments_at(self, node_id: str) -> tuple[DepartmentEntry, ...]:
        """The departments whose home node is ``node_id``."""
        return tuple(d for d in self.departments if d.home_node == node_id)

    def valid_at(self, now: datetime) -> bool:
        return self.issued - CLOCK_SKEW <= now <= self.expires


def check_department_code(code: str) -> str:
    if not is_department_code(code):
        raise ConfigError(f"department code {code!r} is not valid (like gd.gov.office: lower case, dotted)")
    return code


def _check_zone(zone: object, place: str) -> None:
    if not isinstance(zone, Zone):
        raise ConfigError(f"{place}: unknown zone {zone!r} (zones: 内网, 专网, 外网)")


def _check_host(host: str, node_id: str) -> None:
    if not isinstance(host, str) or not host:
        raise ConfigError(f"node {node_id}: the SMTP host is missing")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as e:
            raise ConfigError(f"node {node_id}: {host} is not an IPv6 address") from e
        return
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ConfigError(f"node {node_id}: SMTP host {host!r} is not a host name or address")


def _check_certificate(cert: x509.Certificate, *, code: str, usage: Usage, place: str) -> None:
    """The certificate names ``code`` in the role and with the key usage of ``usage`` (not: is it trusted)."""
    if not isinstance(cert, x509.Certificate):
        raise ConfigError(f"{place}: a certificate is required")
    try:
        identity = identity_of(cert)
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as e:
        raise ConfigError(f"{place}: the certificate has no key usage") from e
    except (TrustError, ValueError, x509.DuplicateExtension) as e:
        raise ConfigError(f"{place}: the certificate is not one of this PKI's: {e}") from e
    if identity.code != code:
        raise ConfigError(f"{place}: the certificate is issued to {identity.code}, not {code}")
    role = Role.NODE if usage is Usage.NODE else Role.DEPARTMENT
    if identity.role is not role:
        raise ConfigError(f"{place}: the certificate is a {identity.role} certificate, not a {role} one")
    encrypts = key_usage.key_encipherment or key_usage.key_agreement
    if usage is Usage.ENCRYPTION:
        right = encrypts
    elif usage is Usage.SIGNING:
        right = key_usage.digital_signature and key_usage.content_commitment and not encrypts
    else:
        right = key_usage.digital_signature and not encrypts
    if not right:
        raise ConfigError(f"{place}: the certificate's key usage does not allow {usage}")


def check_certificates(directory: Directory, trust: TrustPolicy, *, at: datetime) -> None:
    """Raise ``TrustError`` unless every certificate of the directory chains to ``trust``'s root and is valid
    (and, with revocation checked, unrevoked) for its use at ``at``."""
    der = serialization.Encoding.DER
    for node in directory.nodes:
        trust.validate(node.certificate.public_bytes(der), usage=Usage.NODE, at=at)
    for dept in directory.departments:
        trust.validate(dept.signing_certificate.public_bytes(der), usage=Usage.SIGNING, at=at)
        trust.validate(dept.encryption_certificate.public_bytes(der), usage=Usage.ENCRYPTION, at=at)


def authority_code_of(root: x509.Certificate) -> str:
    """The code of the authority that publishes directories: the UID of the root certificate."""
    try:
        identity = identity_of(root)
    except TrustError as e:
        raise ConfigError(f"the root certificate does not name the authority: {e}") from e
    if identity.role is not Role.ROOT:
        raise ConfigError(f"the certificate of {identity.code} is not a root certificate")
    return identity.code


# --- the hand-written TOML -----------------------------------------------------------------------------------

_TOP_KEYS = frozenset(
    {"serial", "issued", "expires", "valid_days", "certificates", "policy", "node", "department", "link"}
)
_NODE_KEYS = frozenset({"id", "smtp", "zone", "certificate"})
_DEPARTMENT_KEYS = frozenset({"code", "name", "node", "signing_certificate", "encryption_certificate"})
_LINK_KEYS = frozenset({"nodes", "zone"})


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


def parse_endpoint(text: str, place: str = "node") -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) → host and port, or ``ConfigError``."""
    m = _ENDPOINT.fullmatch(text)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise ConfigError(f"{place}: SMTP endpoint {text!r} is not host:port (a port from 1 to 65535)")
    host = m.group("host").removeprefix("[").removesuffix("]")
    return host, int(m.group("port"))


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


# --- the XML form --------------------------------------------------------------------------------------------


def q(local: str) -> str:
    """The qualified name of a directory element."""
    return _Q + local


def directory_to_element(directory: Directory) -> etree._Element:
    """The unsigned ``dir:Directory`` element."""
    root = etree.Element(q("Directory"), nsmap={"dir": DIRECTORY_NS})
    etree.SubElement(root, q("Serial")).text = str(directory.serial)
    etree.SubElement(root, q("Issued")).text = format_utc(directory.issued)
    etree.SubElement(root, q("Expires")).text = format_utc(directory.expires)
    policy = etree.SubElement(root, q("Policy"))
    for zone, limit in directory.policy.limits.items():
        etree.SubElement(policy, q("Zone"), name=zone.value, max=limit.value)
    nodes = etree.SubElement(root, q("Nodes"))
    for node in directory.nodes:
        el = etree.SubElement(nodes, q("Node"), id=node.node_id, smtp=node.smtp_endpoint, zone=node.zone.value)
        etree.SubElement(el, q("Certificate")).text = _cert_base64(node.certificate)
    departments = etree.SubElement(root, q("Departments"))
    for dept in directory.departments:
        el = etree.SubElement(departments, q("Department"), code=dept.code, name=dept.name, node=dept.home_node)
        etree.SubElement(el, q("SigningCertificate")).text = _cert_base64(dept.signing_certificate)
        etree.SubElement(el, q("EncryptionCertificate")).text = _cert_base64(dept.encryption_certificate)
    links = etree.SubElement(root, q("Links"))
    for link in directory.links:
        etree.SubElement(links, q("Link"), a=link.a, b=link.b, zone=link.zone.value)
    return root


def directory_to_xml(directory: Directory) -> bytes:
    """The unsigned XML form, as ``gwx directory build`` writes it."""
    root = directory_to_element(directory)
    schema.check_directory(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sign_directory(directory: Directory, signer: Signer, *, authority_code: str | None = None) -> bytes:
    """The signed XML form. The signer's certificate must be a department signing certificate; with
    ``authority_code``, one issued to that code (the check ``verify_directory`` makes)."""
    try:
        identity = identity_of(signer.certificate)
    except TrustError as e:
        raise ConfigError(f"the signing certificate is not one of this PKI's: {e}") from e
    if identity.role is not Role.DEPARTMENT:
        raise ConfigError(
            f"a directory is signed with the authority's department signing certificate, not a {identity.role} one"
        )
    if authority_code is not None and identity.code != authority_code:
        raise ConfigError(f"this is the certificate of {identity.code}; directories are signed by {authority_code}")
    root = directory_to_element(directory)
    sign_enveloped(root, signer)
    schema.check_directory(root)  # never hand out a directory a verifier would refuse
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sign_directory_xml(xml: bytes, signer: Signer, *, authority_code: str | None = None) -> bytes:
    """Sign the unsigned XML form that ``directory_to_xml`` wrote (read and checked again first)."""
    root = _parse(xml)
    if _signatures(root):
        raise ConfigError("this directory is already signed; build it again to change it")
    return sign_directory(_read(root), signer, authority_code=authority_code)


def read_unverified_directory(xml: bytes) -> Directory:
    """UNVERIFIED: the directory an XML form describes, signed or not, without looking at any signature.

    For showing a file and for signing a built one; a node takes a directory only from ``verify_directory``.
    """
    root = _parse(xml)
    signatures = _signatures(root)
    if signatures and (len(signatures) != 1 or signatures[0] is not root[-1]):
        raise SignatureError("a directory carries one signature, as its last element")
    return _read(root)


@dataclass(frozen=True, slots=True)
class VerifiedDirectory:
    """What ``verify_directory`` proved: this directory, signed by the authority, as these exact bytes."""

    directory: Directory
    signed_bytes: bytes
    signer: ValidatedCertificate
    is_update: bool
    """True when newer than the directory held (or none was held); False for the held one delivered again."""

    @property
    def signer_identity(self) -> Identity:
        return self.signer.identity

    @property
    def digest(self) -> str:
        """SHA-256 of the exact signed bytes."""
        return hashlib.sha256(self.signed_bytes).hexdigest()


def verify_directory(
    xml: bytes,
    trust: TrustPolicy,
    *,
    authority_code: str,
    now: datetime,
    held: Directory | None,
) -> VerifiedDirectory:
    """Verify a published directory before using it, against the one ``held`` (None: the first one).

    Raises ``SignatureError`` (unsigned, altered), ``TrustError`` (not the authority's, not yet valid, expired,
    older than or conflicting with the one held) or ``ConfigError`` (not a consistent directory).
    """
    root = _parse(xml)
    signatures = _signatures(root)
    if not signatures:
        raise SignatureError("the directory is not signed: a node takes only a directory the authority signed")
    if len(signatures) != 1 or signatures[0] is not root[-1]:
        raise SignatureError("a directory carries one signature, as its last element")
    signer = verify_enveloped(root, signatures[0], trust=trust, at=now, usage=Usage.SIGNING)
    if signer.identity.code != authority_code:
        raise TrustError(
            f"the directory is signed by {signer.identity.code}; only the authority {authority_code} publishes it"
        )
    directory = _read(root)
    if now < directory.issued - CLOCK_SKEW:
        raise TrustError(
            f"directory {directory.serial} is not valid yet: issued {format_utc(directory.issued)}, "
            f"now is {format_utc(now)}"
        )
    if now > directory.expires:
        raise TrustError(
            f"directory {directory.serial} expired on {format_utc(directory.expires)}: "
            "get the current directory from the security centre"
        )
    is_update = True
    if held is not None:
        if directory.serial < held.serial:
            raise TrustError(
                f"directory {directory.serial} is older than directory {held.serial} held here: refused (rollback)"
            )
        if directory.serial == held.serial:
            if directory != held:
                raise TrustError(
                    f"directory {directory.serial} differs from the directory {held.serial} held here under the same "
                    "serial: refused (the authority raises the serial with every change)"
                )
            is_update = False
    return VerifiedDirectory(directory=directory, signed_bytes=xml, signer=signer, is_update=is_update)


def _parse(xml: bytes) -> etree._Element:
    root = xmlsafe.parse(xml, max_bytes=MAX_DIRECTORY_BYTES)
    if root.tag != q("Directory"):
        raise ConfigError(f"not a gwexchange directory (the root element must be dir:Directory in {DIRECTORY_NS})")
    schema.check_directory(root)
    return root


def _signatures(root: etree._Element) -> list[etree._Element]:
    return list(root.iter(SIGNATURE_TAG))


def _read(root: etree._Element) -> Directory:
    """The ``Directory`` of a schema-valid element (any signature is ignored here)."""

    def text(local: str) -> str:
        el = root.find(q(local))
        return "" if el is None or el.text is None else el.text

    def time(local: str) -> datetime:
        t = parse_utc(text(local))
        if t is None:
            raise ConfigError(f"the directory's {local} time is malformed")
        return t

    def cert(parent: etree._Element, local: str, place: str) -> x509.Certificate:
        el = parent.find(q(local))
        try:
            der = base64.b64decode("".join(((el.text or "") if el is not None else "").split()), validate=True)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return x509.load_der_x509_certificate(der)
        except (binascii.Error, ValueError, Warning) as e:
            raise ConfigError(f"{place}: the certificate is not DER X.509 in base64") from e

    limits = {
        Zone(z.get("name", "")): Classification(z.get("max", "")) for z in root.iterfind(f"{q('Policy')}/{q('Zone')}")
    }
    nodes = []
    for el in root.iterfind(f"{q('Nodes')}/{q('Node')}"):
        node_id = el.get("id", "")
        host, port = parse_endpoint(el.get("smtp", ""), f"node {node_id}")
        nodes.append(
            NodeEntry(
                node_id=node_id,
                smtp_host=host,
                smtp_port=port,
                zone=Zone(el.get("zone", "")),
                certificate=cert(el, "Certificate", f"node {node_id}"),
            )
        )
    departments = []
    for el in root.iterfind(f"{q('Departments')}/{q('Department')}"):
        code = el.get("code", "")
        departments.append(
            DepartmentEntry(
                code=code,
                name=el.get("name", ""),
                home_node=el.get("node", ""),
                signing_certificate=cert(el, "SigningCertificate", f"department {code}"),
                encryption_certificate=cert(el, "EncryptionCertificate", f"department {code}"),
            )
        )
    links = tuple(
        Link(el.get("a", ""), el.get("b", ""), Zone(el.get("zone", "")))
        for el in root.iterfind(f"{q('Links')}/{q('Link')}")
    )
    return Directory(
        serial=int(text("Serial")),
        issued=time("Issued"),
        expires=time("Expires"),
        policy=ZonePolicy(limits),
        nodes=tuple(nodes),
        departments=tuple(departments),
        links=links,
    )


def _cert_base64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
