"""Structured configuration: the dataclasses that type every key.

Two layers, one schema:

* ``VemonitorConfig`` is registered in Hydra's ConfigStore as the primary
  schema, so Hydra types the run-level keys (``debug``, ``duration``,
  ``state_dir``, ``config_dir``, ``metrics``...) while composing.
* Block items and connectors belong to integrations, so they are typed by the
  integration's own dataclasses (subclasses of ``InputItem`` / ``OutputItem`` /
  ``Connector`` below) when the composed config is validated
  (:mod:`vemonitor.config.build`). Hydra sees them as plain mappings.

Legacy ``vm_conf.yaml`` sets are converted to the same shape and validated by
the same code, so both front ends give the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

# Bounds on intervals (seconds): below 1 s the devices send nothing new; above a
# day a "time series" stops being one.
MIN_INTERVAL = 1
MAX_INTERVAL = 86400
MAX_CACHE_INTERVAL = 3600


@dataclass
class MetricsConfig:
    """Prometheus metrics endpoint (off unless ``port`` is set)."""

    port: int | None = None
    host: str = "127.0.0.1"


@dataclass
class SimulatorConfig:
    """hw_sim devices to start in-process before the inputs (the Demo block uses it)."""

    devices: list[str] = field(default_factory=list)
    dir: str | None = None
    faults: str = ""
    start: str | None = None  # local time of day the simulated day starts at (HH:MM)


@dataclass
class RedisCacheConfig:
    """The seed's ``redis_cache``: keep the block's data cache in a Redis connector."""

    source: str = MISSING
    max_data_points: int = 120


@dataclass
class BlockConfig:
    """One block (the seed's appBlock): inputs, middlewares and outputs run together."""

    name: str = MISSING
    app: str = "batSerialMonitor"
    args: dict[str, Any] = field(default_factory=dict)
    redis_cache: RedisCacheConfig | None = None
    max_data_points: int = 3600
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class VemonitorConfig:
    """The primary config: what Hydra composes from conf/ and the command line."""

    block: BlockConfig = MISSING
    appConnectors: dict[str, Any] = field(default_factory=dict)  # noqa: N815 (seed's name)
    batteryBanks: dict[str, Any] | None = None  # noqa: N815 (seed's name)
    debug: bool = False
    duration: float | None = None
    state_dir: str | None = None
    config_dir: str | None = None
    speed: float = 1.0
    stale_after: float = 5.0
    dry_run: bool = False
    budget_override: bool = False
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)


# ---------------------------------------------------------------- item schemas
@dataclass
class Connector:
    """Base of every integration's connector schema (the seed's ``active`` flag included)."""

    active: bool = True


@dataclass
class InputItem:
    """Base of every input item: which connector, how often, which columns."""

    name: str = MISSING
    source: str = MISSING
    time_interval: float = 1
    columns: list[str] = field(default_factory=list)
    ref_cols: list[list[str]] = field(default_factory=list)
    device: str | None = None


@dataclass
class DeliveryConfig:
    """How an output's durable outbox delivers (see vemonitor.delivery and vemonitor.outbox)."""

    retry_initial: float = 1.0  # first wait after a failure, doubling each time
    retry_max: float = 300.0  # longest wait between attempts
    auth_retry: float = 900.0  # wait after the server refused our credentials
    drain_rows: int = 1000  # rows per send while a backlog drains
    drain_interval: float = 1.0  # seconds between sends while a backlog drains
    max_rows: int = 2_000_000  # outbox caps: the oldest rows go first beyond them
    max_bytes: int = 256 * 1024 * 1024
    max_age: float = 30 * 86400.0
    synchronous: str = "FULL"  # SQLite fsync policy of the outbox: FULL, NORMAL, OFF


@dataclass
class OutputItem:
    """Base of every output item: cadence, batch size and the columns of each input.

    ``columns`` maps an input name to the columns to send (the seed's form), or
    is empty to send every column of every input.
    """

    name: str | None = None
    source: str | None = None
    time_interval: float = 1
    cache_interval: int = 1
    columns: dict[str, list[str]] = field(default_factory=dict)
    ref_cols: list[list[str]] = field(default_factory=list)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    max_requests_per_hour: int | None = None  # refuse to start above it (vemonitor.budget)
    max_writes_per_hour: int | None = None  # local (SD card) writes per hour

    def validate(self) -> None:
        """Check the delivery settings (no I/O)."""
        d = self.delivery
        if d.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"delivery.synchronous must be OFF, NORMAL, FULL or EXTRA, got "
                             f"{d.synchronous!r}")
        if not 0 < d.retry_initial <= d.retry_max:
            raise ValueError("delivery: need 0 < retry_initial <= retry_max")
        if min(d.drain_rows, d.max_rows, d.max_bytes) < 1 or d.max_age <= 0:
            raise ValueError("delivery: drain_rows, max_rows, max_bytes, max_age must be > 0")
