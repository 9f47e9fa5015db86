"""The schedule on a manual clock: which ticks fire when, with no thread and no device."""

from __future__ import annotations

import math

from vemonitor.clock import ManualClock
from vemonitor.engine.schedule import Schedule, Timer, first_tick


def _recording(interval: float, start: float, fired: list[tuple[str, float]], name: str,
               ready: bool = False) -> Timer:
    return Timer(interval, first_tick(start, interval), lambda due: fired.append((name, due)),
                 (lambda _due: True) if ready else (lambda _due: False))


def _run(schedule: Schedule, clock: ManualClock, until: float) -> None:
    """Do what Engine.run does, with the clock jumping straight to each due time."""
    while True:
        due = schedule.next_due()
        if due > until:
            return
        clock.advance(max(due - clock.now(), 0.0))
        if schedule.ended(clock.now(), due):
            return
        schedule.fire_due(clock.now())
        schedule.fire_early(clock.now())


def test_first_tick_is_the_next_multiple_of_the_interval() -> None:
    assert first_tick(100.0, 60) == 120
    assert first_tick(120.0, 60) == 180  # strictly after: a tick at ``now`` already passed
    assert first_tick(0.5, 1) == 1


def test_ticks_fire_on_wall_clock_multiples_inputs_before_outputs() -> None:
    clock = ManualClock(1000.5)
    fired: list[tuple[str, float]] = []
    schedule = Schedule([_recording(1, clock.now(), fired, "in"),
                         _recording(2, clock.now(), fired, "out")])
    _run(schedule, clock, 1004)
    assert fired == [("in", 1001), ("in", 1002), ("out", 1002), ("in", 1003), ("in", 1004),
                     ("out", 1004)]
    assert schedule.skipped == 0


def test_the_end_stops_before_a_tick_at_the_same_time() -> None:
    clock = ManualClock(10.0)
    fired: list[tuple[str, float]] = []
    schedule = Schedule([_recording(5, clock.now(), fired, "in")], end=20.0)
    _run(schedule, clock, math.inf)
    assert fired == [("in", 15)]  # the tick at 20 is the end's: the shutdown flush takes it


def test_a_short_delay_is_caught_up_tick_by_tick() -> None:
    """A scheduler 1.5 real seconds late fires every missed tick, in order."""
    clock = ManualClock(0.0)
    fired: list[tuple[str, float]] = []
    schedule = Schedule([_recording(0.5, clock.now(), fired, "in")])
    clock.advance(2.0)
    schedule.fire_due(clock.now())
    assert [due for _, due in fired] == [0.5, 1.0, 1.5, 2.0]
    assert schedule.skipped == 0


def test_a_long_delay_skips_and_counts_instead_of_bursting() -> None:
    """After a suspend (here 1 h) only the latest due tick fires; the others are counted."""
    clock = ManualClock(0.0)
    fired: list[tuple[str, float]] = []
    schedule = Schedule([_recording(1, clock.now(), fired, "in")])
    clock.advance(3600.0)
    schedule.fire_due(clock.now())
    assert fired == [("in", 3600)]
    assert schedule.skipped == 3599


def test_lateness_is_judged_in_real_seconds_at_speed() -> None:
    """At speed 100, 150 clock seconds late is 1.5 real seconds: caught up, not skipped."""
    clock = ManualClock(0.0)
    fired: list[tuple[str, float]] = []
    schedule = Schedule([_recording(10, clock.now(), fired, "in")], speed=100)
    clock.advance(160.0)
    schedule.fire_due(clock.now())
    assert len(fired) == 16 and schedule.skipped == 0


def test_a_ready_tick_fires_early_but_never_at_or_after_the_end() -> None:
    clock = ManualClock(0.2)
    fired: list[tuple[str, float]] = []
    schedule = Schedule([_recording(1, clock.now(), fired, "in", ready=True)], end=3.0)
    schedule.fire_early(clock.now())
    assert fired == [("in", 1)]  # its row was complete: no wait for the slot's end
    schedule.fire_early(clock.now())
    schedule.fire_early(clock.now())
    assert fired == [("in", 1), ("in", 2)]  # the tick at 3 is the end's
