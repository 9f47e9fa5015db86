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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vemonitor.bounds import non_finite
from vemonitor.errors import ConfigError

# omegaconf.MISSING's value: a required field. Spelled here so the schemas, which the
# daemon holds for months, do not import omegaconf (6 MiB with antlr4); only
# load_item(), run while the configuration is checked, does (docs/performance.md).
MISSING: Any = "???"  # typed Any as omegaconf types it: the default of any field

# Bounds on intervals (seconds): below 1 s the devices send nothing new; above a
# day a "time series" stops being one.
MIN_INTERVAL = 1
MAX_INTERVAL = 86400
MAX_CACHE_INTERVAL = 3600
VALUE_FORMATS = ("vemonitor", "vemonitor_m8")


@dataclass
class MetricsConfig:
    """Prometheus metrics endpoint (off unless ``port`` is set)."""

    port: int | None = None
    host: str = "127.0.0.1"


MAX_CACHE_POINTS = 10_000_000  # rows per input a cache backend may be asked to keep


@dataclass
class RedisCacheConfig:
    """The seed's ``redis_cache``: keep the block's data cache in a Redis connector."""

    source: str = MISSING
    max_data_points: int = 120

    def validate(self) -> None:
        """Check the number of rows kept per input (no I/O)."""
        if not 1 <= self.max_data_points <= MAX_CACHE_POINTS:
            raise FieldError("max_data_points", f"must be between 1 and {MAX_CACHE_POINTS}, "
                                                f"got {self.max_data_points}")


@dataclass
class CacheConfig(RedisCacheConfig):
    """Keep the block's data cache in an integration providing ``cache`` instead of memory.

    The seed's ``redis_cache: {source, max_data_points}`` is the same with
    ``domain: redis`` (its key implies the domain: :func:`vemonitor.config.legacy.cache_section`).
    """

    domain: str = MISSING


@dataclass
class BlockConfig:
    """One block (the seed's appBlock): inputs, middlewares and outputs run together."""

    name: str = MISSING
    app: str = "batSerialMonitor"
    args: dict[str, Any] = field(default_factory=dict)
    # CacheConfig / RedisCacheConfig (the seed's spelling, domain redis), typed by
    # config.build when the block is checked. Hydra sees plain mappings: OmegaConf cannot
    # merge a command-line mapping (`block.cache={...}`) into an Optional dataclass whose
    # value is None (an AttributeError inside OmegaConf, omry/omegaconf#1360).
    cache: Any = None
    redis_cache: Any = None
    max_data_points: int = 3600
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    # Set by the legacy loader (vemonitor.config.seed): the block came from a vm_conf.yaml,
    # so the seed's meanings apply; notices are its one-line warnings, logged at start.
    seed_compat: bool = False
    notices: list[str] = field(default_factory=list)


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
    max_time_skew: float = 86400.0
    dry_run: bool = False
    budget_override: bool = False
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # Services (the simulator's ``simulator``) add their own sections to this schema
    # when the configuration is composed (vemonitor.compose.register_schema).


