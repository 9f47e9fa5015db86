"""The MPPT's day history back-filled into the local store (issue 22 point 5).

Through the simulator's ptys: a simulated MPPT with 30 past days. A first daemon run
stores each closed day once, keyed by serial and day_seq, dated by the device's day.
The daemon is then stopped while the device lives two more days (its clock jumps an
hour at a time, so the device rolls its day twice at first light, as it does); a
second run sees both new days, once, and none of the old ones twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from hw_sim import Simulator
from tests.engine.helpers import registry_with_recorders
from vemonitor.clock import ScaledClock, SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine

SPEED = 20.0


class JumpClock:
    """A scaled clock that a test can move forward (the device lives on while we are away)."""

    def __init__(self, speed: float) -> None:
        self.base = ScaledClock(SystemClock(), speed)
        self.offset = 0.0

    def now(self) -> float:
        return self.base.now() + self.offset

    def monotonic(self) -> float:
        return self.base.monotonic()  # the offset is a wall clock's step: not here

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        return self.base.sleep(seconds, stop)


def _config(tmp_path: Path) -> dict[str, Any]:
    sim_dir = tmp_path / "sim"
    return {
        "block": {"name": "Days", "inputs": {"serial": {
            "mppt": {"source": "mppt", "time_interval": 1, "columns": ["V", "HSDS"]},
            "mppt_days": {"source": "mppt", "time_interval": 1, "history": True},
        }}, "outputs": {"sqlite": {"store": {"time_interval": 1, "cache_interval": 1,
                                             "path": str(tmp_path / "store.sqlite")}}}},
        "appConnectors": {"serial": {"mppt": {"serialPort": str(sim_dir / "ttyVE_mppt")}}},
        "state_dir": str(tmp_path / "state"), "stale_after": 10.0, "speed": SPEED,
    }


def _days(path: Path) -> list[tuple[float, dict[str, Any]]]:
    with sqlite3.connect(path) as db:
        return [(t, json.loads(v)) for t, v in db.execute(
            'SELECT time, "values" FROM rows WHERE source = ? ORDER BY time', ("mppt_days",))]


def _run(config: dict[str, Any], clock: JumpClock, seconds: float) -> None:
    registry = registry_with_recorders({})
    spec = build_run(config, registry)
    engine = Engine(spec, registry, clock)
    try:
        engine.run(seconds)
    finally:
        engine.shutdown()


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_two_days_missed_while_stopped_are_stored_once_after(tmp_path: Path) -> None:
    clock = JumpClock(SPEED)
    config = _config(tmp_path)
    with Simulator(["mppt"], tmp_path / "sim", clock=clock, autostart=False) as sim:
        device = sim.devices["mppt"]
        device.hex.seed_history(30, seed=3)
        sim.start()
        _run(config, clock, 200)
        first = _days(tmp_path / "store.sqlite")
        serial = device.hex.serial
        hsds_before = int(device.hex.fields["HSDS"])
        # Stopped: the device lives 48 more hours, one hour at a time, a block in each.
        for _ in range(48):
            written = device.counters.blocks_written
            clock.offset += 3600.0
            assert _wait(lambda seen=written: device.counters.blocks_written > seen + 1, 30)
        hsds_after = int(device.hex.fields["HSDS"])
        _run(config, clock, 200)
        second = _days(tmp_path / "store.sqlite")
    assert (hsds_after - hsds_before) % 365 == 2, (hsds_before, hsds_after)
    # First run: the 30 seeded closed days, each once, keyed by serial and day_seq.
    assert len(first) == 30, [v["day_seq"] for _, v in first]
    assert {v["serial"] for _, v in first} == {serial}
    assert len({v["day_seq"] for _, v in first}) == 30
    # Second run: the two days closed while stopped, once each; nothing twice.
    keys = Counter((v["serial"], v["day_seq"]) for _, v in second)
    assert max(keys.values()) == 1
    new = {v["day_seq"] for _, v in second} - {v["day_seq"] for _, v in first}
    assert new == {hsds_before, (hsds_before + 1) % 365}, new
    # Dated by the device's day: consecutive day_seqs are consecutive local midnights.
    by_seq = {v["day_seq"]: t for t, v in second}
    for seq, when in by_seq.items():
        stamp = datetime.fromtimestamp(when)
        assert (stamp.hour, stamp.minute) == (0, 0)
        if (seq + 1) % 365 in by_seq:
            later = datetime.fromtimestamp(by_seq[(seq + 1) % 365])
            assert (later.date() - stamp.date()).days == 1
    # The rows hold the day record's fields (HEX.md §4.1), agreeing with the device.
    latest = next(v for _, v in second if v["day_seq"] == (hsds_before + 1) % 365)
    assert {"yield_kwh", "max_power_w", "battery_v_max", "battery_v_min"} <= set(latest)


def test_day_rows_reach_a_real_redis_once_however_often_read(tmp_path: Path,
                                                             redis_server: Any,
                                                             raw: Any) -> None:
    """Two daemon runs read the same 30 days: Redis (HmapTimeSeries) holds each day once,
    at the day's own time, with the same values as the local store."""
    clock = JumpClock(SPEED)
    config = _config(tmp_path)
    config["appConnectors"]["redis"] = {"local": {"host": "127.0.0.1",
                                                  "port": redis_server.port, "db": 0}}
    config["block"]["outputs"]["redis"] = {"days": {
        "source": "local", "time_interval": 1, "cache_interval": 1,
        "structure": "HmapTimeSeries", "redis_node": "solar", "max_items": 3600,
        "columns": {"mppt_days": []}}}
    with Simulator(["mppt"], tmp_path / "sim", clock=clock, autostart=False) as sim:
        sim.devices["mppt"].hex.seed_history(30, seed=3)
        sim.start()
        _run(config, clock, 200)
        first = raw.hgetall("solar_mppt_days")
        _run(config, clock, 200)
        second = raw.hgetall("solar_mppt_days")
    stored = _days(tmp_path / "store.sqlite")
    assert len(first) == 30 and second == first
    days = {json.loads(v)["day_seq"] for v in second.values()}
    assert len(days) == 30
    assert sorted(int(t) for t in second) == sorted(int(t) for t, _ in stored)
    for when, values in stored:
        assert json.loads(second[str(int(when))]) == values


