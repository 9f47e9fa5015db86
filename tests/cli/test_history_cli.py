"""``vemonitor history`` (issue 22 point 5): from the simulator's pty, and from a local store."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from hw_sim.simulator import Simulator
from vemonitor.history_cli import history_command

REQUIRED = {"day_seq", "yield_kwh", "max_power_w", "bulk_min", "absorption_min", "float_min",
            "battery_v_max", "battery_v_min", "pv_v_max"}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = history_command(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_port_json_prints_one_object_per_day_agreeing_with_the_device(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """31 days (30 past + today), oldest first; today is H20, the past at most H19."""
    with Simulator(["mppt"], tmp_path / "sim", speed=5.0, autostart=False) as sim:
        device = sim.devices["mppt"]
        device.hex.seed_history(30, seed=7)
        sim.start()
        status, out, err = _run(capsys, "--port", str(sim.path("mppt")), "--json")
        h19 = int(device.hex.fields["H19"])
        h20 = int(device.hex.fields["H20"])
        hsds = int(device.hex.fields["HSDS"])
    assert status == 0, err
    days = [json.loads(line) for line in out.splitlines()]
    assert len(days) == 31
    assert all(set(day) >= REQUIRED for day in days)
    assert days[-1]["day_seq"] == hsds  # today last
    assert [d["day_seq"] for d in days] == [(hsds - 30 + n) % 365 for n in range(31)]
    assert abs(days[-1]["yield_kwh"] - h20 / 100) <= 0.02
    assert sum(d["yield_kwh"] for d in days) <= h19 / 100 + 0.02


def test_store_table_csv_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows of a history input in a store: dated; not-available values print as null / -."""
    store = tmp_path / "store.sqlite"
    with sqlite3.connect(store) as db:
        db.execute('CREATE TABLE rows (source TEXT, time REAL, "values" TEXT, '
                   'PRIMARY KEY (source, time))')
        db.execute('INSERT INTO rows VALUES (?, ?, ?)', ("mppt", 1.7e9, json.dumps({"V": 12.8})))
        for n, (seq, kwh) in enumerate(((40, 1.5), (41, 2.25))):
            values = {"serial": "HQ1", "day_seq": seq, "yield_kwh": kwh, "max_power_w": 200,
                      "bulk_min": 100, "absorption_min": 60, "float_min": 120,
                      "battery_v_max": 14.4, "battery_v_min": 12.1}  # no pv_v_max
            db.execute('INSERT INTO rows VALUES (?, ?, ?)',
                       ("mppt_days", 1.7e9 + 86400 * n, json.dumps(values)))
    status, out, _ = _run(capsys, "--store", str(store), "--json")
    days = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and [d["day_seq"] for d in days] == [40, 41]
    assert days[0]["pv_v_max"] is None and days[1]["yield_kwh"] == 2.25
    assert days[1]["date"] > days[0]["date"]
    status, out, _ = _run(capsys, "--store", str(store), "--csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and [r["yield_kwh"] for r in table] == ["1.5", "2.25"]
    status, out, _ = _run(capsys, "--store", str(store))
    assert status == 0 and out.splitlines()[0].split()[:3] == ["day_seq", "date", "serial"]
    assert len(out.splitlines()) == 3


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, "--store", str(tmp_path / "none.sqlite"))
    assert status == 1 and len(err.strip().splitlines()) == 1
    status, _, err = _run(capsys, "--json")
    assert status == 2 and len(err.strip().splitlines()) == 1


def test_a_port_held_by_another_process_is_refused_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`history --port` takes the daemon's exclusive lock (vemonitor/control_cli.py): while
    another process holds the port (here a holder with the same flock the daemon's reader
    takes) it says so in one line, exit 1, and reads none of that process's bytes."""
    import serial

    from vemonitor.serial_reader import SERIAL_SETTINGS
    with Simulator(["mppt"], tmp_path / "sim", speed=5.0) as sim:
        holder = serial.Serial(str(sim.path("mppt")), timeout=0, exclusive=True,
                               **SERIAL_SETTINGS)
        try:
            status, out, err = _run(capsys, "--port", str(sim.path("mppt")), "--json")
        finally:
            holder.close()
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "is in use by another process" in err
