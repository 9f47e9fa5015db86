"""Hardware simulator: fake VE.Direct devices on ptys, capture replay and fault injection.

The names below are imported on first use (PEP 562 ``__getattr__``), not with the
package: the daemon imports ``hw_sim.service`` for the ``simulator`` section of every
run (the services' schemas), and a run without simulated devices should not carry the
simulator, its physics and its fault injection (1.5 MiB, docs/performance.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hw_sim.clock import Clock, ManualClock, ScaledClock, SystemClock
    from hw_sim.faults import FaultConfig
    from hw_sim.physics import World
    from hw_sim.simulator import Device, Simulator, WrittenBlock

# name -> the module that defines it
_HOMES: dict[str, str] = {
    "Clock": "hw_sim.clock", "ManualClock": "hw_sim.clock", "ScaledClock": "hw_sim.clock",
    "SystemClock": "hw_sim.clock", "FaultConfig": "hw_sim.faults", "World": "hw_sim.physics",
    "Device": "hw_sim.simulator", "Simulator": "hw_sim.simulator",
    "WrittenBlock": "hw_sim.simulator",
}

__all__ = ["Clock", "Device", "FaultConfig", "ManualClock", "ScaledClock", "Simulator",
           "SystemClock", "World", "WrittenBlock"]  # = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'hw_sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
