"""The simulator as a vemonitor service: ``simulator.devices=[bmv700, mppt]`` in a run.

Found by the core through the ``vemonitor.services`` entry point ``simulator``
(pyproject.toml), like an integration: the core never imports ``hw_sim``. This
module is light (it is read while the configuration is composed); the simulator
itself is imported only when devices are asked for. The devices share the run's
clock, so ``speed=`` accelerates them too, and their ``ttyVE_*`` links are added
to every serial scan of the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from hw_sim.privdir import fresh_name, private_dir
from vemonitor.api import ConfigError, ServiceContext, ServiceRun, ServiceSpec

log = logging.getLogger("vemonitor")


@dataclass
class SimulatorConfig:
    """hw_sim devices to start in-process before the inputs (the Demo block uses it)."""

    devices: list[str] = field(default_factory=list)
    dir: str | None = None
    faults: str = ""

    def validate(self) -> None:
        """Check the fault specification (no I/O)."""
        if not self.faults:
            return
        from hw_sim.faults import parse_faults

        try:
            parse_faults(self.faults)
        except ValueError as err:
            raise ConfigError(str(err), key="simulator.faults") from err


def default_dir() -> str:
    """Return this process's private, unpredictable links folder (``${vm_sim_dir:}``)."""
    return fresh_name()


@contextlib.contextmanager
def run_simulator(config: SimulatorConfig, context: ServiceContext) -> Iterator[ServiceRun]:
    """Start the configured devices for the run's length (nothing when there are none)."""
    if not config.devices:
        yield ServiceRun()
        return
    from hw_sim.faults import parse_faults
    from hw_sim.simulator import LINK_PREFIX, Simulator

    directory = config.dir or os.path.join(context.state_dir, "sim")
    faults = parse_faults(config.faults) if config.faults else None
    with private_dir(directory) as directory, \
            Simulator(config.devices, directory, clock=context.clock, faults=faults) as running:
        log.info("simulator: %s", ", ".join(f"{d.name} on {d.path}" for d in running))
        yield ServiceRun(port_globs=(os.path.join(directory, f"{LINK_PREFIX}*"),))


SERVICE = ServiceSpec(key="simulator", schema=SimulatorConfig, start=run_simulator,
                      resolvers={"vm_sim_dir": default_dir})
