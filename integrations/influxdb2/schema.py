"""Schemas of the InfluxDB connector (``appConnectors.influxDb2.<name>``) and its items.

The key names are the seed's (vemonitor_m8 ``vm_appConnectors.yaml``): connector
``host``, ``org``, ``auth``, ``timeout`` (milliseconds, as influxdb-client's), ``verify_ssl``;
block items ``db``, ``measurement``, ``tags``, ``columns``, ``ref_cols``,
``time_interval``, ``cache_interval``. Everything else is ours and has a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from omegaconf import MISSING

from vemonitor.api import Connector, InputItem, OutputItem, check_http_url

APIS = ("v2", "v1")  # v2: /api/v2/write (InfluxDB 2/3, Cloud, VictoriaMetrics); v1: /write
PRECISIONS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
MAX_TIMEOUT_MS = 300_000  # a longer wait only delays the outbox's own retry
DEFAULT_MEASUREMENT = "vemonitor"
# Row columns that become tags rather than fields, and their tag key. '#' is not a valid
# Prometheus label character (VictoriaMetrics/Grafana), hence serial/pid.
# The tag keys themselves are listed too, so rows read back from InfluxDB (whose tags
# come back as columns) keep them as tags when forwarded again.
DEFAULT_TAG_COLUMNS = {"SER#": "serial", "PID": "pid", "serial": "serial", "pid": "pid",
                       "product": "product", "site": "site", "node": "node"}
# Tags a forwarded row keeps even when ``columns`` lists only fields (who sent it).
IDENTITY_COLUMNS = ("site", "node", "serial", "pid", "product")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INFLUXQL_NAME = re.compile(r"[^\"\\\n]+")  # quoted as "name" in InfluxQL
_INFLUXQL_VALUE = re.compile(r"[^'\\\n]+")  # quoted as 'value' in InfluxQL


@dataclass
class InfluxConnector(Connector):
    """An InfluxDB-compatible server: URL, org, token, timeout (ms) and TLS checking.

    ``auth`` (the token, or the 1.x password with ``username``) never shows in
    ``repr()``; it may come from the environment (``${oc.env:INFLUX_TOKEN}``).
    """

    host: str = MISSING
    org: str = ""
    auth: str | None = field(default=None, repr=False)
    timeout: float = 10_000  # milliseconds (the seed writes 6000)
    verify_ssl: bool = True
    api: str = "v2"
    username: str | None = None  # 1.x basic auth user (auth is then the password)
    gzip: bool = True

    def validate(self) -> None:
        """Check the URL, API, timeout and credentials (no I/O; never echoes auth)."""
        check_host(self.host)
        if self.api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)}, got {self.api!r}")
        if not 0 < self.timeout <= MAX_TIMEOUT_MS:
            raise ValueError(f"timeout is in milliseconds and must be > 0 and <= "
                             f"{MAX_TIMEOUT_MS}, got {self.timeout:g}")
        if self.auth is not None and any(c.isspace() or not c.isprintable() for c in self.auth):
            raise ValueError("auth contains whitespace or control characters (check for a "
                             "trailing newline in the variable it comes from)")
        if self.username is not None and not self.auth:
            raise ValueError("username needs auth (the password)")

    def risks(self) -> list[str]:
        """Return what weakens this connection's security (one start-up WARNING each)."""
        if self.verify_ssl or not self.host.lower().startswith("https://"):
            return []  # plain http:// has nothing to verify (the seed's own setting)
        return [f"influxDb2 {self.address()}: TLS certificate verification is off "
                f"(verify_ssl=false): any server can impersonate it and receive the token"]

    def timeout_s(self) -> float:
        """Return the timeout in seconds."""
        return self.timeout / 1000.0

    def address(self) -> str:
        """Return the URL for messages (never the credentials)."""
        return self.host.rstrip("/")


@dataclass
class InfluxOutput(OutputItem):
    """Rows written as line protocol points: one point per row into ``db`` (the bucket).

    ``tags`` are constant tags (``site`` defaults to the block's name);
    ``tag_columns`` maps row columns to tag keys (the device's serial and PID, and the
    ``site``/``node`` a forwarded row carries); ``string_fields`` lists the text columns
    to write (other text is left out, so a field never changes type).
    """

    db: str = MISSING
    measurement: str = DEFAULT_MEASUREMENT
    tags: dict[str, str] = field(default_factory=dict)
    tag_columns: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TAG_COLUMNS))
    string_fields: list[str] = field(default_factory=list)
    precision: str = "s"
    rp: str | None = None  # 1.x retention policy (v1 API only)

    def validate(self) -> None:
        """Check the connector name, bucket, measurement, tags and precision (no I/O)."""
        super().validate()
        if not self.source:
            raise ValueError("an influxDb2 output needs 'source': the name of an "
                             "appConnectors.influxDb2 connector")
        if not self.db or not self.db.strip():
            raise ValueError("db (the bucket, or the 1.x database) is required")
        if not self.measurement or "\n" in self.measurement:
            raise ValueError(f"measurement must be a non-empty line, got {self.measurement!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                             f"got {self.precision!r}")
        for key in (*self.tags, *self.tag_columns.values()):
            if not _IDENT.fullmatch(str(key)):
                raise ValueError(f"tag key {key!r} must be letters, digits and '_' (a "
                                 "label name in VictoriaMetrics and Grafana)")


@dataclass
class InfluxInput(InputItem):
    """Rows read back with InfluxQL ``/query`` (InfluxDB 1.x, 2.x's v1 API, VictoriaMetrics).

    One input reads one series: ``measurement`` filtered by ``tags`` (e.g. the site
    and node another vemonitor wrote); ``columns`` are the fields (empty: all).
    """

    db: str = MISSING
    measurement: str = DEFAULT_MEASUREMENT
    tags: dict[str, str] = field(default_factory=dict)
    since: float | None = None  # epoch seconds; None -> rows written after start
    lookback: float = 0.0  # seconds before start to read again (catch-up after a restart)

    def __post_init__(self) -> None:
        # Listed fields keep the row's identity too (the engine keeps only listed columns).
        if self.columns:
            self.columns = [*self.columns,
                            *(c for c in IDENTITY_COLUMNS if c not in self.columns)]

    def fields(self) -> list[str]:
        """Return the listed fields to select (identity comes back as the series' tags)."""
        return [c for c in self.columns if c not in IDENTITY_COLUMNS]

    def validate(self) -> None:
        """Check the database, measurement and tags can be quoted in InfluxQL (no I/O)."""
        for key, value in (("db", self.db), ("measurement", self.measurement)):
            if not value or not _INFLUXQL_NAME.fullmatch(value):
                raise ValueError(f"{key} must be non-empty without quotes, backslashes or "
                                 f"newlines, got {value!r}")
        for key, value in self.tags.items():
            if not _IDENT.fullmatch(str(key)) or not _INFLUXQL_VALUE.fullmatch(str(value)):
                raise ValueError(f"tags.{key}: key must be an identifier and the value "
                                 "non-empty without quotes or backslashes")
        if self.since is not None and self.since < 0:
            raise ValueError(f"since must be epoch seconds >= 0 or null, got {self.since}")
        if self.lookback < 0:
            raise ValueError(f"lookback must be >= 0 seconds, got {self.lookback}")


def check_host(host: str) -> None:
    """Raise ValueError unless ``host`` is an http(s) URL with a host and no secret."""
    check_http_url(host, "host", "auth")
