"""Validate a composed configuration into a typed, checked run specification.

Input: the plain mapping Hydra composed (or a legacy set converted to the same
shape) and, for error messages, the file each top-level section came from.
Output: a :class:`RunSpec` whose every key was typed by its integration's schema
and cross-checked (sources exist, names are unique, intervals in range...).
Every problem is a :class:`ConfigError` naming the file and the key path.
Validation does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vemonitor import bounds, secretpolicy
from vemonitor.batteries import BatteryBank, load_bank
from vemonitor.clock import MAX_SPEED
from vemonitor.config.legacy import cache_section
from vemonitor.config.paths import default_state_dir
from vemonitor.config.seed import SEED_DOMAINS
from vemonitor.errors import ConfigError, IntegrationError
from vemonitor.registry import Registry
from vemonitor.schema import (
    CacheConfig,
    InputItem,
    MetricsConfig,
    OutputItem,
    RedisCacheConfig,
    load_item,
)


@dataclass(frozen=True)
class ConnectorSpec:
    """One connector the block uses, typed by its integration's schema."""

    domain: str
    name: str
    config: Any


@dataclass(frozen=True)
class InputSpec:
    """One input item: which connector, how often, which columns, renamed how."""

    domain: str
    name: str
    connector: str  # the connector's name (the item's ``source`` key, the seed's word)
    time_interval: float
    columns: tuple[str, ...]
    ref_cols: tuple[tuple[str, str], ...]
    item: InputItem


@dataclass(frozen=True)
class OutputSpec:
    """One output item: cadence, batch size, the columns of each input it sends."""

    domain: str
    name: str
    connector: str | None  # the item's ``source`` key: which connector it writes to
    time_interval: float
    cache_interval: int
    columns: Mapping[str, tuple[str, ...]]
    ref_cols: tuple[tuple[str, str], ...]
    item: OutputItem


@dataclass(frozen=True)
class CacheSpec:
    """The block's cache backend: an integration providing ``cache``, and its connector."""

    domain: str
    connector: str  # the section's ``source`` key
    max_data_points: int
    key: str = "cache"  # the block key the user wrote: ``cache``, or the seed's ``redis_cache``


@dataclass(frozen=True)
class Runtime:
    """Run-level settings."""

    debug: bool = False
    duration: float | None = None
    state_dir: Path = Path(".")
    speed: float = 1.0
    stale_after: float = 5.0
    max_time_skew: float = 86400.0  # seconds a forwarded row's time may be from the run's clock
    dry_run: bool = False
    budget_override: bool = False
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


@dataclass(frozen=True)
class RunSpec:
    """Everything the engine needs, validated."""

    block: str
    app: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    connectors: Mapping[tuple[str, str], ConnectorSpec]
    bank: BatteryBank | None
    max_data_points: int
    cache: CacheSpec | None  # None: the memory cache
    runtime: Runtime
    secrets: tuple[str, ...] = ()
    services: Mapping[str, Any] = field(default_factory=dict)  # config key -> typed section
    notices: tuple[str, ...] = ()  # one-line warnings, logged at start (legacy keys...)


# Which values are secret is decided in one place: vemonitor.secretpolicy.


