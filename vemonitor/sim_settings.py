"""The run-level ``simulator.*`` keys, checked before anything starts (one line, exit 2).

``simulator.start`` (``HH:MM`` or ``HH:MM:SS``) is the local time of day the simulated
day starts at: ``simulator.start=12:00`` shows a charging system at any hour. It shifts
the simulated sun and midnight only (as a time zone would); rows keep the real time, so
the store and every sink see ordinary, current timestamps.

hw_sim is imported only when a run asks for simulated devices (the core never needs it).
"""

from __future__ import annotations

import time
from datetime import datetime

from vemonitor.config.errors import ConfigError
from vemonitor.config.schema import SimulatorConfig

DAY_S = 86400


def check(sim: SimulatorConfig) -> None:
    """Raise a ConfigError naming the simulator key that is wrong (kinds, faults, start)."""
    if not sim.devices:
        return
    from hw_sim.faults import parse_faults
    from hw_sim.simulator import name_devices

    try:
        name_devices(sim.devices)
    except ValueError as err:
        raise ConfigError(str(err), key="simulator.devices") from err
    try:
        parse_faults(sim.faults)
    except ValueError as err:
        raise ConfigError(f"{err} (give it quoted: 'simulator.faults=\"corrupt=0.05,hex=0.2\"')",
                          key="simulator.faults") from err
    if sim.start is not None:
        start_seconds(sim.start)


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


def utc_offset(start: str | None, now: float | None = None) -> float | None:
    """Return the simulated day's UTC offset making the local time ``start`` now (None: real)."""
    if start is None:
        return None
    now = time.time() if now is None else now
    return float((start_seconds(start) - int(now) % DAY_S) % DAY_S)