def test_day_rows_reach_a_real_influxdb_once_however_often_read(tmp_path: Path) -> None:
    """Two runs: InfluxDB 1.x holds each device day once (same series, same time), at the
    day's own timestamp, with the day's yield."""
    from tests.integrations.influxdb2.servers import InfluxDB1Server

    clock = JumpClock(SPEED)
    config = _config(tmp_path)
    with InfluxDB1Server(workdir=tmp_path / "influx") as influx:
        influx.influxql("CREATE DATABASE vemonitor", post=True)
        config["appConnectors"]["influxdb2"] = {"legacy": {
            "host": influx.url, "api": "v1", "username": "vemonitor", "auth": "secret-pw"}}
        config["block"]["outputs"]["influxdb2"] = {"tsdb": {
            "source": "legacy", "db": "vemonitor", "time_interval": 1, "cache_interval": 1,
            "columns": {"mppt_days": []}}}
        with Simulator(["mppt"], tmp_path / "sim", clock=clock, autostart=False) as sim:
            sim.devices["mppt"].hex.seed_history(30, seed=3)
            sim.start()
            _run(config, clock, 200)
            _run(config, clock, 200)
        points = influx.points("vemonitor")
    stored = {int(t): v for t, v in _days(tmp_path / "store.sqlite")}
    assert len(points) == 30, len(points)
    for point in points:
        when = int(datetime.fromisoformat(point["time"].replace("Z", "+00:00")).timestamp()) \
            if isinstance(point["time"], str) else int(point["time"])
        assert when in stored
        assert point["yield_kwh"] == stored[when]["yield_kwh"]