def build_run(cfg: Mapping[str, Any], registry: Registry,
              origins: Mapping[str, str] | None = None) -> RunSpec:
    """Return the validated run specification of a composed configuration."""
    origins = origins or {}
    block = cfg.get("block")
    block_file = origins.get("block")
    if not isinstance(block, Mapping):
        raise ConfigError("no block selected (use block=NAME)", file=block_file, key="block")
    name = block.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("a block needs a name", file=block_file, key="block.name")
    bounds.check(cfg, bounds.RUN)
    bounds.check(block, bounds.BLOCK, "block.", block_file)
    connectors_cfg = cfg.get("appConnectors") or {}
    if not isinstance(connectors_cfg, Mapping):
        raise ConfigError("must be a mapping of integration -> connectors",
                          file=origins.get("appConnectors"), key="appConnectors")
    checker = _Checker(registry, connectors_cfg, origins, bool(block.get("seed_compat")))
    inputs = checker.inputs(block.get("inputs") or {})
    outputs = checker.outputs(block.get("outputs") or {}, {i.name for i in inputs})
    bank = _bank(block, cfg.get("batteryBanks"), origins)
    cache = checker.cache(block)
    max_points = int(block.get("max_data_points", 3600))  # in range: bounds.BLOCK
    return RunSpec(block=name, app=str(block.get("app", "")), inputs=inputs, outputs=outputs,
                   connectors=checker.used, bank=bank, max_data_points=max_points,
                   cache=cache, runtime=_runtime(cfg),
                   secrets=tuple(sorted(collect_secrets(cfg))), services=_services(cfg, registry),
                   notices=(*map(str, block.get("notices") or ()), *checker.notices))


def collect_secrets(node: Any) -> set[str]:
    """Return every secret value of a configuration (vemonitor.secretpolicy decides)."""
    return secretpolicy.collect(node)


def _runtime(cfg: Mapping[str, Any]) -> Runtime:
    """Return the run-level settings (already typed by Hydra's schema)."""
    state_dir = cfg.get("state_dir")
    metrics = cfg.get("metrics") or {}
    speed = float(cfg.get("speed", 1.0))
    if not 0 < speed <= MAX_SPEED:
        raise ConfigError(f"must be > 0 and <= {MAX_SPEED:g}, got {speed:g}", key="speed")
    duration = cfg.get("duration")
    if duration is not None and float(duration) <= 0:
        raise ConfigError(f"must be > 0 seconds, got {duration}", key="duration")
    return Runtime(
        debug=bool(cfg.get("debug", False)),
        duration=None if duration is None else float(duration),
        state_dir=Path(state_dir).expanduser() if state_dir else default_state_dir(),
        speed=speed, stale_after=float(cfg.get("stale_after", 5.0)),
        max_time_skew=float(cfg.get("max_time_skew", 86400.0)),
        dry_run=bool(cfg.get("dry_run", False)),
        budget_override=bool(cfg.get("budget_override", False)),
        metrics=MetricsConfig(port=metrics.get("port"), host=metrics.get("host", "127.0.0.1")))


