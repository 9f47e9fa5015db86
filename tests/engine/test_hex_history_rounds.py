"""A back-fill round's day rows go out together, oldest first (issue 22 point 5).

Why: the day records are read newest first, and a real EmonCms feed drops a point
older than its newest (contract_server.py, "Feeds"; measured on emoncms 11.16.8).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from vemonitor_integrations.vedirect.history import ROUND_HOLD, Anchors, History

from tests.engine.test_hex_history_rows import _record


class Ticks:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _history(tmp_path: Path, ticks: Ticks) -> History:
    history = History(Anchors(str(tmp_path)), monotonic=ticks)
    history.today_seq = 50
    return history


def test_rows_wait_for_the_last_outcome_of_the_round(tmp_path: Path) -> None:
    ticks = Ticks()
    history = _history(tmp_path, ticks)
    noon = datetime(2026, 6, 10, 12).timestamp()
    history.ask(range(4))  # today and 3 closed days
    for n in (0, 1, 2):  # records arrive newest first: 49, 48 (and today)
        history.settle(n)
        if n:
            history.add("HQ1", _record(50 - n), noon)
        assert history.since(0.0, "days") == []  # record 3 still out
    history.settle(3)  # refused or timed out: it settles the round all the same
    rows = history.since(0.0, "days")
    assert [r.values["day_seq"] for r in rows] == [48, 49]
    assert rows[0].time < rows[1].time


def test_a_round_whose_outcomes_were_lost_is_released_after_the_hold(tmp_path: Path) -> None:
    ticks = Ticks()
    history = _history(tmp_path, ticks)
    history.ask(range(3))
    history.settle(0)
    history.add("HQ1", _record(49), datetime(2026, 6, 10, 12).timestamp())
    ticks.now = ROUND_HOLD - 1
    assert history.since(0.0, "days") == []
    ticks.now = ROUND_HOLD + 1  # the connection went, with the round's outcomes
    assert [r.values["day_seq"] for r in history.since(0.0, "days")] == [49]


def test_without_a_round_rows_go_at_once(tmp_path: Path) -> None:
    """The pushed and on-demand records outside a round are not held."""
    history = _history(tmp_path, Ticks())
    history.add("HQ1", _record(49), datetime(2026, 6, 10, 12).timestamp())
    assert len(history.since(0.0, "days")) == 1
