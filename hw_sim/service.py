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
from datetime import datetime, timedelta

from hw_sim.privdir import fresh_name, private_dir
from vemonitor.api import ConfigError, ServiceContext, ServiceRun, ServiceSpec

log = logging.getLogger("vemonitor")


@dataclass
class SimulatorConfig:
    """hw_sim devices to start in-process before the inputs (the Demo block uses it)."""

    devices: list[str] = field(default_factory=list)
    dir: str | None = None
    faults: str = ""
    start: str | None = None  # local time of day the simulated day starts at (HH:MM)
    wire: str = "instant"  # hw_sim.wire: instant (a bare pty) or usb (19200 baud, FTDI)

    def validate(self) -> None:
        """Check the device kinds, the fault specification and the start time (no I/O)."""
        if self.devices:
            from hw_sim.simulator import name_devices

            try:
                name_devices(self.devices)
            except ValueError as err:
                raise ConfigError(str(err), key="simulator.devices") from err
        if self.start is not None:
            start_seconds(self.start)
        if self.wire != "instant":
            from hw_sim.wire import wire_named

            try:
                wire_named(self.wire)
            except ValueError as err:
                raise ConfigError(str(err), key="simulator.wire") from err
        if not self.faults:
            return
        from hw_sim.faults import parse_faults

        try:
            parse_faults(self.faults)
        except ValueError as err:
            raise ConfigError(f"{err} (give it quoted: 'simulator.faults=\"corrupt=0.05,"
                              f"hex=0.2\"')", key="simulator.faults") from err


def start_seconds(text: str) -> int:
    """Return the seconds after local midnight of ``HH:MM[:SS]``, or a ConfigError."""
    for pattern in ("%H:%M", "%H:%M:%S"):
        try:
            parsed = datetime.strptime(str(text).strip(), pattern)
        except ValueError:
            continue
        return parsed.hour * 3600 + parsed.minute * 60 + parsed.second
    raise ConfigError(f"must be a time of day HH:MM (e.g. 12:00), got {text!r}",
                      key="simulator.start")


def clock_start(config: SimulatorConfig, now: float) -> float | None:
    """Return where the run's clock starts: the last local ``simulator.start`` (None: now).

    ``simulator.start=12:00`` shows a charging system at any hour by starting the run's
    clock, the one the devices and the engine share, at the most recent local 12:00
    (today's, or yesterday's before noon). The simulated sun follows the local time
    of that clock, so every row is stamped with the time its sun shows: a chart never
    has the sun at midnight. The rows are in the past by up to a day (at speed=1 they
    stay behind the wall clock by that much); a second Demo run the same day writes
    rows of the same times again (the store keeps the newer).
    """
    if not config.devices or config.start is None:
        return None
    local = datetime.fromtimestamp(now)
    begin = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        seconds=start_seconds(config.start))
    if begin > local:
        begin -= timedelta(days=1)
    return begin.timestamp()


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
    from hw_sim.wire import check_speed, wire_named

    try:  # a paced wire needs real seconds: refuse a run at speed= other than 1
        check_speed(wire_named(config.wire), float(getattr(context.clock, "speed", 1.0)))
    except ValueError as err:
        raise ConfigError(str(err), key="simulator.wire") from err
    directory = config.dir or os.path.join(context.state_dir, "sim")
    faults = parse_faults(config.faults) if config.faults else None
    # private_dir: created 0700 and removed at the end when this run made it (never
    # someone else's folder, never left behind).
    with private_dir(directory) as directory, \
            Simulator(config.devices, directory, clock=context.clock, faults=faults,
                      wire=config.wire) as running:
        log.info("simulator: %s", ", ".join(f"{d.name} on {d.path}" for d in running))
        yield ServiceRun(port_globs=(os.path.join(directory, f"{LINK_PREFIX}*"),))


SERVICE = ServiceSpec(key="simulator", schema=SimulatorConfig, start=run_simulator,
                      resolvers={"vm_sim_dir": default_dir}, port_glob="ttyVE_*",
                      clock_start=clock_start)
