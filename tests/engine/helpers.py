"""Helpers for engine tests: build a run from a dict config and record what outputs send."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hw_sim import Simulator
from vemonitor.api import Context
from vemonitor.clock import ScaledClock, SystemClock
from vemonitor.config.build import RunSpec, build_run
from vemonitor.engine import Engine
from vemonitor.registry import Manifest, Registry
from vemonitor.schema import OutputItem
from vemonitor.testing import RecordingSink as Recorder  # the shipped test double


def registry_with_recorders(recorders: dict[str, Recorder]) -> Registry:
    """Return the real registry plus a 'record' output integration writing into ``recorders``."""
    registry = Registry().discover()
    registry.manifests["record"] = Manifest("record", "Recorder", "0", ("output",))

    def factory(item: OutputItem, connector: Any, ctx: Context) -> Recorder:
        return recorders.setdefault(item.name or "record", Recorder())

    registry.register("record", output_item=OutputItem, sink_factory=factory)
    return registry


def block_config(sim_dir: Path, inputs: dict[str, Any], outputs: dict[str, Any],
                 state_dir: Path, **runtime: Any) -> dict[str, Any]:
    """Return a composed-config mapping reading the simulator's pinned ports."""
    return {
        "block": {"name": "Test", "inputs": {"serial": inputs}, "outputs": outputs},
        "appConnectors": {"serial": {
            "bmv700": {"serialPort": str(sim_dir / "ttyVE_bmv700")},
            "mppt": {"serialPort": str(sim_dir / "ttyVE_mppt")},
        }},
        "state_dir": str(state_dir),
        **runtime,
    }


@contextmanager
def running(config: dict[str, Any], recorders: dict[str, Recorder], devices: list[str],
            sim_dir: Path, speed: float = 1.0, clock: ScaledClock | None = None,
            **sim_args: Any) -> Iterator[tuple[Engine, Simulator]]:
    """Start a simulator and an engine sharing one clock; yield both; stop both."""
    registry = registry_with_recorders(recorders)
    spec: RunSpec = build_run({**config, "speed": speed}, registry)
    clock = clock or ScaledClock(SystemClock(), speed)
    with Simulator(devices, sim_dir, clock=clock, **sim_args) as sim:
        engine = Engine(spec, registry, clock, port_globs=(f"{sim_dir}/ttyVE_*",))
        yield engine, sim
        engine.shutdown()
