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

How it is signed and which one a node takes: ``directory_xml``.

Errors: inconsistent content is a ``ConfigError``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gwexchange.codes import check_node_id, is_department_code
from gwexchange.crypto.certificates import Role, Usage, identity_of
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.model import Classification
from gwexchange.errors import ConfigError, TrustError

DIRECTORY_NS = "urn:gwexchange:directory:1"
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


def parse_endpoint(text: str, place: str = "node") -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) → host and port, or ``ConfigError``."""
    m = _ENDPOINT.fullmatch(text)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise ConfigError(f"{place}: SMTP endpoint {text!r} is not host:port (port 1-65535)")
    host = m.group("host").removeprefix("[").removesuffix("]")
    return host, int(m.group("port"))


def authority_code_of(root: x509.Certificate) -> str:
    """The code of the authority that publishes directories: the UID of the root certificate."""
    try:
        identity = identity_of(root)
    except TrustError as e:
        raise ConfigError(f"the root certificate does not name the authority: {e}") from e
    if identity.role is not Role.ROOT:
        raise ConfigError(f"the certificate of {identity.code} is not a root certificate")
    return identity.code


__all__ = [
    "CLOCK_SKEW",
    "DIRECTORY_NS",
    "MAX_DIRECTORY_BYTES",
    "MAX_NAME",
    "MAX_SERIAL",
    "DepartmentEntry",
    "Directory",
    "Link",
    "NodeEntry",
    "Reader",
    "Zone",
    "ZonePolicy",
    "authority_code_of",
    "check_certificates",
    "check_department_code",
    "parse_endpoint",
]
