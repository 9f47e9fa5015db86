"""Issue 25 point 3: schedule on a monotonic clock, stamp with the wall clock.

Before, ticks were due by the wall clock: a step back was only noticed as a reading
earlier than the previous one, a step forward not at all (its ticks were "skipped"
as if the process had stalled: no line, the summary's seconds grew by the step), and
the run's length was wall seconds. Now the engine sleeps on the monotonic clock, a
step either way keeps the rows coming at their rate, stamped with the new wall time,
is said in ONE line and counted (summary and metrics), and the run's seconds are
monotonic seconds.

Unit: the schedule and the engine's loop on a ManualClock whose wall clock steps.
Process: the Demo (``python -m vemonitor``) with its ``time.time()`` stepped from
outside (tests/faults/wallclock/sitecustomize.py, a faketime for Python).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from vemonitor.clock import ManualClock, ScaledClock, SystemClock
from vemonitor.engine.schedule import Schedule, Timer, first_tick

REPO = Path(__file__).resolve().parents[2]
WALLCLOCK = Path(__file__).resolve().parent / "wallclock"


def _schedule(clock: ManualClock, fired: list[float], interval: float = 1.0) -> Schedule:
    timer = Timer(interval, first_tick(clock.now(), interval), fired.append)
    schedule = Schedule([timer])
    schedule.anchor(clock.now(), clock.monotonic())
    return schedule


def _loop(schedule: Schedule, clock: ManualClock, ticks: int) -> int:
    """Do what Engine.run does for ``ticks`` wakes; return the steps it saw."""
    steps = 0
    for _ in range(ticks):
        due = schedule.next_due()
        clock.sleep(schedule.wake_at(due) - clock.monotonic())
        steps += bool(schedule.observe(clock.now(), clock.monotonic()))
        schedule.fire_due(clock.now())
    return steps


def test_a_step_back_keeps_the_rate_and_is_counted_once() -> None:
    """The wall clock steps back 60 s: the next ticks come one monotonic second apart,
    stamped with the new wall time (before: nothing for 60 s); one step counted."""
    clock = ManualClock(1000.0)
    fired: list[float] = []
    schedule = _schedule(clock, fired)
    _loop(schedule, clock, 5)
    assert fired == [1001, 1002, 1003, 1004, 1005]
    clock.step(-60.0)
    start = clock.monotonic()
    assert _loop(schedule, clock, 6) == 1
    # The wake that observes the step fires nothing (its slot lies 60 s ahead now), then
    # one tick a second, the next slot's first, stamped with the new time.
    assert fired[5:] == [947, 948, 949, 950, 951]
    assert clock.monotonic() - start <= 6.0
    assert (schedule.stepped_back, schedule.back_seconds) == (1, 60.0)
    assert schedule.stepped_forward == 0 and schedule.skipped == 0


def test_a_step_forward_fires_the_current_slot_no_burst_no_skipped_ticks() -> None:
    """An hour forward (date -s, a resume): the slot now ending fires once, then one tick a
    second; the 3600 slots between are neither fired nor counted as skipped ticks."""
    clock = ManualClock(1000.0)
    fired: list[float] = []
    schedule = _schedule(clock, fired)
    _loop(schedule, clock, 3)
    clock.step(3600.0)
    assert _loop(schedule, clock, 4) == 1
    assert fired == [1001, 1002, 1003, 4604, 4605, 4606, 4607]
    assert (schedule.stepped_forward, schedule.forward_seconds) == (1, 3600.0)
    assert schedule.skipped == 0


def test_slewing_is_followed_silently() -> None:
    """NTP slewing (the wall clock gaining 0.1 s over a few ticks) is no step."""
    clock = ManualClock(1000.0)
    fired: list[float] = []
    schedule = _schedule(clock, fired)
    for _ in range(4):
        clock.step(0.025)
        _loop(schedule, clock, 1)
    assert schedule.stepped_back == schedule.stepped_forward == 0
    assert fired == [1001, 1002, 1003, 1004]


def test_a_run_of_duration_seconds_lasts_that_long_despite_steps() -> None:
    """The end moves with the clock: a 10 s run with a 60 s step back still ends after
    10 monotonic seconds (before: 70 s), and one with a 1 h step forward not at once."""
    for step in (-60.0, 3600.0):
        clock = ManualClock(1000.0)
        fired: list[float] = []
        timer = Timer(1.0, first_tick(clock.now(), 1.0), fired.append)
        schedule = Schedule([timer], end=clock.now() + 10)
        schedule.anchor(clock.now(), clock.monotonic())
        for wake in range(100):
            if wake == 4:
                clock.step(step)
            due = schedule.next_due()
            clock.sleep(schedule.wake_at(due) - clock.monotonic())
            schedule.observe(clock.now(), clock.monotonic())
            if schedule.ended(clock.now(), due):
                break
            schedule.fire_due(clock.now())
        assert clock.monotonic() - 1000.0 <= 11.0, step
        assert len(fired) >= 8, (step, fired)


def test_clocks_give_a_monotonic_reading_that_does_not_step() -> None:
    manual = ManualClock(50.0)
    manual.step(-20.0)
    manual.sleep(1.0)
    assert (manual.now(), manual.monotonic()) == (31.0, 51.0)
    scaled = ScaledClock(manual, speed=10.0, origin=1000.0)
    manual.step(5.0)
    manual.sleep(1.0)
    assert scaled.monotonic() == 1010.0 and scaled.now() == 1060.0
    system = SystemClock()
    assert abs(system.monotonic() - time.monotonic()) < 1.0


# ---------------------------------------------------------------------- a real process
def _rows(store: Path) -> list[tuple[str, float]]:
    if not store.exists():
        return []
    conn = sqlite3.connect(store)
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'rows'").fetchone():
        conn.close()
        return []
    rows = [(source, stamp) for source, stamp
            in conn.execute("SELECT source, time FROM rows ORDER BY rowid")]  # as made
    conn.close()
    return rows


def _set_offset(path: Path, seconds: float) -> None:
    """Write the wall clock offset whole (a rename): the process never reads half a write."""
    part = path.with_suffix(".part")
    part.write_text(f"{seconds}")
    os.replace(part, path)


def _wait_for(predicate: object, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def test_a_demo_process_whose_wall_clock_steps_back_and_forward(tmp_path: Path) -> None:
    """``python -m vemonitor`` (the Demo: simulated devices on ptys, rows stamped by the
    engine) has its wall clock stepped back 120 s, then forward 600 s. Rows keep coming
    one a second per input across both steps, each step is ONE warning and counted in
    summary.json, no tick is called skipped, and the run's seconds are real seconds."""
    offset = tmp_path / "wall_offset"
    _set_offset(offset, 0)
    state = tmp_path / "state"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(WALLCLOCK), str(REPO)]),
               VEMONITOR_TEST_WALL_OFFSET=str(offset), HOME=str(tmp_path / "home"),
               XDG_STATE_HOME=str(tmp_path / "x"))
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "vemonitor", f"state_dir={state}"],
                                   env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    started = time.monotonic()
    store = state / "store.sqlite"
    try:
        _wait_for(lambda: len(_rows(store)) >= 6, 90)
        _set_offset(offset, -120)
        time.sleep(6)
        _set_offset(offset, 480)  # -120 + 600: a step forward of 600 s
        time.sleep(6)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    lived = time.monotonic() - started
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    summary = json.loads((state / "summary.json").read_text())
    assert summary["clock_steps_back"] == 1, text[-3000:]
    assert summary["clock_steps_forward"] == 1, text[-3000:]
    assert summary["skipped_ticks"] == 0
    assert summary["seconds"] <= lived  # real seconds: not the steps' 720 more
    steps = [line for line in text.splitlines() if "wall clock stepped" in line]
    assert len(steps) == 2, steps
    # The stored rows, in the order they were made: three spells (before, after the step
    # back, after the step forward), one row a second in each, none empty.
    for source in ("bmv700", "solar"):
        stamps = [stamp for name, stamp in _rows(store) if name == source]
        spells: list[list[float]] = [[stamps[0]]]
        for before, after in zip(stamps, stamps[1:], strict=False):
            if not -1 < after - before < 60:  # the clock jumped between these two rows
                spells.append([])
            spells[-1].append(after)
        assert len(spells) == 3, (source, stamps)
        assert spells[1][0] - spells[0][-1] < -100  # stamped with the stepped-back time
        assert spells[2][0] - spells[1][-1] > 500  # and with the stepped-forward one
        for spell in spells[1:]:
            assert len(spell) >= 3, (source, spells)  # rows kept coming after each step
            assert all(b - a <= 2 for a, b in zip(spell, spell[1:], strict=False)), spell


