"""Daily solar yield by the charger's own day: the one rule every daily total uses.

An MPPT solar charger has no real-time clock. Its "day" is not the calendar day:

* ``H20`` (yield today) does not reset at midnight. It resets when the charger starts
  its next day, at the first light after a long dark period, and ``HSDS`` (the day
  sequence number, 0..364, PROTOCOL.md) counts up at that moment; ``H22`` (yield
  yesterday) then holds the day that just ended. Owners see it: a charger off for the
  night kept the previous day's H20 all night, and reset it at a varying hour after
  midnight (hoylabs/OpenDTU-OnBattery#188); the chargers have no real-time clock and
  find their day from sunrises and sunsets (OpenDTU-OnBattery#1703); the SmartSolar
  manual, 3.8: the charge controller starts a new charge cycle every morning, when
  the sun starts shining.
* So the highest ``H20`` of a calendar date counts yesterday's yield again under the
  next date wherever the night crosses midnight (0.56 kWh on a night with no sun).

The rule (issue 26):

1. A device day is delimited by a change of ``HSDS``. Without ``HSDS`` in the rows, by
   ``H20`` resetting to a lower value.
2. Its yield is the ``H20`` reached before the day changes; or, when rows read after
   the change hold ``H22`` (yesterday), that ``H22`` (the device's own final figure:
   it also counts the energy of the last minutes between two of our rows). H22 is
   only trusted when the rows saw the day just before: HSDS advanced by one (not a
   missed day) and no more than a day and a half passed between the two rows.
3. It is dated by the local date on which that device day began (the time of its
   first row). The first day in the rows may have begun before them: when it ends
   (at a first light) on the date of its first row, it began the date before (a
   charger day runs from one first light to the next, so it ends on a later date than
   it began); otherwise it is dated by its first row.

When the HEX history (day records 0x1050.., HEX.md section 4) is read, its day
records take precedence over this rule: they are the device's own days, with dates
counted back from today.

``yield_days`` is pure: rows in, ``DeviceDay`` list out (the report draws it; the
Grafana dashboard's panel says the same rule in PromQL, docs/grafana).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

# Column names, device label first, then the ref_cols names a block may give them.
TODAY_COLUMNS = ("H20", "yield_today")
YESTERDAY_COLUMNS = ("H22", "yield_yesterday")
DAY_SEQ_COLUMNS = ("HSDS", "day_sequence")


@dataclass(frozen=True)
class DeviceDay:
    """One day of the charger: when it began (local date, first row) and its yield."""

    day: date
    start: float  # epoch of the first row of the day
    kwh: float
    complete: bool  # False: the day had not ended in the rows (its yield so far)


def _number(values: Mapping[str, Any], columns: Sequence[str]) -> float | None:
    for column in columns:
        value = values.get(column)
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
    return None


# HSDS steps by 1 (0..364, wrapping); a vemonitor_m8 store keeps it x 0.001 (seed_values.py).
NEXT_DAY_STEPS = (1.0, -364.0, 0.001, -0.364)
MAX_H22_GAP_S = 1.5 * 86400.0  # rows further apart may have missed a whole device day


@dataclass
class _Open:
    start: float
    seq: float | None
    best: float  # highest H20 seen in this device day
    last: float  # epoch of its last row


def yield_days(rows: Iterable[tuple[float, Mapping[str, Any]]]) -> list[DeviceDay]:
    """Return the device days of ``rows`` ((epoch, values), oldest first) with their yields."""
    days: list[DeviceDay] = []
    current: _Open | None = None
    first = True  # the first day: its beginning may be before the rows
    for time_, values in rows:
        today = _number(values, TODAY_COLUMNS)
        seq = _number(values, DAY_SEQ_COLUMNS)
        if today is None and seq is None:
            continue
        if current is None:
            current = _Open(time_, seq, today or 0.0, time_)
            continue
        if _day_changed(current, seq, today):
            yesterday = _number(values, YESTERDAY_COLUMNS)
            final = yesterday if yesterday is not None and _follows(current, seq, time_) \
                else current.best
            began = _local_date(current.start)
            if first and _local_date(time_) == began:  # ended on its first row's date
                began -= timedelta(days=1)
            days.append(DeviceDay(began, current.start, final, True))
            current, first = _Open(time_, seq, today or 0.0, time_), False
            continue
        current.last = time_
        if seq is not None:
            current.seq = seq
        if today is not None:
            current.best = max(current.best, today)
    if current is not None:
        days.append(DeviceDay(_local_date(current.start), current.start, current.best, False))
    return days


def _day_changed(current: _Open, seq: float | None, today: float | None) -> bool:
    """HSDS changed; or, without HSDS on either side, H20 fell (reset to a lower value)."""
    if seq is not None and current.seq is not None:
        return seq != current.seq
    return today is not None and today < current.best


def _follows(current: _Open, seq: float | None, time_: float) -> bool:
    """True when the new day is the one right after ``current`` (so H22 is its yield)."""
    if time_ - current.last > MAX_H22_GAP_S:
        return False
    if seq is None or current.seq is None:
        return True
    return any(abs(seq - current.seq - step) < 1e-9 for step in NEXT_DAY_STEPS)


def _local_date(epoch: float) -> date:
    return datetime.fromtimestamp(epoch).date()


def daily_kwh(rows: Iterable[tuple[float, Mapping[str, Any]]]) -> list[tuple[str, float]]:
    """Return (YYYY-MM-DD, kWh) per device day; two days that began on one date are summed."""
    totals: dict[str, float] = {}
    for found in yield_days(rows):
        key = found.day.isoformat()
        totals[key] = totals.get(key, 0.0) + found.kwh
    return sorted(totals.items())


def record_kwh(rows: Iterable[tuple[float, Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """Return serial -> {YYYY-MM-DD: kWh} of the device's own day records (issue 22).

    A day record row (``vemonitor_integrations.vedirect.history``: ``serial``,
    ``day_seq``, ``yield_kwh``) is stamped at the local midnight of its device day, so
    its date is its time's local date.
    """
    out: dict[str, dict[str, float]] = {}
    for time_, values in rows:
        kwh = _number(values, ("yield_kwh",))
        if "day_seq" not in values or values.get("serial") is None or kwh is None:
            continue
        out.setdefault(str(values["serial"]), {})[_local_date(time_).isoformat()] = kwh
    return out


def with_records(rule_days: list[tuple[str, float]], records: Mapping[str, float]
                 ) -> list[tuple[str, float]]:
    """Return the rule's daily yields with the device's own records taking precedence."""
    merged = dict(rule_days)
    merged.update(records)
    return sorted(merged.items())


__all__ = ["DeviceDay", "daily_kwh", "record_kwh", "with_records", "yield_days"]
