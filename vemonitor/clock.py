"""Injected time: the engine, the readers and the simulator ask a Clock, never ``time``.

``SystemClock`` is wall time. ``ScaledClock`` runs ``speed`` times faster than
wall time from a chosen start, so the simulator and the engine can share one
accelerated timeline (an hour of device time in a minute at speed 60).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What every time-dependent part needs: the current epoch time and a way to wait."""

    def now(self) -> float:
        """Return the current time as epoch seconds."""

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``seconds`` of clock time; return True early if ``stop`` is set."""


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        """Return time.time()."""
        return time.time()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait in real time, waking early when ``stop`` is set."""
        if stop is None:
            time.sleep(max(seconds, 0.0))
            return False
        return stop.wait(max(seconds, 0.0))


class ScaledClock:
    """Time that runs ``speed`` times faster than wall time, from ``start``."""

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._origin_wall = time.monotonic()
        self._origin = time.time() if start is None else start

    def now(self) -> float:
        """Return the scaled epoch time."""
        return self._origin + (time.monotonic() - self._origin_wall) * self.speed

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``seconds`` of scaled time (seconds / speed of real time)."""
        real = max(seconds, 0.0) / self.speed
        if stop is None:
            time.sleep(real)
            return False
        return stop.wait(real)
