"""The device's own day records take precedence over the H20/HSDS rule (issue 22 point 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vemonitor.report import daily_yield
from vemonitor.vedirect.days import record_kwh, with_records


def _t(day: int, hour: int = 0) -> float:
    return datetime(2026, 6, day, hour).timestamp()


def _live(day: int, hsds: int, h20: float, serial: str | None = "HQ1") -> list[Any]:
    """A live MPPT day: H20 growing from 0 to h20 under HSDS."""
    base: dict[str, Any] = {"HSDS": hsds} | ({"SER#": serial} if serial else {})
    return [(_t(day, h), base | {"H20": round(h20 * (h - 6) / 12, 2)}) for h in range(7, 19)]


def _record(day: int, seq: int, kwh: float, serial: str = "HQ1") -> tuple[float, dict[str, Any]]:
    return _t(day), {"serial": serial, "day_seq": seq, "yield_kwh": kwh, "max_power_w": 200}


def test_record_kwh_by_serial_and_local_date() -> None:
    rows = [_record(1, 10, 2.5), _record(2, 11, 3.0), _record(2, 40, 9.0, "HQ2"),
            (_t(3), {"V": 12.8})]
    assert record_kwh(rows) == {"HQ1": {"2026-06-01": 2.5, "2026-06-02": 3.0},
                                "HQ2": {"2026-06-02": 9.0}}
    assert with_records([("2026-06-01", 2.4), ("2026-06-03", 1.0)], {"2026-06-01": 2.5}) == [
        ("2026-06-01", 2.5), ("2026-06-03", 1.0)]


def test_report_daily_yield_prefers_the_records_of_the_same_device() -> None:
    """The rule's 2.2 for June 2 (rows missed the evening) gives way to the record's 3.0;
    June 3 (today, no record yet) keeps the rule; another serial's records are not used."""
    live = _live(2, 11, 2.2) + _live(3, 12, 1.1)
    records = record_kwh([_record(1, 10, 2.5), _record(2, 11, 3.0), _record(2, 40, 9.0, "HQ2")])
    days = dict(daily_yield(live, records))
    assert days == {"2026-06-01": 2.5, "2026-06-02": 3.0, "2026-06-03": 1.1}
    other = _live(2, 11, 2.2, serial="HQ9")
    assert dict(daily_yield(other, records)) == {"2026-06-02": 2.2}
    # The history input's own rows chart their records.
    history = [_record(1, 10, 2.5), _record(2, 11, 3.0)]
    assert dict(daily_yield(history, record_kwh(history))) == {"2026-06-01": 2.5,
                                                               "2026-06-02": 3.0}
