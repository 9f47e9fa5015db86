"""The whole pipeline against hw_sim through real ptys: rows, timestamps, batches, faults."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.engine.helpers import Recorder, block_config, running
from vemonitor.model import Batch

BMV_MAIN = ["V", "I", "P", "CE", "SOC", "Alarm", "AR", "Relay", "H2", "H17", "H18"]


def _interval_inputs() -> dict[str, dict[str, object]]:
    return {
        f"bmv_{n}s": {"source": "bmv700", "time_interval": n, "columns": BMV_MAIN}
        for n in (1, 2, 5, 10)
    }


def test_inputs_at_1_2_5_10_s_give_aligned_rows_with_exact_columns(tmp_path: Path) -> None:
    """Each input makes one row per tick, stamped on multiples of its interval, with its columns."""
    recorders: dict[str, Recorder] = {}
    outputs = {"record": {"all": {"time_interval": 1, "cache_interval": 5}}}
    config = block_config(tmp_path / "sim", _interval_inputs(), outputs, tmp_path / "state")
    with running(config, recorders, ["bmv700"], tmp_path / "sim", speed=20) as (engine, _sim):
        engine.run(60)
    summary = engine.summary()
    rec = recorders["all"]
    for n in (1, 2, 5, 10):
        rows = rec.rows(f"bmv_{n}s")
        assert rows, f"no rows for {n} s input"
        assert all(row.time % n == 0 for row in rows)
        times = [row.time for row in rows]
        assert times == sorted(set(times)), "duplicate or unordered rows"
        gaps = Counter(b - a for a, b in zip(times, times[1:]))
        assert set(gaps) == {n}, f"{n} s input has gaps {gaps}"
        assert all(set(row.values) == set(BMV_MAIN) for row in rows)
        assert summary["inputs"][f"bmv_{n}s"]["rows"] == len(rows)
    # 60 s minus start-up (the first complete cycle): nearly every 1 s tick has a row.
    assert len(rec.rows("bmv_1s")) >= 55
    assert summary["skipped_ticks"] == 0


@pytest.mark.parametrize(("time_interval", "cache_interval"), [(1, 1), (1, 5), (2, 3), (5, 2)])
def test_batches_follow_output_interval_and_cache_interval(
        tmp_path: Path, time_interval: int, cache_interval: int) -> None:
    """A batch gathers cache_interval output ticks: time_interval*cache_interval points per 1 s node."""
    recorders: dict[str, Recorder] = {}
    inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "SOC"]}}
    outputs = {"record": {"out": {"time_interval": time_interval,
                                  "cache_interval": cache_interval}}}
    # stale_after 10 device s (0.5 s real at speed 20): a scheduling delay under load is
    # not an outage; this test is about batch sizes.
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state",
                          stale_after=10.0)
    formed: list[int] = []  # the size of each batch the output handed to its sender
    with running(config, recorders, ["bmv700"], tmp_path / "sim", speed=20) as (engine, _sim):
        sender = engine.outputs[0].sender
        take = sender.take

        def recording_take(batch: Batch, now: float, token: object = None) -> None:
            formed.append(len(batch.rows))
            take(batch, now, token)

        sender.take = recording_take  # type: ignore[method-assign]
        engine.run(40)
    per_batch = time_interval * cache_interval
    full = formed[1:-1]  # first and last are partial by nature
    assert full and all(size == per_batch for size in full), full
    # The sender may deliver a backlog of whole batches as one write (a loaded machine
    # lets the outbox run ahead of the sink): never a part of one.
    delivered = [len(b.rows) for b in recorders["out"].batches[1:-1]]
    assert all(size % per_batch == 0 for size in delivered), delivered
    rows = recorders["out"].rows()
    assert len({r.time for r in rows}) == len(rows)  # each row sent exactly once


def test_mixed_intervals_deliver_every_row_exactly_once(tmp_path: Path) -> None:
    """Inputs at 1 s and 5 s with outputs at 2 s and 3 s: every row arrives once at each output."""
    recorders: dict[str, Recorder] = {}
    inputs = {"fast": {"source": "bmv700", "time_interval": 1, "columns": ["V"]},
              "slow": {"source": "mppt", "time_interval": 5, "columns": ["PPV", "H20"]}}
    outputs = {"record": {"two": {"time_interval": 2, "cache_interval": 2},
                          "three": {"time_interval": 3, "cache_interval": 4}}}
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
    with running(config, recorders, ["bmv700", "mppt"], tmp_path / "sim", speed=20) as (
            engine, _sim):
        engine.run(45)
    summary = engine.summary()
    for name in ("two", "three"):
        for source in ("fast", "slow"):
            times = [r.time for r in recorders[name].rows(source)]
            assert len(times) == len(set(times))
            assert len(times) == summary["inputs"][source]["rows"], (name, source)


def test_values_come_from_clean_frames_only_under_heavy_faults(tmp_path: Path) -> None:
    """With corrupted blocks, HEX lines and noise, every row value is one a clean frame carried."""
    recorders: dict[str, Recorder] = {}
    inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "I", "CE"]}}
    outputs = {"record": {"out": {"time_interval": 1, "cache_interval": 1}}}
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
    from hw_sim import FaultConfig
    faults = FaultConfig(corrupt=0.15, hex=0.5, hex_mid=0.3, noise=0.05, seed=3)
    with running(config, recorders, ["bmv700"], tmp_path / "sim", speed=10, faults=faults) as (
            engine, sim):
        engine.run(60)
        history = list(sim.devices["bmv700"].history)
    clean_values = {(r[0], r[1]) for block in history if block.clean for r in block.records}
    device = engine.summary()["devices"]["bmv700"]
    assert sum(device["rejected"].values()) > 0
    assert device["hex_ok"] > 0
    rows = recorders["out"].rows()
    assert len(rows) > 20
    for row in rows:
        assert ("V", str(round(row.values["V"] * 1000))) in clean_values
        assert ("I", str(round(row.values["I"] * 1000))) in clean_values


def test_unplug_and_replug_mid_run_recovers(tmp_path: Path) -> None:
    """The device vanishes for a while: rows stop (no invented values), then resume."""
    recorders: dict[str, Recorder] = {}
    inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V"]}}
    outputs = {"record": {"out": {"time_interval": 1, "cache_interval": 1}}}
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state",
                          stale_after=3)
    with running(config, recorders, ["bmv700"], tmp_path / "sim", speed=1) as (engine, sim):
        timer = threading.Timer(3.0, lambda: sim.unplug("bmv700", seconds=5.0))
        timer.start()
        engine.run(14)
        timer.cancel()
    summary = engine.summary()
    times = [r.time for r in recorders["out"].rows()]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) >= 4, f"no outage visible in {gaps}"
    assert times[-1] >= engine.stopped_at - 4, "rows did not resume after replug"
    assert summary["devices"]["bmv700"]["reconnects"] >= 1
    assert summary["inputs"]["bmv"]["missed"] >= 3


@pytest.mark.cpu_heavy  # tests/parallel.py: never two at once in a parallel run
def test_accelerated_hour_runs_in_seconds_with_real_time_semantics(tmp_path: Path) -> None:
    """An hour of device time at speed 300: one row per 10 s tick, batches as configured."""
    recorders: dict[str, Recorder] = {}
    inputs = {"bmv": {"source": "bmv700", "time_interval": 10, "columns": ["V", "SOC", "H17"]},
              "solar": {"source": "mppt", "time_interval": 60, "columns": ["PPV", "H20"]}}
    outputs = {"record": {"out": {"time_interval": 60, "cache_interval": 5}}}
    # At speed 300 the default stale_after (5 device s) is 17 ms of real time: one
    # scheduling delay on a loaded machine would count as an outage and miss a tick.
    # What this test checks is the cadence, so a device is stale only after 60 input
    # ticks without a complete cycle (600 device s = 2 s real, the scheduler's own
    # catch-up limit): with 3 ticks (100 ms real), three whole suites at once on two
    # cores starved the simulator long enough to miss 7 and 12 rows in a row.
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state",
                          stale_after=600.0)
    with running(config, recorders, ["bmv700", "mppt"], tmp_path / "sim", speed=300) as (
            engine, _sim):
        engine.run(3600)
    rows = recorders["out"].rows("bmv")
    # 360 ticks less start-up. The start-up (the simulator's first complete cycle) costs
    # real time, which speed 300 turns into device minutes on a machine loaded 30 deep:
    # the cadence (one row per tick, below) is what is tested, so the allowance is the
    # first row within 2 device minutes (0.4 s of real time) and no tick missed after it.
    assert rows[0].time - engine.started_at <= 120
    # The last row is the slot closing at the run's end (started_at + 3600, the schedule's
    # end), or the one before it: measured from the end itself, not from stopped_at,
    # which a loaded machine makes a few ms later (1 device s at speed 300: it failed
    # once at 21.04 s under three suites at once).
    assert engine.started_at + 3600 - rows[-1].time <= 20
    # No tick missed between the first row and the last: with those two allowances, at
    # least (run - 140 s) / 10 + 1 rows (347 for a whole hour; the run's own end may come
    # a scheduling delay early on a loaded machine, so it is measured, not assumed).
    assert {b - a for a, b in zip([r.time for r in rows], [r.time for r in rows][1:])} == {10}
    assert len(rows) >= (engine.stopped_at - engine.started_at - 140) // 10 + 1
    assert len(recorders["out"].rows("solar")) >= 58
    assert engine.summary()["skipped_ticks"] == 0
    sizes = [len(b.rows) for b in recorders["out"].batches[1:-1]]
    assert sizes and all(size == 5 * 6 + 5 for size in sizes)
