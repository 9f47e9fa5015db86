"""Injected time: the engine, the readers and the simulator ask a Clock, never ``time``.

Two readings: ``now()`` is the wall clock (epoch seconds: what rows are stamped with),
``monotonic()`` never steps (what the engine schedules ticks on, so an NTP step,
``date -s`` or an RTC correction moves the stamps, never the rate; see
:mod:`vemonitor.engine.schedule`). Both run at the clock's speed.

``SystemClock`` is wall time; ``ScaledClock`` runs ``speed`` times faster than a
base clock from a chosen origin, so the simulator and the engine can share one
accelerated timeline (an hour of device time in 30 s at speed 120);
``ManualClock`` only moves when told to (unit tests; ``step`` moves its wall clock alone,
as ``date -s`` does).

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

    def monotonic(self) -> float:
        """Return a time that never steps (its origin means nothing; only differences do)."""
        ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``seconds`` of this clock's time; return True early when ``stop`` is set."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    def monotonic(self) -> float:
        """Return ``time.monotonic()`` (CLOCK_MONOTONIC: no steps, no suspend time)."""
        return time.monotonic()

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
        self._monotonic = start
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the manual time."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Return the manual monotonic time (it starts at ``start``; ``step`` leaves it)."""
        with self._lock:
            return self._monotonic

    def step(self, seconds: float) -> None:
        """Step the wall clock alone by ``seconds``, either way (an NTP step, ``date -s``)."""
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Advance time instead of waiting."""
        self.advance(seconds)
        return stop is not None and stop.is_set()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backwards)."""
        with self._lock:
            self._now += max(0.0, seconds)
            self._monotonic += max(0.0, seconds)


class ScaledClock:
    """Time running ``speed`` times faster than a base clock, from ``origin``."""

    def __init__(self, base: Clock | None = None, speed: float = 1.0,
                 origin: float | None = None) -> None:
        check_speed(speed)
        self.base: Clock = base or SystemClock()
        self.speed = speed
        self._base0 = self.base.now()
        self._monotonic0 = self.base.monotonic()
        self._origin = self._base0 if origin is None else origin

    def now(self) -> float:
        """Return scaled time: origin + elapsed base time x speed."""
        return self._origin + (self.base.now() - self._base0) * self.speed

    def monotonic(self) -> float:
        """Return scaled monotonic time, equal to ``now()`` until the base's wall steps."""
        return self._origin + (self.base.monotonic() - self._monotonic0) * self.speed

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``seconds`` of scaled time (``seconds / speed`` of base time)."""
        return self.base.sleep(max(seconds, 0.0) / self.speed, stop)


def check_speed(speed: float) -> None:
    """Raise ValueError unless 0 < speed <= MAX_SPEED."""
    if not 0 < speed <= MAX_SPEED:
        raise ValueError(f"speed must be > 0 and <= {MAX_SPEED:g}, got {speed:g}")
