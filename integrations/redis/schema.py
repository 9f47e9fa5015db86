"""Schemas of the Redis connector (``appConnectors.redis.<name>``) and its input/output items."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from vemonitor.api import Connector, InputItem, OutputItem, check_host, check_host_port

CERT_REQS = ("none", "optional", "required")
DEFAULT_MAX_ITEMS = 3600
SELECTOR_DBS = 16  # the seed's selector tries db 0..15
JSON_STYLES = ("compact", "vemonitor_m8")  # vemonitor_integrations.redis.layout.JSON_SEPARATORS
DEFAULT_STREAM_PREFIX = "vemonitor:"


class Structure(Enum):
    """How rows are laid out in Redis."""

    HmapTimeSeries = "HmapTimeSeries"  # the original's SET + HASH per node (+ a ZSET index)
    Stream = "Stream"  # one stream per node, entry id = row time in ms


@dataclass
class RedisConnector(Connector):
    """A Redis server and database; the password may come from ``${oc.env:VAR}``."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool = True  # the certificate must name ``host`` (needs required)
    # Short timeouts: a hung server must fail a write quickly so the outbox can retry.
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 5.0
    # vemonitor_m8's db selector: when ``db`` holds keys without the seed's marker
    # (vemonitor_meta.controled_by = vemonitor_m8), use the first of db 0..15 that is
    # empty or marked, as the seed's writer and reader do. On for legacy configurations.
    db_selector: bool = False
    # Redis Cluster: ``cluster: true`` (host/port is one startup node) or startup nodes
    # "host:port"; keys then carry hash tags so each script touches one slot (layout.py).
    cluster: bool = False
    startup_nodes: list[str] = field(default_factory=list)
    # A write counts once this many replicas have it (WAIT): a failover then loses nothing.
    wait_replicas: int = 0
    wait_timeout: float = 2.0  # seconds WAIT may take before the batch is sent again

    def validate(self) -> None:
        """Check ranges and TLS options (no I/O)."""
        check_host(self.host)
        if not self.host or any(c.isspace() for c in self.host):
            raise ValueError(f"host must be a host name or address, got {self.host!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if self.db < 0:
            raise ValueError(f"db must be >= 0, got {self.db}")
        if self.db_selector and self.db >= SELECTOR_DBS:
            raise ValueError(f"db_selector needs db between 0 and {SELECTOR_DBS - 1}, got "
                             f"{self.db}")
        if self.ssl_cert_reqs not in CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}, "
                             f"got {self.ssl_cert_reqs!r}")
        if not self.ssl and (self.ssl_ca_certs or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError("ssl_ca_certs/ssl_certfile/ssl_keyfile need ssl: true")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        if self.socket_timeout <= 0 or self.socket_connect_timeout <= 0:
            raise ValueError("socket_timeout and socket_connect_timeout must be > 0 seconds")
        if self.is_cluster() and self.db != 0:
            raise ValueError(f"a Redis Cluster has only db 0, got db {self.db}")
        for index, node in enumerate(self.startup_nodes):
            check_host_port(node, f"startup_nodes[{index}]")
        if self.wait_replicas < 0 or self.wait_timeout <= 0:
            raise ValueError("wait_replicas must be >= 0 and wait_timeout > 0 seconds")

    def is_cluster(self) -> bool:
        """Return True when the connector names a Redis Cluster."""
        return self.cluster or bool(self.startup_nodes)

    def nodes(self) -> list[tuple[str, int]]:
        """Return the cluster's startup nodes (host/port when none are listed)."""
        found = [(h, int(p)) for h, _, p in (str(n).rpartition(":") for n in self.startup_nodes)]
        return found or [(self.host, self.port)]

    def risks(self) -> list[str]:
        """Return what weakens this connection's security (one start-up WARNING each)."""
        if not self.ssl:
            return []
        if self.ssl_cert_reqs != "required":
            return [f"redis {self.address()}: TLS certificate verification is off "
                    f"(ssl_cert_reqs={self.ssl_cert_reqs}): any server can impersonate it "
                    f"and receive the password"]
        if not self.ssl_check_hostname:
            return [f"redis {self.address()}: TLS host name check is off "
                    f"(ssl_check_hostname=false): a certificate for any host is accepted"]
        return []

    def address(self) -> str:
        """Return ``host:port/db`` for messages (never the credentials)."""
        if self.is_cluster():
            return "cluster " + ",".join(f"{h}:{p}" for h, p in self.nodes())
        return f"{self.host}:{self.port}/{self.db}"


@dataclass
class RedisOutput(OutputItem):
    """Where and how an output writes rows: the original's hashes, or streams."""

    structure: Structure = Structure.HmapTimeSeries
    redis_node: str | None = None  # HmapTimeSeries: the SET name and key prefix
    stream_prefix: str = DEFAULT_STREAM_PREFIX  # Stream: key = prefix + node
    max_items: int = DEFAULT_MAX_ITEMS  # rows kept per node (exact for hashes, ~ for streams)
    # HmapTimeSeries JSON text: "compact", or "vemonitor_m8" (the seed's spacing; the
    # default of a legacy configuration, so hash values are the seed's byte for byte).
    json_style: str = "compact"

    def __post_init__(self) -> None:
        # Accept the name as well as the member when built outside OmegaConf.
        self.structure = Structure(self.structure)

    def validate(self) -> None:
        """Check the fields the structure needs (no I/O)."""
        if not self.source:
            raise ValueError("source (the name of a redis connector) is required")
        if self.json_style not in JSON_STYLES:
            raise ValueError(f"json_style must be one of {', '.join(JSON_STYLES)}, got "
                             f"{self.json_style!r}")
        _check_layout(self.structure, self.redis_node, self.stream_prefix)
        if self.max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {self.max_items}")


@dataclass
class RedisInput(InputItem):
    """Rows another vemonitor wrote: which structure, which node, from when."""

    structure: Structure = Structure.HmapTimeSeries
    redis_node: str | None = None
    stream_prefix: str = DEFAULT_STREAM_PREFIX
    node: str | None = None  # the writer's input name; None -> this input's name
    since: float | None = None  # epoch seconds; None -> rows written after start

    def __post_init__(self) -> None:
        # Accept the name as well as the member when built outside OmegaConf.
        self.structure = Structure(self.structure)

    def validate(self) -> None:
        """Check the fields the structure needs (no I/O)."""
        _check_layout(self.structure, self.redis_node, self.stream_prefix)
        if self.since is not None and self.since < 0:
            raise ValueError(f"since must be epoch seconds >= 0 or null, got {self.since}")

    def remote_node(self) -> str:
        """Return the writer's node name this input reads."""
        return self.node or self.name


def _check_layout(structure: Structure, redis_node: str | None, stream_prefix: str) -> None:
    """Raise ValueError when the structure's naming field is missing."""
    if structure is Structure.HmapTimeSeries and not redis_node:
        raise ValueError("redis_node is required with structure HmapTimeSeries")
    if structure is Structure.Stream and not stream_prefix:
        raise ValueError("stream_prefix must not be empty with structure Stream")

