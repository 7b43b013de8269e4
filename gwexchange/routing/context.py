"""What the daemon and the clerk commands share of a node home: its store, trust, directory and keys
(``NodeContext``, ``load_context``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from gwexchange.crypto.certificates import identity_of
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.times import utcnow
from gwexchange.errors import (
    ConfigError,
    GwxError,
    TrustError,
)
from gwexchange.files import atomic_write, read_file
from gwexchange.network.directory import Directory, authority_code_of
from gwexchange.network.directory_xml import VerifiedDirectory, read_unverified_directory, verify_directory
from gwexchange.pki.keyfiles import load_certificate, load_keypair
from gwexchange.routing.home import CONFIG_NAME, DIRECTORIES_NAME, NodeConfig, parse_listen, toml_string
from gwexchange.routing.node_logic import DepartmentKeys, NodeView
from gwexchange.routing.peer_tls import NodeTls, node_tls
from gwexchange.routing.store import Store

log = logging.getLogger("gwexchange.node")


class SharedStore(Store):
    """The store as a clerk's command (or ``status``) opens it while the daemon may be running: it does not sweep,
    since the part files of an envelope the daemon is receiving have no row yet. The daemon sweeps when it starts.
    """

    def sweep(self, older_than: timedelta = timedelta(0)) -> list[Path]:
        return []


def open_store(config: NodeConfig, *, daemon: bool = False) -> Store:
    return (Store if daemon else SharedStore)(config.home, config.database_url)


@dataclass
class NodeContext:
    config: NodeConfig
    trust: TrustPolicy
    directory: Directory
    view: NodeView
    tls: NodeTls
    store: Store
    directory_xml: bytes | None = None  # the signed bytes of ``directory``, passed on to peers

    def close(self) -> None:
        self.store.close()

    def adopt(self, verified: VerifiedDirectory) -> None:
        """Route by a newer directory from now on (kept first: a restart starts from it)."""
        keep_directory(self.config, verified)
        self.directory = verified.directory
        self.directory_xml = verified.signed_bytes
        self.view = replace(self.view, directory=verified.directory)


def load_trust(config: NodeConfig) -> TrustPolicy:
    root = load_certificate(config.root, "the root certificate")
    try:
        crls = tuple(x509.load_pem_x509_crl(read_file(p, "the CRL")) for p in config.crls)
    except ValueError as e:
        raise ConfigError(f"cannot read a CRL: {e}") from e
    return TrustPolicy(root, crls)


def held_directories(config: NodeConfig) -> list[tuple[int, Path]]:
    """The directories this node took, newest first: ``directories/directory-<serial>.xml``."""
    folder = config.home / DIRECTORIES_NAME
    found = []
    for path in folder.glob("directory-*.xml") if folder.is_dir() else ():
        serial = path.stem.removeprefix("directory-")
        if serial.isdigit():
            found.append((int(serial), path))
    return sorted(found, reverse=True)


def current_directory(config: NodeConfig, trust: TrustPolicy, now: datetime) -> VerifiedDirectory:
    """The directory in force at this node: the newest it holds, or the configured file if that is newer.

    Every directory taken is kept in ``directories/`` (an auditor needs the ones that were in force), so a
    node never falls back to an older directory, whatever its configuration file says.
    """
    authority = authority_code_of(trust.root)
    held: VerifiedDirectory | None = None
    for _, path in held_directories(config):
        try:
            held = verify_directory(path.read_bytes(), trust, authority_code=authority, now=now, held=None)
            break
        except (OSError, GwxError) as e:  # an expired one among them: the configured file may be newer
            log.warning("node.directory-unusable file=%s reason=%s", path.name, one_line(e))
    try:
        configured_bytes = config.directory.read_bytes()
    except FileNotFoundError as e:
        if held is not None:
            return held
        raise ConfigError(f"the directory {config.directory} does not exist") from e
    try:
        configured = verify_directory(
            configured_bytes, trust, authority_code=authority, now=now, held=held.directory if held else None
        )
    except TrustError as e:
        if held is None or held.directory.serial <= read_unverified_directory(configured_bytes).serial:
            raise
        log.warning("node.directory-refused file=%s reason=%s", config.directory, one_line(e))
        return held
    if configured.is_update:
        keep_directory(config, configured)
        return configured
    return held if held is not None else configured


def keep_directory(config: NodeConfig, verified: VerifiedDirectory) -> Path:
    """File a verified directory among those held (durably: it is what routes are computed from)."""
    folder = config.home / DIRECTORIES_NAME
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"directory-{verified.directory.serial}.xml"
    if not path.exists():
        atomic_write(path, verified.signed_bytes)
    return path


def load_context(config: NodeConfig, *, now: datetime | None = None, daemon: bool = False) -> NodeContext:
    """Trust policy, verified directory, keys, node view and store of a node home."""
    now = now or utcnow()
    trust = load_trust(config)
    in_force = current_directory(config, trust, now)
    directory = in_force.directory
    if directory.find_node(config.node_id) is None:
        raise ConfigError(f"node {config.node_id} is not in directory {directory.serial}")
    node_key, node_cert = load_keypair(config.node_keys, "node")
    if identity_of(node_cert).code != config.node_id:
        raise ConfigError(
            f"{config.node_keys} holds the key of node {identity_of(node_cert).code}, not {config.node_id}"
        )
    departments: dict[str, DepartmentKeys] = {}
    for code, folder in config.departments.items():
        entry = directory.find_department(code)
        if entry is None or entry.home_node != config.node_id:
            raise ConfigError(f"department {code} is not served by node {config.node_id} in the directory")
        sign_key, sign_cert = load_keypair(folder, "signing")
        enc_key, _ = load_keypair(folder, "encryption")
        departments[code] = DepartmentKeys(Signer(sign_key, sign_cert), enc_key)
    view = NodeView(
        node_id=config.node_id,
        directory=directory,
        trust=trust,
        node_signer=Signer(node_key, node_cert),
        departments=departments,
        retry=config.retry,
    )
    tls = node_tls(config.node_id, node_key, node_cert, trust.root)
    store = open_store(config, daemon=daemon)
    return NodeContext(config, trust, directory, view, tls, store, in_force.signed_bytes)


def one_line(error: object) -> str:
    """An error's message for a log line: a peer's text never starts a line of its own."""
    return str(error).replace("\n", " ")


def init_home(
    home: Path,
    *,
    node_id: str,
    listen: str,
    directory: Path,
    root: Path,
    crls: Iterable[Path],
    node_keys: Path,
    departments: dict[str, Path],
    database: str | None = None,
    extra: dict[str, float] | None = None,
) -> Path:
    """Write a node home: ``node.toml`` (absolute paths) and an empty store. Refuses to overwrite a home."""
    config = home / CONFIG_NAME
    if config.exists():
        raise ConfigError(f"{home} already holds a node ({CONFIG_NAME}); refusing to overwrite it")
    parse_listen(listen)
    lines = [
        f"node_id = {toml_string(node_id)}",
        f"listen = {toml_string(listen)}",
        f"directory = {toml_string(str(directory.resolve()))}",
        f"root = {toml_string(str(root.resolve()))}",
        f"crl = [{', '.join(toml_string(str(c.resolve())) for c in crls)}]",
        f"node_keys = {toml_string(str(node_keys.resolve()))}",
    ]
    if database is not None:
        lines.append(f"database = {toml_string(database)}")
    for key, value in (extra or {}).items():
        lines.append(f"{key} = {value!r}")
    lines += ["", "[departments]"]
    lines += [f"{toml_string(code)} = {toml_string(str(p.resolve()))}" for code, p in departments.items()]
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(config, ("\n".join(lines) + "\n").encode("utf-8"))
    loaded = NodeConfig.load(home)  # what was written reads back
    load_context(loaded).store.close()  # and it works: keys, directory, trust
    return config


__all__ = [
    "NodeContext",
    "SharedStore",
    "current_directory",
    "held_directories",
    "init_home",
    "keep_directory",
    "load_context",
    "load_trust",
    "one_line",
    "open_store",
]
