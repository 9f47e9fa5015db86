"""The simulator uses the core's clocks, so it can share one timeline with the engine."""

from vemonitor.clock import MAX_SPEED, Clock, ManualClock, ScaledClock, SystemClock, check_speed

__all__ = ["MAX_SPEED", "Clock", "ManualClock", "ScaledClock", "SystemClock", "check_speed"]