def test_rows_made_before_a_step_back_are_not_held_by_the_outputs(tmp_path: Path) -> None:
    """An input tick fired early made a row stamped 1005; the clock then steps back 60 s.
    The output's next tick (stamped 946) takes it with the rows made after the step
    (before: it waited until the new time passed 1005, 60 s, and every row behind it)."""
    from tests.engine.helpers import registry_with_recorders
    from vemonitor.config.build import build_run
    from vemonitor.engine import Engine
    from vemonitor.model import Row

    config = {"state_dir": str(tmp_path / "state"),
              "block": {"name": "central", "inputs": {"mqtt": {"fleet": {
                  "source": "broker", "topic": "fleet/{site}/{node}/state",
                  "time_interval": 1, "ack_after": 0}}},
                  "outputs": {"record": {"seen": {"cache_interval": 1}}}},
              "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": 1,
                                                    "protocol": "5"}}}}
    registry = registry_with_recorders({})
    engine = Engine(build_run(config, registry), registry, ManualClock(1000.0))
    output = engine.outputs[0]
    engine.cache.add(Row(1005.0, "fleet", {"V": 12.5}))  # made just before the step
    output.clock_stepped()
    engine.cache.add(Row(945.0, "fleet", {"V": 12.6}))  # made just after it
    output.tick(946.0)
    assert output.taken("fleet") == 2  # both rows taken at once
    engine.cache.add(Row(947.0, "fleet", {"V": 12.7}))  # a later slot's row still waits
    output.tick(947.0)
    assert output.taken("fleet") == 2