def _services(cfg: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """Return each installed service's section, typed by its own schema."""
    out: dict[str, Any] = {}
    for key, service in registry.services.items():
        section = cfg.get(key) or {}
        if not isinstance(section, Mapping):
            raise ConfigError("must be a mapping", key=key)
        out[key] = load_item(service.schema, section, None, key)
    return out


def _bank(block: Mapping[str, Any], banks: Any, origins: Mapping[str, str]) -> BatteryBank | None:
    """Return the battery bank the block's args name, if any (the section is optional)."""
    args = block.get("args") or {}
    if not isinstance(args, Mapping):
        raise ConfigError("must be a mapping", file=origins.get("block"), key="block.args")
    bank_name = args.get("batteryBanks")
    if not bank_name:
        return None
    return load_bank(banks, str(bank_name), origins.get("batteryBanks") or origins.get("block"))


def _items(node: Any, key: str, file: str | None) -> list[tuple[str, dict[str, Any]]]:
    """Return (key path, item) pairs from a list of items or a mapping name -> item."""
    if isinstance(node, list):
        pairs = [(f"{key}[{i}]", item) for i, item in enumerate(node)]
    elif isinstance(node, Mapping):
        pairs = [(f"{key}.{name}", {"name": name, **item} if isinstance(item, Mapping) else item)
                 for name, item in node.items()]
    else:
        raise ConfigError("must be a list of items or a mapping name -> item", file=file, key=key)
    for path, item in pairs:
        if not isinstance(item, Mapping):
            raise ConfigError("must be a mapping", file=file, key=path)
    return [(path, dict(item)) for path, item in pairs]


class _Checker:
    """Cross-checks items against connectors and each other, remembering what is used."""

    def __init__(self, registry: Registry, connectors: Mapping[str, Any],
                 origins: Mapping[str, str], seed_compat: bool = False) -> None:
        self.registry = registry
        self.seed_compat = seed_compat
        self.notices: list[str] = []
        self.connectors = connectors
        self.block_file = origins.get("block")
        self.connectors_file = origins.get("appConnectors")
        self.used: dict[tuple[str, str], ConnectorSpec] = {}

    def inputs(self, node: Any) -> tuple[InputSpec, ...]:
        specs: list[InputSpec] = []
        for domain_key, items in self._domains(node, "block.inputs").items():
            if self._seed_noop(domain_key, "input", f"block.inputs.{domain_key}"):
                continue
            domain = self._integration(domain_key, "input", f"block.inputs.{domain_key}")
            reg = self.registry.get(domain)
            schema = reg.input_item or InputItem
            for path, raw in _items(items, f"block.inputs.{domain_key}", self.block_file):
                item = load_item(schema, raw, self.block_file, path)
                self.connector(domain, domain_key, item.source, f"{path}.source")
                specs.append(InputSpec(domain, item.name, item.source, float(item.time_interval),
                                       tuple(item.columns), self._ref_cols(item.ref_cols),
                                       item))
        self._unique([s.name for s in specs], "input", "block.inputs")
        if not specs:
            raise ConfigError("a block needs at least one input", file=self.block_file,
                              key="block.inputs")
        return tuple(specs)

    def outputs(self, node: Any, input_names: set[str]) -> tuple[OutputSpec, ...]:
        specs: list[OutputSpec] = []
        for domain_key, items in self._domains(node, "block.outputs").items():
            if self._seed_noop(domain_key, "output", f"block.outputs.{domain_key}"):
                continue
            domain = self._integration(domain_key, "output", f"block.outputs.{domain_key}")
            reg = self.registry.get(domain)
            schema = reg.output_item or OutputItem
            for index, (path, raw) in enumerate(
                    _items(items, f"block.outputs.{domain_key}", self.block_file)):
                raw.setdefault("name", f"{domain}_{index}" if index else domain)
                item = load_item(schema, raw, self.block_file, path)
                if item.source is not None and reg.connector is not None:
                    self.connector(domain, domain_key, item.source, f"{path}.source")
                for input_name in item.columns:
                    if input_name not in input_names:
                        raise ConfigError(
                            f"unknown input '{input_name}' (inputs: "
                            f"{', '.join(sorted(input_names))})", file=self.block_file,
                            key=f"{path}.columns.{input_name}")
                columns = {k: tuple(v) for k, v in item.columns.items()}
                specs.append(OutputSpec(domain, item.name, item.source,
                                        float(item.time_interval), item.cache_interval, columns,
                                        self._ref_cols(item.ref_cols), item))
        self._unique([s.name for s in specs], "output", "block.outputs")
        return tuple(specs)

    def cache(self, block: Mapping[str, Any]) -> CacheSpec | None:
        """Return the block's cache backend (``cache``, or the seed's ``redis_cache``)."""
        key, node, implied = cache_section(block)
        if node is None:
            return None
        if not isinstance(node, Mapping):
            wanted = "'domain', 'source'" if implied is None else "'source'"
            raise ConfigError(f"must be a mapping with {wanted} and 'max_data_points'",
                              file=self.block_file, key=key)
        # The seed's section is typed by its own keys, so an unknown key lists those.
        schema = CacheConfig if implied is None else RedisCacheConfig
        config: RedisCacheConfig = load_item(schema, node, self.block_file, key)
        domain_key, where = ((config.domain, f"{key}.domain") if isinstance(config, CacheConfig)
                             else (str(implied), key))
        domain = self._integration(domain_key, "cache", where)
        self.connector(domain, domain, config.source, f"{key}.source")
        return CacheSpec(domain, config.source, config.max_data_points, key.removeprefix("block."))

    def connector(self, domain: str, domain_key: str, name: str, key: str) -> ConnectorSpec:
        """Return (and remember) the connector ``name`` of ``domain``, typed."""
        if (domain, name) in self.used:
            return self.used[(domain, name)]
        group_key, group = self._connector_group(domain, domain_key)
        if name not in group:
            available = ", ".join(sorted(map(str, group))) or "none"
            raise ConfigError(f"unknown source '{name}' (appConnectors.{group_key}: {available})",
                              file=self.block_file, key=key)
        reg = self.registry.get(domain)
        raw = group[name]
        path = f"appConnectors.{group_key}.{name}"
        if not isinstance(raw, Mapping):
            raise ConfigError("must be a mapping", file=self.connectors_file, key=path)
        config = load_item(reg.connector, raw, self.connectors_file, path) if reg.connector else raw
        if not getattr(config, "active", True):
            raise ConfigError(f"connector '{name}' is used but not active", file=self.block_file,
                              key=key)
        spec = ConnectorSpec(domain, name, config)
        self.used[(domain, name)] = spec
        return spec

    def _connector_group(self, domain: str, domain_key: str) -> tuple[str, Mapping[str, Any]]:
        """Return the appConnectors section of a domain (found by its name or an alias)."""
        names = [domain_key, domain, *self.registry.manifests[domain].aliases]
        for group_key in dict.fromkeys(names):
            group = self.connectors.get(group_key)
            if group is not None:
                if not isinstance(group, Mapping):
                    raise ConfigError("must be a mapping of connector name -> settings",
                                      file=self.connectors_file, key=f"appConnectors.{group_key}")
                return group_key, group
        return domain, {}

    def _domains(self, node: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(node, Mapping):
            raise ConfigError("must be a mapping of integration -> items", file=self.block_file,
                              key=key)
        return node

    def _integration(self, domain_key: str, role: str, key: str) -> str:
        """Return the integration domain for a key, checking it provides ``role``."""
        domain = self.registry.canonical(domain_key)
        try:
            reg = self.registry.get(domain)
        except IntegrationError as err:
            raise ConfigError(str(err), file=self.block_file, key=key) from err
        if role not in reg.manifest.provides:
            raise ConfigError(f"integration '{domain}' provides no {role} "
                              f"(it provides: {', '.join(reg.manifest.provides)})",
                              file=self.block_file, key=key)
        return domain

    def _seed_noop(self, domain_key: str, role: str, key: str) -> bool:
        """Return True (and say so once) for seed workers no integration here implements.

        Only in a legacy block: the seed's schemas name them (influxDb2, tuya, serial
        outputs), so they are accepted; the items go to the integration of
        SEED_DOMAINS[domain_key] as soon as one providing ``role`` is registered.
        """
        if not self.seed_compat or domain_key not in SEED_DOMAINS:
            return False
        domain = self.registry.canonical(SEED_DOMAINS[domain_key])
        manifest = self.registry.manifests.get(domain)
        if manifest is not None and role in manifest.provides:
            return False
        self.notices.append(f"{self.block_file}: {key}: vemonitor_m8 '{domain_key}' {role}s are "
                            f"accepted but do nothing: no integration provides them here")
        return True

    def _unique(self, names: list[str], what: str, key: str) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ConfigError(f"duplicate {what} name '{name}'", file=self.block_file,
                                  key=key)
            seen.add(name)

    @staticmethod
    def _ref_cols(pairs: list[list[str]]) -> tuple[tuple[str, str], ...]:
        """Return the pairs as tuples (their shape was checked by the item's schema)."""
        return tuple((standard, column) for standard, column in pairs)