# ---------------------------------------------------------------- item schemas
class FieldError(ValueError):
    """A ``validate()`` rule broken by one field: the error names ``<item key>.<field>``."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def check_interval(value: float, field_name: str = "time_interval") -> None:
    """Check an interval in seconds: below 1 s devices send nothing new; above a day a
    time series stops being one."""
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise FieldError(field_name, f"must be between {MIN_INTERVAL} and {MAX_INTERVAL} "
                                     f"seconds, got {value:g}")


def check_ref_cols(pairs: list[list[str]]) -> None:
    """Check that each ref_cols entry is a [standard_name, column] pair of names."""
    for index, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(p, str) and p for p in pair):
            raise FieldError(f"ref_cols[{index}]", "each ref_cols entry must be "
                                                   "[standard_name, column]")


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
    # "vemonitor": typed values (bool, scaled numbers); "vemonitor_m8": the seed's types
    # (vemonitor.compat), set on the serial inputs of a legacy configuration.
    value_format: str = "vemonitor"

    def validate(self) -> None:
        """Check the range of the input's interval, its ref_cols and value format (no I/O)."""
        check_interval(self.time_interval)
        check_ref_cols(self.ref_cols)
        if self.value_format not in VALUE_FORMATS:
            raise ValueError(f"value_format must be one of {', '.join(VALUE_FORMATS)}, got "
                             f"{self.value_format!r}")


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
    # Rename columns to their ref_cols standard names at this output (vemonitor's default;
    # a legacy configuration sets it false, as the seed never renamed).
    apply_ref_cols: bool = True
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    max_requests_per_hour: int | None = None  # refuse to start above it (vemonitor.budget)
    max_writes_per_hour: int | None = None  # local (SD card) writes per hour

    def validate(self) -> None:
        """Check the cadence, the ref_cols and the delivery settings (no I/O)."""
        check_interval(self.time_interval)
        check_ref_cols(self.ref_cols)
        if not 1 <= self.cache_interval <= MAX_CACHE_INTERVAL:
            raise FieldError("cache_interval", f"must be between 1 and {MAX_CACHE_INTERVAL}, "
                                               f"got {self.cache_interval}")
        d = self.delivery
        from vemonitor.bounds import DELIVERY, problem

        for key, bound in DELIVERY.items():
            why = problem(getattr(d, key), bound)
            if why:
                raise ValueError(f"delivery.{key} {why}")
        if d.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"delivery.synchronous must be OFF, NORMAL, FULL or EXTRA, got "
                             f"{d.synchronous!r}")
        if not 0 < d.retry_initial <= d.retry_max:
            raise ValueError("delivery: need 0 < retry_initial <= retry_max")
        if min(d.drain_rows, d.max_rows, d.max_bytes) < 1 or d.max_age <= 0:
            raise ValueError("delivery: drain_rows, max_rows, max_bytes, max_age must be > 0")


# ---------------------------------------------------------------- loading
def load_item(schema: type, data: Mapping[str, Any], file: str | None, key: str) -> Any:
    """Return ``data`` as an instance of the dataclass ``schema``, or a precise ConfigError.

    Unknown keys, wrong types and missing required values are named by key path;
    then every class of the schema runs its own ``validate()`` (no I/O), whose
    ValueError becomes the ConfigError's message.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), dict(data))
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        sub = getattr(err, "full_key", "") or ""
        msg = str(getattr(err, "msg", None) or err).splitlines()[0]
        if msg.startswith("Key '") and "not in" in msg:
            msg = f"unknown key (allowed: {', '.join(_fields(schema))})"
        if "missing mandatory value" in msg.lower():  # merge and to_object word it apart
            msg = "missing required value"
        raise ConfigError(msg, file=file, key=f"{key}.{sub}" if sub else key) from err
    bad = non_finite(obj)
    if bad is not None:  # nan/inf pass most range checks (every comparison is False)
        raise ConfigError(f"must be a finite number, got {bad[1]}", file=file,
                          key=f"{key}.{bad[0]}")
    # Every class of the schema checks its own rules (a subclass need not call super).
    for cls in reversed(type(obj).__mro__):
        validate = cls.__dict__.get("validate")
        if validate is not None:
            try:
                validate(obj)
            except ConfigError:  # already one line with its own key path
                raise
            except FieldError as err:  # one field's rule: the key path names the field
                raise ConfigError(str(err), file=file, key=f"{key}.{err.field}") from err
            except ValueError as err:  # an integration's own cross-field rule
                raise ConfigError(str(err), file=file, key=key) from err
            except Exception as err:  # an integration's bug: still one line, named
                raise ConfigError(f"{cls.__name__}.validate() failed: {type(err).__name__}: "
                                  f"{err}", file=file, key=key) from err
    return obj


def _fields(schema: type) -> list[str]:
    return list(getattr(schema, "__dataclass_fields__", {}))