def test_clock_steps_are_metrics(tmp_path: Path) -> None:
    """The steps counted by the schedule are served as vemonitor_clock_steps{direction}."""
    from tests.engine.helpers import registry_with_recorders
    from vemonitor.config.build import build_run
    from vemonitor.engine import Engine
    from vemonitor.metrics import EngineCollector

    config = {"state_dir": str(tmp_path / "state"),
              "block": {"name": "b", "inputs": {"mqtt": {"fleet": {
                  "source": "broker", "topic": "f/{site}/{node}/state", "time_interval": 1}}},
                  "outputs": {"record": {"seen": {"cache_interval": 1}}}},
              "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": 1,
                                                    "protocol": "5"}}}}
    registry = registry_with_recorders({})
    engine = Engine(build_run(config, registry), registry, ManualClock(1000.0))
    clock = ManualClock(1000.0)
    fired: list[float] = []
    engine._schedule = _schedule(clock, fired)  # the run's schedule, driven by hand here
    clock.step(-30.0)
    _loop(engine._schedule, clock, 2)
    clock.step(30.0)
    _loop(engine._schedule, clock, 2)
    family = next(m for m in EngineCollector(engine).collect()
                  if m.name == "vemonitor_clock_steps")
    got = {s.labels["direction"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert got == {"back": 1.0, "forward": 1.0}
    assert engine.summary()["clock_steps_back"] == 1
    assert engine.summary()["clock_steps_forward"] == 1
