"""The schedule: the timers of a run and which ticks fire when. Pure: no clock, no threads.

The engine's run loop asks :meth:`Schedule.next_due` how long to sleep, then hands
the clock's time to :meth:`Schedule.fire_due` and :meth:`Schedule.fire_early`;
tests drive the same object with a manual clock's times
(``tests/engine/test_schedule.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

CATCH_UP_REAL_SECONDS = 2.0  # a scheduler later than this skips ticks instead of catching up


def _never(_due: float) -> bool:
    return False


@dataclass
class Timer:
    """One worker's ticks: every ``interval`` seconds from ``due``."""

    interval: float
    due: float
    fire: Callable[[float], Any]
    ready: Callable[[float], bool] = _never  # may the tick at ``due`` fire now?


def first_tick(now: float, interval: float) -> float:
    """Return the first multiple of ``interval`` strictly after ``now``."""
    return (math.floor(now / interval) + 1) * interval


class Schedule:
    """Timers in firing order (inputs before outputs), an end time and the clock's speed."""

    def __init__(self, timers: Sequence[Timer], end: float = math.inf, speed: float = 1.0) -> None:
        self.timers = list(timers)
        self.end = end
        self.speed = speed
        self.skipped = 0  # ticks skipped after a long delay (suspend, clock jump)
        self.stepped_back = 0  # times the clock stepped back (NTP step, date -s, RTC fix)
        self.back_seconds = 0.0  # clock seconds those steps took back (the run lasted them)

    def next_due(self) -> float:
        """Return the time of the next tick, or the end if it comes first."""
        return min(min((t.due for t in self.timers), default=math.inf), self.end)

    def ended(self, now: float, due: float) -> bool:
        """Return True when the wait for ``due`` was the wait for the end, and it came."""
        return now >= self.end and due == self.end

    def step_back(self, seconds: float, now: float) -> None:
        """The clock went back ``seconds``: move every timer and the end back with it.

        Ticks are due by the run's clock, and rows are stamped with it; without this, a
        step back of N seconds would make no row for N seconds. Each timer's next tick
        becomes its first one after ``now``; the end moves by the step, so a run of
        ``duration`` seconds lasts that long.
        """
        self.stepped_back += 1
        self.back_seconds += seconds
        self.end -= seconds
        for timer in self.timers:
            if timer.due > now + timer.interval:
                timer.due = first_tick(now, timer.interval)

    def fire_due(self, now: float) -> None:
        """Run every tick due at ``now``.

        A short delay (thread scheduling, a busy moment) is caught up tick by tick,
        so an accelerated run gives the same rows as a real-time one; after a long
        one (suspend, clock jump) the missed ticks are skipped and counted instead
        of being fired in a burst. "Long" is in real seconds: clock seconds / speed.
        """
        for timer in self.timers:
            if timer.due > now:
                continue
            late_real = (now - timer.due) / self.speed
            if late_real > CATCH_UP_REAL_SECONDS:
                behind = math.floor((now - timer.due) / timer.interval)
                self.skipped += behind
                timer.due += behind * timer.interval
            while timer.due <= now:
                timer.fire(timer.due)
                timer.due += timer.interval

    def fire_early(self, now: float) -> None:
        """Fire the next tick of each worker whose row or batch is already complete.

        Inputs come first, so an output sees the early rows it waits for. A tick
        at or after the end would never fire, so it does not fire early either.
        """
        for timer in self.timers:
            if now < timer.due < self.end and timer.ready(timer.due):
                timer.fire(timer.due)
                timer.due += timer.interval
