"""A node's home: its folder and ``node.toml`` (``NodeConfig``); ``context.init_home`` lays one out.

The node home
    ``node.toml``      the configuration (``NodeConfig``); paths in it are relative to the home
    ``node.db``        the store (SQLite, WAL) unless ``database`` names another URL
    ``parts/``         the part files of stored envelopes
    ``run.json``       while the daemon runs: its pid and the port it listens on (removed at a clean stop)
    ``log/``           the Merkle log (``archive.log``): every envelope accepted here, byte for byte, and
                       ``log/heads``, the tree heads this node signed
    ``peer-heads``     the tree heads peers sent with their envelopes, one line each (``treehead.head_to_line``)
    ``directories/``   every directory the node took, ``directory-<serial>.xml``: the newest is in force

``node.toml``::

    node_id = "gd-hub"
    listen = "127.0.0.1:2525"           # port 0: any free port (run.json tells which)
    directory = "directory.signed.xml"  # the signed directory, verified at every start
    root = "root.crt"
    crl = ["crl.pem"]
    node_keys = "keys/gd-hub"           # node.key, node.crt
    # database = "sqlite:////var/lib/gwx/node.db"
    # tick_seconds = 1.0                # how often the delivery loop looks for due copies
    # retry_base_seconds = 30           # back-off: full jitter under min(cap, base·2ⁿ)
    # retry_cap_seconds = 7200
    # send_timeout_seconds = 60
    # tree_head_seconds = 60            # sign a tree head this often while the log grows (and at every stop)
    # parallel_peers = 8                # next hops sent to at once, each over one kept-open connection

    [departments]                       # departments served here: their key folders
    "gd.gov.office" = "keys/gd.gov.office"   # signing.key/.crt, encryption.key/.crt

Key passphrases come from ``$GWX_KEY_PASSPHRASE`` (unencrypted keys load only when it is unset).
"""

from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from gwexchange.errors import (
    ConfigError,
)
from gwexchange.network.directory import (
    parse_endpoint,
)
from gwexchange.routing.node_logic import RetryPolicy

log = logging.getLogger("gwexchange.node")

CONFIG_NAME = "node.toml"
RUN_NAME = "run.json"
DIRECTORIES_NAME = "directories"
LOG_NAME = "log"
PEER_HEADS_NAME = "peer-heads"
_KEYS = frozenset(
    {
        "node_id",
        "listen",
        "directory",
        "root",
        "crl",
        "node_keys",
        "database",
        "tick_seconds",
        "retry_base_seconds",
        "retry_cap_seconds",
        "send_timeout_seconds",
        "tree_head_seconds",
        "parallel_peers",
        "departments",
    }
)


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    node_id: str
    listen_host: str
    listen_port: int
    directory: Path
    root: Path
    crls: tuple[Path, ...]
    node_keys: Path
    departments: dict[str, Path] = field(default_factory=dict)
    database: str | None = None
    tick_seconds: float = 1.0
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 7200.0
    send_timeout_seconds: float = 60.0
    tree_head_seconds: float = 60.0
    parallel_peers: int = 8

    @property
    def log_dir(self) -> Path:
        return self.home / LOG_NAME

    @property
    def peer_heads_path(self) -> Path:
        return self.home / PEER_HEADS_NAME

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.home / 'node.db'}"

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(timedelta(seconds=self.retry_base_seconds), timedelta(seconds=self.retry_cap_seconds))

    @classmethod
    def load(cls, home: Path) -> NodeConfig:
        path = home / CONFIG_NAME
        try:
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"{home} is not a node home (no {CONFIG_NAME}): create one with 'gwx node init'") from e
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        unknown = set(spec) - _KEYS
        if unknown:
            raise ConfigError(f"{path}: unknown settings {', '.join(sorted(unknown))}")

        def text(key: str) -> str:
            value = spec.get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{path}: {key} must be a non-empty string")
            return value

        def number(key: str, default: float) -> float:
            value = spec.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{path}: {key} must be a positive number")
            return float(value)

        def resolve(name: str) -> Path:
            return (home / name).resolve()

        host, port = parse_listen(text("listen"))
        crl = spec.get("crl", [])
        if isinstance(crl, str):
            crl = [crl]
        if not isinstance(crl, list) or not all(isinstance(c, str) for c in crl):
            raise ConfigError(f"{path}: crl must be a list of paths")
        departments = spec.get("departments", {})
        if not isinstance(departments, dict) or not all(isinstance(v, str) for v in departments.values()):
            raise ConfigError(f'{path}: [departments] must map department codes to key folders ("code" = "path")')
        database = spec.get("database")
        if database is not None and not isinstance(database, str):
            raise ConfigError(f"{path}: database must be a URL")
        return cls(
            home=home.resolve(),
            node_id=text("node_id"),
            listen_host=host,
            listen_port=port,
            directory=resolve(text("directory")),
            root=resolve(text("root")),
            crls=tuple(resolve(c) for c in crl),
            node_keys=resolve(text("node_keys")),
            departments={str(k): resolve(v) for k, v in departments.items()},
            database=database,
            tick_seconds=number("tick_seconds", 1.0),
            retry_base_seconds=number("retry_base_seconds", 30.0),
            retry_cap_seconds=number("retry_cap_seconds", 7200.0),
            send_timeout_seconds=number("send_timeout_seconds", 60.0),
            tree_head_seconds=number("tree_head_seconds", 60.0),
            parallel_peers=max(1, int(number("parallel_peers", 8))),
        )


def parse_listen(text: str) -> tuple[str, int]:
    if text.endswith(":0"):  # any free port
        return parse_endpoint(text[:-2] + ":1", "listen")[0], 0
    return parse_endpoint(text, "listen")


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]  # after the command name, which may hold spaces and ')'
    except (OSError, IndexError):
        return None


__all__ = [
    "CONFIG_NAME",
    "DIRECTORIES_NAME",
    "LOG_NAME",
    "PEER_HEADS_NAME",
    "RUN_NAME",
    "NodeConfig",
    "parse_listen",
    "process_started",
    "toml_string",
]
