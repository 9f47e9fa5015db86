"""The schedule: the timers of a run and which ticks fire when. Pure: no clock, no threads.

Scheduled on the monotonic clock, stamped with the wall clock (issue 25). A tick's
``due`` is the wall time its rows are stamped with (a multiple of its interval, so
every site and output agrees on the slots); the schedule keeps ``offset``, the wall
clock minus the monotonic clock, and the engine sleeps until
:meth:`Schedule.wake_at` on the monotonic clock. At each wake the engine hands both
readings to :meth:`Schedule.observe`:

* the offset drifting a little (NTP slewing, at most 500 ppm) is followed silently;
* the offset jumping by more than :data:`STEP_REAL` real seconds is a STEP of the wall
  clock (an NTP step, ``date -s``, an RTC correction, a resume from suspend, during
  which CLOCK_MONOTONIC stands still): a timer whose next tick now lies more than an
  interval ahead (a step back) ticks at its next slot after the new wall time; one
  whose tick is now past (a step forward) fires once for the slot ending now, the
  skipped slots neither fired in a burst nor counted as skipped; the end moves with
  the clock, and the step is counted
  (back or forward) for the engine's one log line. So rows keep coming at the
  configured rate, stamped with the new wall time; a step back never leaves a gap of
  as many seconds with no row, and a step forward never fires a burst or counts
  skipped ticks. Without this, a wall-scheduled run made no row for N seconds after a
  step back of N seconds (the bug issue 25 reported).

This is what the field does: systemd timers, chrony-disciplined daemons and
Prometheus' scrape loops wait on CLOCK_MONOTONIC and take the wall time only to
label what they produce.

Tests drive the same object with a manual clock's readings
(``tests/engine/test_schedule.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

CATCH_UP_REAL_SECONDS = 2.0  # a scheduler later than this skips ticks instead of catching up
# The wall clock disagreeing with the monotonic one by more than this (real seconds) is a
# step; below it, slewing (NTP changes the rate by at most 500 ppm: 0.5 ms a second) and
# the gap between the two readings are followed silently.
STEP_REAL = 0.5


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
        self.skipped = 0  # ticks skipped after a long delay of the scheduler itself
        self.stepped_back = 0  # times the wall clock stepped back (NTP step, date -s, RTC fix)
        self.back_seconds = 0.0  # wall seconds those steps took back
        self.stepped_forward = 0  # times it stepped forward (NTP step, date -s, resume)
        self.forward_seconds = 0.0
        self.offset = 0.0  # wall clock minus monotonic clock, as last observed

    def next_due(self) -> float:
        """Return the (wall) time of the next tick, or the end if it comes first."""
        return min(min((t.due for t in self.timers), default=math.inf), self.end)

    def anchor(self, wall: float, monotonic: float) -> None:
        """Take the two clocks' readings at the start of the run."""
        self.offset = wall - monotonic

    def wake_at(self, due: float) -> float:
        """Return the monotonic time at which the wall time ``due`` is expected."""
        return due - self.offset

    def observe(self, wall: float, monotonic: float) -> float:
        """Follow the wall clock; return the seconds it stepped (0.0: no step).

        A step re-anchors the timers and the end (see the module's docstring) and is
        counted; the caller says it (one line per step).
        """
        drift = wall - monotonic - self.offset
        self.offset += drift
        if abs(drift) <= STEP_REAL * self.speed:
            return 0.0
        if drift < 0:
            self.stepped_back += 1
            self.back_seconds -= drift
        else:
            self.stepped_forward += 1
            self.forward_seconds += drift
        self.end += drift  # a run of ``duration`` seconds lasts that long
        for timer in self.timers:
            if timer.due > wall + timer.interval:  # back: its next tick is the next slot's
                timer.due = first_tick(wall, timer.interval)
            elif timer.due <= wall:  # forward: the slot now ending fires, no burst before it
                timer.due = first_tick(wall - timer.interval, timer.interval)
        return drift

    def ended(self, now: float, due: float) -> bool:
        """Return True when the wait for ``due`` was the wait for the end, and it came."""
        return now >= self.end and due == self.end

    def fire_due(self, now: float) -> None:
        """Run every tick due at ``now``.

        A short delay (thread scheduling, a busy moment) is caught up tick by tick,
        so an accelerated run gives the same rows as a real-time one; after a long
        one (the process held up: a stalled machine, a stopped process) the missed
        ticks are skipped and counted instead of being fired in a burst. "Long" is in
        real seconds: clock seconds / speed. (A wall clock step is no delay: observe()
        has moved the timers first.)
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
