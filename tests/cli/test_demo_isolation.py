"""The Demo keeps its rows apart from real blocks, and its simulated day starts where asked."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from hw_sim.physics import World
from hw_sim.service import SimulatorConfig, clock_start, start_seconds
from vemonitor.errors import ConfigError


def _vemonitor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"),
               PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           *args], env=env, capture_output=True, text=True, timeout=120)


def _column(db_path: Path, source: str, column: str) -> list[float]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute("select json_extract(\"values\", '$.' || ?) from rows where source = ?",
                          (column, source)).fetchall()
    return [float(value) for (value,) in rows if value is not None]


def test_demo_rows_go_to_a_demo_store_never_the_real_one(tmp_path: Path) -> None:
    """With the default state dir, the Demo writes <state>/demo/: store, outbox and summary."""
    result = _vemonitor(tmp_path, "duration=4")
    assert result.returncode == 0, result.stderr
    state = tmp_path / "xdg" / "vemonitor"
    assert (state / "demo" / "store.sqlite").is_file()
    assert (state / "demo" / "outbox").is_dir()
    assert (state / "demo" / "summary.json").is_file()
    assert not (state / "store.sqlite").exists()  # where real blocks store their rows
    assert not (state / "outbox").exists()
    assert f"{state / 'demo' / 'store.sqlite'}" in result.stdout  # the summary says where


@pytest.mark.parametrize(("start", "sunny"), [("12:00", True), ("02:00", False)])
def test_simulator_start_sets_the_simulated_time_of_day(tmp_path: Path, start: str,
                                                        sunny: bool) -> None:
    """simulator.start=12:00: the charger makes power at any real hour; 02:00: it is night;
    and the rows are stamped with that time of day (the sun matches the clock)."""
    state = tmp_path / "state"
    result = _vemonitor(tmp_path, "duration=5", f"state_dir={state}", f"simulator.start={start}")
    assert result.returncode == 0, result.stderr
    ppv = _column(state / "store.sqlite", "solar", "PPV")
    assert ppv, "no solar rows"
    assert (min(ppv) > 0) if sunny else (max(ppv) == 0), ppv
    with sqlite3.connect(state / "store.sqlite") as db:
        first = db.execute("select min(time) from rows").fetchone()[0]
    assert datetime.fromtimestamp(first).strftime("%H:%M") == start


@pytest.mark.parametrize("start", ["06:30", "23:59", "00:00"])
def test_clock_starts_at_the_last_local_start_time(start: str) -> None:
    """The run's clock starts at the most recent local HH:MM (never in the future), and
    the model's sun (the machine's own time zone) then shows that hour."""
    now = 1_796_000_000.0
    begin = clock_start(SimulatorConfig(devices=["mppt"], start=start), now)
    assert begin is not None and now - 86400 < begin <= now
    assert datetime.fromtimestamp(begin).strftime("%H:%M") == start
    world = World(begin)
    assert abs(world.hour() - start_seconds(start) / 3600) < 1e-6
    assert clock_start(SimulatorConfig(devices=["mppt"]), now) is None
    assert clock_start(SimulatorConfig(start=start), now) is None  # no devices: real time


@pytest.mark.parametrize("text", ["noon", "25:00", "12", ""])
def test_a_bad_start_is_a_config_error_naming_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match="simulator.start"):
        start_seconds(text)


@pytest.mark.parametrize(("override", "words"), [
    ("simulator.devices=[bmv702]", "unknown device kind 'bmv702'"),
    ("simulator.faults=corrupt", "give it quoted"),
    ("simulator.start=noon", "time of day HH:MM"),
])
def test_simulator_mistakes_are_one_line_and_exit_2(tmp_path: Path, override: str,
                                                    words: str) -> None:
    """Mistakes in simulator keys: one line naming the key, exit 2, nothing started."""
    result = _vemonitor(tmp_path, "duration=3", override)
    assert result.returncode == 2
    key = override.split("=", 1)[0]
    assert result.stderr.startswith(f"vemonitor: config error: command line: {key}: "), \
        result.stderr
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
