"""Day records as rows, pure parts (issue 22 point 5): dating, keys, once per input."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from vemonitor_integrations.vedirect.history import Anchors, History, day_date, seq_offset

from vemonitor.vedirect.hex import DayRecord


def _record(seq: int, kwh: float | None = 1.5, pv: float | None = 40.0) -> DayRecord:
    return DayRecord(version=0, yield_kwh=kwh, consumed_kwh=None, battery_v_max=14.4,
                     battery_v_min=12.2, error_db=0, errors=(0, 0, 0, 0), bulk_min=100,
                     absorption_min=60, float_min=None, max_power_w=200, battery_i_max=5.5,
                     pv_v_max=pv, day_seq=seq)


def test_day_seq_wraps_at_365() -> None:
    """HSDS counts 0..364 (PROTOCOL.md): day 2 is 4 days after day 363."""
    assert seq_offset(2, 363) == 4 and seq_offset(363, 2) == -4
    assert day_date(363, 2, date(2027, 1, 3)) == date(2026, 12, 30)


def test_dates_are_stable_across_reads_restarts_and_midnight(tmp_path: Path) -> None:
    """The anchor is kept on disk: a later read (another day, another process) dates alike."""
    first = History(Anchors(str(tmp_path)))
    first.today_seq = 120
    noon = datetime(2026, 6, 10, 12).timestamp()
    row = first.add("HQ1", _record(119), noon)
    assert row is not None and datetime.fromtimestamp(row.time) == datetime(2026, 6, 9)
    later = History(Anchors(str(tmp_path)))  # a restart, two device days and 1 AM later
    later.today_seq = 122
    again = later.add("HQ1", _record(119), datetime(2026, 6, 13, 1).timestamp())
    assert again is not None and again.time == row.time
    assert first.add("HQ1", _record(120), noon) is None  # today is no row


def test_not_available_fields_are_absent_and_rows_go_once_per_input(tmp_path: Path) -> None:
    history = History(Anchors(str(tmp_path)))
    history.today_seq = 50
    now = datetime(2026, 6, 10, 12).timestamp()
    for seq in (47, 49, 48):  # out of order, as a re-read after a timeout
        history.add("HQ1", _record(seq, pv=None), now)
    rows = history.since(float("inf"), "days")
    assert [r.values["day_seq"] for r in rows] == [47, 48, 49]
    assert all(r.input == "days" and "pv_v_max" not in r.values
               and "float_min" not in r.values for r in rows)
    assert history.since(0.0, "days") == []  # handed once
    assert len(history.since(0.0, "other")) == 3  # each input gets its own
    history.add("HQ1", _record(49, kwh=2.0), now)  # the device corrected a day
    assert [r.values["yield_kwh"] for r in history.since(0.0, "days")] == [2.0]
