"""Injected time: the engine, the readers and the simulator ask a Clock, never ``time``.

``SystemClock`` is wall time; ``ScaledClock`` runs ``speed`` times faster than a
base clock from a chosen origin, so the simulator and the engine can share one
accelerated timeline (an hour of device time in 30 s at speed 120);
``ManualClock`` only moves when told to (unit tests).

``sleep(seconds, stop)`` returns True as soon as the optional ``stop`` event is
set, so a long wait never delays a shutdown.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

# Above this the simulator's writer threads spend their time catching up.
MAX_SPEED = 1000.0


class Clock(Protocol):
    """What every time-dependent part needs: epoch seconds and a way to wait."""

    def now(self) -> float:
        """Return the current time as epoch seconds."""
        ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``seconds`` of this clock's time; return True early when ``stop`` is set."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait for real, waking early when ``stop`` is set."""
        if stop is not None:
            return stop.wait(max(seconds, 0.0))
        if seconds > 0:
            time.sleep(seconds)
        return False


class ManualClock:
    """A clock that only moves when told to; ``sleep`` advances it instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the manual time."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Advance time instead of waiting."""
        self.advance(seconds)
        return stop is not None and stop.is_set()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backwards)."""
        with self._lock:
            self._now += max(0.0, seconds)


class ScaledClock:
    """Time running ``speed`` times faster than a base clock, from ``origin``."""

    def __init__(self, base: Clock | None = None, speed: float = 1.0,
                 origin: float | None = None) -> None:
        check_speed(speed)
        self.base: Clock = base or SystemClock()
        self.speed = speed
        self._base0 = self.base.now()
        self._origin = self._base0 if origin is None else origin

    def now(self) -> float:
        """Return scaled time: origin + elapsed base time x speed."""
        return self._origin + (self.base.now() - self._base0) * self.speed

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``seconds`` of scaled time (``seconds / speed`` of base time)."""
        return self.base.sleep(max(seconds, 0.0) / self.speed, stop)


def check_speed(speed: float) -> None:
    """Raise ValueError unless 0 < speed <= MAX_SPEED."""
    if not 0 < speed <= MAX_SPEED:
        raise ValueError(f"speed must be > 0 and <= {MAX_SPEED:g}, got {speed:g}")
