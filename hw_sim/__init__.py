"""Hardware simulator: fake VE.Direct devices on ptys, capture replay and fault injection."""

from __future__ import annotations

from hw_sim.clock import Clock, ManualClock, ScaledClock, SystemClock
from hw_sim.faults import FaultConfig
from hw_sim.physics import World
from hw_sim.simulator import Device, Simulator, WrittenBlock

__all__ = [
    "Clock",
    "Device",
    "FaultConfig",
    "ManualClock",
    "ScaledClock",
    "Simulator",
    "SystemClock",
    "World",
    "WrittenBlock",
]
