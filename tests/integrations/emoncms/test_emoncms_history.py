"""The MPPT's day rows into EmonCms feeds (issue 22 point 5), as a real EmonCms keeps them.

Measured by hand on emoncms 11.16.8 (REAL_SERVER.md, "Day rows"): the day rows go
through ``input/bulk`` at their own times (each day's local midnight); a feed logged
from the input keeps a past point only as its engine allows (contract_server.py,
"Feeds"). The first daemon run once left 10 of 30 days in each feed, because the days
were handed out newest first; now a back-fill round is handed out whole, oldest first
(integrations/vedirect/history.py). These tests run the daemon twice through the
simulator's pty against the contract server copying each feed engine: every day once,
at its time, nothing refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hw_sim import Simulator
from tests.engine.test_hex_history import JumpClock, _config, _days, _run
from tests.integrations.emoncms.contract_server import ContractServer
from tests.integrations.emoncms.emon_helpers import KEY

SPEED = 20.0


def _two_runs(tmp_path: Path, server: ContractServer) -> tuple[list[Any], list[Any]]:
    """Run the daemon twice on a simulated MPPT with 30 past days; return the feeds' points
    after each run."""
    clock = JumpClock(SPEED)
    config = _config(tmp_path)
    config["appConnectors"]["emoncms"] = {"local": {"addr": server.url, "apikey": KEY}}
    config["block"]["outputs"]["emoncms"] = {"em": {
        "source": "local", "time_interval": 1, "cache_interval": 1,
        "columns": {"mppt_days": []}}}
    with Simulator(["mppt"], tmp_path / "sim", clock=clock, autostart=False) as sim:
        sim.devices["mppt"].hex.seed_history(30, seed=3)
        sim.start()
        _run(config, clock, 200)
        first = server.stored()
        _run(config, clock, 200)
        second = server.stored()
    return first, second


@pytest.mark.parametrize("feed", ["phptimeseries", "phpfina"])
def test_every_day_lands_once_in_an_emoncms_feed(tmp_path: Path, feed: str) -> None:
    server = ContractServer(feed=feed, feed_interval=86400).start()
    try:
        first, second = _two_runs(tmp_path, server)
    finally:
        server.stop()
    stored = {int(t): values for t, values in _days(tmp_path / "store.sqlite")}
    assert len(stored) == 30
    assert server.dropped == []  # no day refused as "older than the feed's newest"
    assert first == second  # written twice, stored once
    seqs = {p.time: p.value for p in second if (p.node, p.name) == ("mppt_days", "day_seq")}
    yields = {p.time: p.value for p in second if (p.node, p.name) == ("mppt_days", "yield_kwh")}
    assert len(seqs) == len(yields) == 30
    for when, values in stored.items():
        # PHPTimeSeries keeps the day's own time; a 1-day PHPFina floors it to 00:00 UTC.
        at = when if feed == "phptimeseries" else when - when % 86400
        assert seqs[at] == values["day_seq"]
        assert yields[at] == pytest.approx(values["yield_kwh"])


def test_the_feed_models_refuse_a_late_past_point() -> None:
    """What the real engines do with a point older than the feed's newest (the reason the
    days must go oldest first)."""
    for feed in ("phptimeseries", "phpfina"):
        server = ContractServer(feed=feed, feed_interval=10)
        server.store("n", {"v": 1.0}, 1000)
        server.store("n", {"v": 2.0}, 990)  # older, nothing there: dropped
        server.store("n", {"v": 3.0}, 1000)  # the same time: updated
        assert [(p.time, p.value) for p in server.stored()] == [(1000, 3.0)], feed
        assert len(server.dropped) == 1, feed
    fina = ContractServer(feed="phpfina", feed_interval=10)
    for when, value in ((1000, 1.0), (1030, 2.0), (1017, 3.0)):
        fina.store("n", {"v": value}, when)
    # The slot 1010 lies between the start and the end: PHPFina writes it in place.
    assert [(p.time, p.value) for p in fina.stored()] == [(1000, 1.0), (1010, 3.0), (1030, 2.0)]
