"""The MPPT's day rows into a real VictoriaMetrics (issue 22 point 5: written twice, stored once).

Through the simulator's pty: a simulated MPPT with 30 past days, a history input, and an
influxDb2 output on VictoriaMetrics' InfluxDB v2 write API (``/api/v2/write``). Two
daemon runs each send the 30 closed days. VictoriaMetrics keeps a series' samples by
time; with ``-dedup.minScrapeInterval`` (set by the test server, as a user deploying it
for vemonitor must: docs.victoriametrics.com, "Deduplication") a resent sample of the
same series and millisecond is stored once. Read back through /api/v1/export (the raw
samples) and /api/v1/query (what Grafana sees): each day once, at the local midnight
the local store dated it, with the day record's values.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hw_sim import Simulator
from tests.engine.test_hex_history import JumpClock, _config, _days, _run
from tests.integrations.influxdb2.servers import VictoriaMetricsServer

SPEED = 20.0


def test_day_rows_land_once_at_their_day_in_victoriametrics(tmp_path: Path) -> None:
    clock = JumpClock(SPEED)
    config = _config(tmp_path)
    with VictoriaMetricsServer(workdir=tmp_path / "vm") as vm:
        config["appConnectors"]["influxdb2"] = {"vm": {"host": vm.url, "api": "v2",
                                                       "org": "home", "auth": "unused"}}
        config["block"]["outputs"]["influxdb2"] = {"tsdb": {
            "source": "vm", "db": "vemonitor", "measurement": "mppt",
            "time_interval": 1, "cache_interval": 1, "columns": {"mppt_days": []}}}
        with Simulator(["mppt"], tmp_path / "sim", clock=clock, autostart=False) as sim:
            sim.devices["mppt"].hex.seed_history(30, seed=3)
            sim.start()
            _run(config, clock, 200)
            first = vm.samples("mppt_yield_kwh")
            _run(config, clock, 200)
            second = vm.samples("mppt_yield_kwh")
        stored = {int(t): values for t, values in _days(tmp_path / "store.sqlite")}
        assert len(stored) == 30
        # Raw samples: 30 after the first run, the same 30 after the second (dedup).
        assert len(first) == 30, len(first)
        assert sorted(first, key=lambda s: s[1]) == sorted(second, key=lambda s: s[1])
        assert max(Counter(stamp for _labels, stamp, _value in second).values()) == 1
        for _labels, stamp, value in second:
            assert stamp == int(stamp) and int(stamp) in stored  # the day's own midnight
            assert value == pytest.approx(stored[int(stamp)]["yield_kwh"])
        # What a dashboard reads (VictoriaMetrics' query API, /api/v1/query): a minute
        # after a day's midnight, within the default 5 min look-back, one series holds
        # that day's yield; a minute before it, the day before's sample is too old.
        for when, values in sorted(stored.items())[1:4]:
            data = vm.query("mppt_yield_kwh", at=when + 60)
            assert len(data["result"]) == 1, data
            assert float(data["result"][0]["value"][1]) == pytest.approx(values["yield_kwh"])
            assert vm.query("mppt_yield_kwh", at=when - 60)["result"] == []
