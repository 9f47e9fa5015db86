"""The daily-yield rule: a charger's day is its own (HSDS, or the H20 reset), not the date.

The streams are what a real MPPT sends through a night that crosses midnight: H20
keeps the day's yield until the charger wakes at dawn, then resets; HSDS counts up at
the same moment and H22 takes the finished day (hoylabs/OpenDTU-OnBattery#188).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import date, datetime

import pytest

from vemonitor.vedirect.days import daily_kwh, yield_days


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Dates are local dates: pin the zone so the stream's hours are what they say."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def at(day: int, hour: float) -> float:
    """Epoch of 2026-12-(day) at ``hour`` UTC."""
    return datetime(2026, 12, day).timestamp() + hour * 3600


def night_stream(with_hsds: bool = True, with_h22: bool = True) -> list[tuple[float, dict]]:
    """Noon of the 7th to noon of the 9th, every 30 min: two dawns, two midnights."""
    rows = []
    t, seq, today, yesterday = at(7, 12), 41, 0.31, 0.48
    while t <= at(9, 12):
        hour = (t % 86400) / 3600
        if 6.0 <= hour < 6.5:  # first light: the charger starts its day
            seq, yesterday, today = seq + 1, today, 0.0
        if 6.0 <= hour < 18.0:
            today += 0.05  # harvest by day only; nothing at night, H20 kept
        values: dict = {"H20": round(today, 2), "H19": 100.0, "PPV": 0}
        if with_hsds:
            values["HSDS"] = seq
        if with_h22:
            values["H22"] = round(yesterday, 2)
        rows.append((t, values))
        t += 1800
    return rows


def test_h20_that_survives_midnight_is_counted_once_under_the_day_it_began() -> None:
    rows = night_stream()
    days = yield_days(rows)
    assert [d.day for d in days] == [date(2026, 12, 7), date(2026, 12, 8), date(2026, 12, 9)]
    assert [d.complete for d in days] == [True, True, False]
    # The 7th's yield is the H22 read at the 8th's dawn (the H20 it had reached).
    after_roll = next(v for t, v in rows if v["HSDS"] == 42)
    assert days[0].kwh == after_roll["H22"]
    by_date = dict(daily_kwh(rows))
    dusk_7 = max(v["H20"] for t, v in rows if at(7, 12) <= t < at(8, 6))
    dusk_8 = max(v["H20"] for t, v in rows if at(8, 6.5) <= t < at(9, 6))
    assert by_date["2026-12-07"] == pytest.approx(dusk_7)
    assert by_date["2026-12-08"] == pytest.approx(dusk_8)
    assert by_date["2026-12-09"] == pytest.approx(rows[-1][1]["H20"])  # the day so far
    # The old rule (the date's highest H20) counted the 7th again on the 8th's night:
    # between midnight and dawn of the 8th H20 still read the 7th's yield.
    assert max(v["H20"] for t, v in rows if at(8, 0) <= t < at(8, 6)) == pytest.approx(dusk_7)


def test_h22_read_after_the_change_is_the_finished_days_yield() -> None:
    """H22 is the device's own total (it also has the minutes between two rows)."""
    rows = night_stream()
    for _, values in rows:
        if values["HSDS"] == 42:
            values["H22"] = 0.93  # as the device reports it, a little above our last H20
    assert dict(daily_kwh(rows))["2026-12-07"] == pytest.approx(0.93)


def test_without_hsds_the_h20_reset_delimits_the_day() -> None:
    rows = night_stream(with_hsds=False, with_h22=False)
    by_date = dict(daily_kwh(rows))
    assert sorted(by_date) == ["2026-12-07", "2026-12-08", "2026-12-09"]
    assert by_date == dict(daily_kwh(night_stream()))  # the same days, the same yields


def test_a_missed_day_does_not_take_h22_of_another_day() -> None:
    """Rows stop for two days: H22 then belongs to a day never seen; keep our own H20."""
    first = [(at(7, 12), {"H20": 0.2, "HSDS": 5, "H22": 0.4}),
             (at(7, 17), {"H20": 0.7, "HSDS": 5, "H22": 0.4})]
    later = [(at(10, 9), {"H20": 0.1, "HSDS": 8, "H22": 0.9})]
    assert daily_kwh(first + later) == [("2026-12-07", 0.7), ("2026-12-10", 0.1)]


def test_rows_without_yield_columns_and_odd_values_are_ignored() -> None:
    rows = [(at(7, 12), {"V": 12.8}), (at(7, 13), {"H20": float("nan")}),
            (at(7, 14), {"H20": True}), (at(7, 15), {"H20": 0.2, "HSDS": 3})]
    assert daily_kwh(rows) == [("2026-12-07", 0.2)]
    assert yield_days([]) == []


def test_rows_that_begin_in_the_night_date_the_first_day_before_them() -> None:
    """A report from 02:00 on the 8th: the day still held until dawn began on the 7th;
    it is not added to the 8th's own day."""
    rows = [(t, v) for t, v in night_stream() if t >= at(8, 2)]
    by_date = dict(daily_kwh(rows))
    dusk_7 = rows[0][1]["H20"]
    assert by_date["2026-12-07"] == pytest.approx(dusk_7)
    assert by_date["2026-12-08"] == pytest.approx(dict(daily_kwh(night_stream()))["2026-12-08"])
