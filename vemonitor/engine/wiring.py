"""Wiring: from a validated RunSpec to the cache, sources and workers of a run (no I/O).

Validation (:func:`vemonitor.job.prepare_run`) wires a run once and throws it
away: every source and sink is built without I/O (their contract), so a sink's
own settings are checked before anything starts. The engine wires the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vemonitor.api import (
    Cache,
    ConfigError,
    Context,
    InputInfo,
    IntegrationError,
    ProvidesControls,
    PushesUpdates,
    ServesItems,
    Sink,
    Source,
)
from vemonitor.clock import Clock
from vemonitor.config.build import OutputSpec, RunSpec
from vemonitor.datacache import DataCache
from vemonitor.engine.workers import InputWorker, OutputWorker
from vemonitor.middlewares import Step, bank_step, chain
from vemonitor.outbox import MemoryOutbox, Outbox, OutboxLimits, outbox_path
from vemonitor.registry import Registration, Registry


@dataclass
class Wiring:
    """What a run is made of, built but not started."""

    context: Context
    cache: Cache
    sources: dict[str, Source] = field(default_factory=dict)  # "domain:connector" -> source
    inputs: list[InputWorker] = field(default_factory=list)
    outputs: list[OutputWorker] = field(default_factory=list)


def stale_after(spec: RunSpec) -> float:
    """Return the staleness limit in clock seconds.

    Thread and pty latency is real time, so an accelerated clock cannot judge
    staleness finer than about half a real second: the limit grows with speed.
    """
    return max(spec.runtime.stale_after, 0.5 * spec.runtime.speed)


def wire(spec: RunSpec, registry: Registry, clock: Clock, port_globs: tuple[str, ...] = (),
         wake: Callable[[], None] | None = None) -> Wiring:
    """Build cache, sources, inputs and outputs; ``wake`` is called on each pushed snapshot."""
    context = Context(clock=clock, state_dir=str(spec.runtime.state_dir),
                      debug=spec.runtime.debug, stale_after=stale_after(spec),
                      max_time_skew=spec.runtime.max_time_skew,
                      port_globs=port_globs, block=spec.block)
    wiring = Wiring(context, DataCache(spec.max_data_points))
    if spec.cache is not None:  # the memory cache unless the block names a backend
        wiring.cache = _cache_backend(spec, registry, context)
    _sources(wiring, spec, registry, wake)
    _inputs(wiring, spec, clock)
    _controls(wiring)
    _outputs(wiring, spec, registry, clock)
    return wiring


def _cache_backend(spec: RunSpec, registry: Registry, context: Context) -> Cache:
    """Return the block's cache backend (the seed's: a Redis connector holds the rows)."""
    assert spec.cache is not None
    reg = registry.get(spec.cache.domain)
    if reg.cache_factory is None:
        raise IntegrationError(f"integration '{spec.cache.domain}' provides no cache backend")
    connector = spec.connectors[(spec.cache.domain, spec.cache.connector)]
    return reg.cache_factory(connector.config, spec.cache.max_data_points, context)


def _sources(wiring: Wiring, spec: RunSpec, registry: Registry,
             wake: Callable[[], None] | None) -> None:
    """One source per connector that inputs read (one reader per serial port)."""
    for (domain, name), connector in spec.connectors.items():
        reg = registry.get(domain)
        used = any(i.domain == domain and i.connector == name for i in spec.inputs)
        if reg.source_factory is not None and used:
            source = reg.source_factory(name, connector.config, wiring.context)
            if wake is not None and isinstance(source, PushesUpdates):
                source.notify_on_update(wake)  # wake the scheduler on each new snapshot
            wiring.sources[f"{domain}:{name}"] = source


def _inputs(wiring: Wiring, spec: RunSpec, clock: Clock) -> None:
    """One worker per input item; sinks later see them through context.inputs."""
    for item in spec.inputs:
        # Ranges (and any other per-field rule) are not a step: the worker keeps a
        # row's good fields and counts the others (vemonitor.fieldpolicy).
        steps: list[Step] = []
        if spec.bank is not None:
            steps.append(bank_step(spec.bank, item.columns))
        source = wiring.sources[f"{item.domain}:{item.connector}"]
        if isinstance(source, ServesItems):  # a source serving several inputs learns each
            source.subscribe(item.item)
        wiring.inputs.append(InputWorker(item, source, chain(steps), wiring.cache,
                                         wiring.context.stale_after, clock,
                                         (spec.cache or spec).max_data_points,
                                         spec.runtime.max_time_skew))
        wiring.context.inputs[item.name] = InputInfo(
            item.name, item.domain, item.connector, item.columns,
            {col: std for std, col in item.ref_cols}, source)


def _controls(wiring: Wiring) -> None:
    """Gather the sources' device controls into ``Context.controls`` (None when none)."""
    from vemonitor.control import ControlHub, DeviceControls

    found = [c for s in wiring.sources.values() if isinstance(s, ProvidesControls)
             and isinstance(c := s.controls(), DeviceControls)]
    wiring.context.controls = ControlHub(found) if found else None


def _outputs(wiring: Wiring, spec: RunSpec, registry: Registry, clock: Clock) -> None:
    """One worker per output item, each with its sink and its outbox."""
    names = [i.spec.name for i in wiring.inputs]
    standard = {name: info.standard_names for name, info in wiring.context.inputs.items()}
    for out in spec.outputs:
        reg = registry.get(out.domain)
        sink = _sink(out, reg, spec, wiring.context)
        delivery = out.item.delivery
        limits = OutboxLimits(delivery.max_rows, delivery.max_bytes, delivery.max_age)
        outbox: Outbox | MemoryOutbox = (
            Outbox(outbox_path(spec.runtime.state_dir, out.name), out.name, limits,
                   delivery.synchronous) if reg.durable else MemoryOutbox(out.name, limits))
        wiring.outputs.append(OutputWorker(out, sink, wiring.cache, names, outbox, clock,
                                           standard))
    for worker in wiring.inputs:  # back-pressure and acknowledgement look at their readers
        worker.readers = [o for o in wiring.outputs if worker.spec.name in o.inputs]


def _sink(out: OutputSpec, reg: Registration, spec: RunSpec, context: Context) -> Sink:
    """Build an output's sink; an integration's own bug is named, not a traceback."""
    assert reg.sink_factory is not None
    connector = spec.connectors.get((out.domain, out.connector or ""))
    try:
        return reg.sink_factory(out.item, connector.config if connector else None, context)
    except (ConfigError, IntegrationError):
        raise
    except Exception as err:
        raise IntegrationError(f"output {out.name}: integration '{out.domain}' failed "
                               f"to build its sink: {type(err).__name__}: {err}") from err
