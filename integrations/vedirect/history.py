"""The MPPT's own day history as rows (issue 22 point 5; HEX.md §4).

At each connection, after every gap in the TEXT stream and whenever the device's day
(``HSDS``) moves on, the source reads the history total (0x104F) and then each
available closed day record (0x1051 .. 0x1050 + days - 1). Each closed day becomes one
row of every input with ``history: true``:

* **Keyed** by the device's serial number and its day sequence number (``serial``,
  ``day_seq`` in the row).
* **Dated** by that day sequence number: the row's time is the local midnight of the
  day's date, counted from an anchor kept per serial number in the state directory
  (``hex_history.json``: the day_seq of "today" and the local date it was first seen
  on). The MPPT has no clock and its day rolls at first light, not at midnight
  (issue 26, days.py), so a date is computed once and then only ever counted in
  device days: a re-read, a restart or a read at 01:00 give the same time to the same
  day. Decision: the anchor's date is the host's local date at the first read; a
  first-ever read between midnight and the charger's first light dates every day one
  day late (once, consistently), unless the device's today record already holds more
  charging minutes than have passed since midnight, which proves its day began the
  day before (``History._anchor_date``).
* **Before HSDS is known**: a day record's place says which day is today (HEX.md
  §4.1: 0x1050 + n is n days before today), so the first record read dates itself,
  whether or not record 0 or TEXT ``HSDS`` came first (``History.add``).
* **Idempotent**: a day always has the same input, time and values, so a store that
  keys rows by (input, time) keeps it once however often it is written (the local
  SQLite store's INSERT OR REPLACE, InfluxDB/VictoriaMetrics points, Redis hashes,
  EmonCms at the day's timestamp). The engine forwards each day once per run
  (``since``); a new run re-sends the 30 days, which the sinks store once.
* **Handed out oldest first, once a back-fill round is settled**: the day records are
  read newest first (0x1051 is yesterday), and a real EmonCms feed drops a point older
  than its newest one (PHPTimeSeries keeps it only when a point at that exact time
  exists; PHPFina drops what lies before its first point: emoncms 11.16.8
  ``PHPTimeSeries::post_multiple``, ``PHPFina::post_multiple``, measured on that
  version). Handed out as they came, the first run stored the newest 10 of 30 days in
  EmonCms's feeds. So while the days of a round are asked (``ask``), none is handed out
  until each has an outcome (``settle``: a reply, a refusal, a timeout), or ROUND_HOLD
  seconds passed (a round whose outcomes were lost with its connection); then all go
  together, oldest first.
* Today's record (0x1050) is not a row: it is still growing (``yield_today`` and
  TEXT H20 carry it); it becomes a row once closed.

A value the device marks not available is absent from the row (``null`` in
``vemonitor history --json``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from vemonitor.api import Row
from vemonitor.vedirect.hex import DayRecord

log = logging.getLogger(__name__)

ANCHOR_FILE = "hex_history.json"
DAYS_IN_SEQ = 365  # HSDS counts 0..364 (PROTOCOL.md), then wraps
# How far back a day row may be dated: the MPPT keeps today and 30 closed days (records
# 0x1050..0x106E, HEX.md), each dated at the local midnight its day began; one day more
# for a day that began before midnight. The engine refuses older forwarded rows.
PAST_SPAN = 32 * 86400.0
# The longest a back-fill round's rows are held back (monotonic s): 32 requests, each
# answered or timed out within 1 s (HEX.md §6) after waiting for a TEXT gap (~1 s);
# beyond that an outcome was lost (the port reconnected) and the rows go anyway.
ROUND_HOLD = 120.0
# The row's columns, in order (the day record's fields, HEX.md §4.1, VR layout).
DAY_COLUMNS = ("serial", "day_seq", "yield_kwh", "consumed_kwh", "max_power_w", "bulk_min",
               "absorption_min", "float_min", "battery_v_max", "battery_v_min",
               "battery_i_max", "pv_v_max", "errors")


def seq_offset(seq: int, anchor_seq: int) -> int:
    """Return how many device days ``seq`` lies after ``anchor_seq`` (wrap-aware, ±182)."""
    diff = (seq - anchor_seq) % DAYS_IN_SEQ
    return diff - DAYS_IN_SEQ if diff > DAYS_IN_SEQ // 2 else diff


def day_date(seq: int, anchor_seq: int, anchor_date: date) -> date:
    """Return the local date of device day ``seq``, counted from the anchor."""
    return anchor_date + timedelta(days=seq_offset(seq, anchor_seq))


def midnight(day: date) -> float:
    """Return the epoch of the local midnight starting ``day``."""
    return datetime(day.year, day.month, day.day).timestamp()


def day_values(serial: str, record: DayRecord) -> dict[str, Any]:
    """Return a day record as row values; not-available fields are left out."""
    values: dict[str, Any] = {"serial": serial}
    for name in DAY_COLUMNS[1:]:
        value = getattr(record, name)
        if name == "errors":
            value = ",".join(str(code) for code in value if code) or None
        if value is not None:
            values[name] = value
    return values


class Anchors:
    """Per serial number: the day_seq of a today and its local date, kept on disk."""

    def __init__(self, state_dir: str) -> None:
        self.path = Path(state_dir) / ANCHOR_FILE
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            log.warning("%s unreadable (%s); history dates start again from today", self.path,
                        err)
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, serial: str, today_seq: int, today: date) -> tuple[int, date]:
        """Return the anchor of ``serial``; the first time, (today_seq, today) is kept."""
        with self._lock:
            data = self._load()
            entry = data.get(serial)
            if isinstance(entry, dict) and "day_seq" in entry and "date" in entry:
                try:
                    return int(entry["day_seq"]), date.fromisoformat(str(entry["date"]))
                except ValueError:
                    pass
            data[serial] = {"day_seq": today_seq, "date": today.isoformat()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
            return today_seq, today


@dataclass
class History:
    """Day rows of one connector, waiting for the history inputs to forward them."""

    anchors: Anchors
    rows: dict[tuple[str, int], Row] = field(default_factory=dict)  # (serial, day_seq) -> row
    inputs: list[str] = field(default_factory=list)  # the inputs with history: true
    today_seq: int | None = None  # the device's current day, from 0x1050 or HSDS
    today_record: DayRecord | None = None  # record 0x1050 (today), asked or pushed
    # What each history input was handed: (serial, day_seq) -> the values handed.
    delivered: dict[str, dict[tuple[str, int], Any]] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)  # day records asked, not yet settled
    round_began: float = 0.0  # monotonic time of the last ask()
    monotonic: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, records: Iterable[int]) -> None:
        """Note a back-fill round: day records ``records`` (n of 0x1050 + n) were asked."""
        with self._lock:
            self.pending = set(records)
            self.round_began = self.monotonic()

    def settle(self, n: int) -> None:
        """Note that day record ``n`` had its outcome (a reply, refusal or timeout)."""
        with self._lock:
            self.pending.discard(n)

    def _anchor_date(self, today: int, now: float) -> date:
        """Return the local date of device day ``today``, for a first-ever anchor.

        The host's local date, except when the device's today record shows more minutes
        of charging (bulk + absorption + float) than have passed since local midnight:
        that device day began before midnight (the MPPT rolls its day at first light,
        issue 26), so it is the day before. A dark day (no charging minutes) read
        between midnight and first light cannot be told apart: its days are then dated
        one day late, consistently (the anchor is kept).
        """
        local = datetime.fromtimestamp(now)
        record = self.today_record
        if record is not None and record.day_seq == today:
            charged = sum(m or 0 for m in (record.bulk_min, record.absorption_min,
                                           record.float_min))
            if charged > local.hour * 60 + local.minute:
                return local.date() - timedelta(days=1)
        return local.date()

    def _holding(self) -> bool:
        """Return True while a round's rows wait for its last outcome (lock held)."""
        return bool(self.pending) and self.monotonic() - self.round_began < ROUND_HOLD

    def add(self, serial: str, record: DayRecord, now: float, n: int | None = None) -> Row | None:
        """Turn a closed day record into a row (for every history input); None for today.

        ``n`` is the record's place (register 0x1050 + n). HEX.md §4.1: 0x1050 is today,
        0x1051 yesterday, ... so the device itself says the record's day is n days
        before its today, and today = day_seq + n (mod 365) without waiting for record
        0 or TEXT HSDS. A record of unknown place (``n`` None) is dated against
        ``today_seq`` and dropped while that is unknown.
        """
        today: int | None
        if n is not None:
            if n == 0:
                return None  # today: still growing
            today = (record.day_seq + n) % DAYS_IN_SEQ
            self.today_seq = today
        else:
            today = self.today_seq
            if today is None or seq_offset(record.day_seq, today) >= 0:
                return None  # today, or a stale record from before a roll
        anchor_seq, anchor_day = self.anchors.get(serial, today, self._anchor_date(today, now))
        when = midnight(day_date(record.day_seq, anchor_seq, anchor_day))
        row = Row(when, "", day_values(serial, record))
        with self._lock:
            self.rows[(serial, record.day_seq)] = row
        return row

    def since(self, after: float, input_name: str | None) -> list[Row]:
        """Return the day rows not yet handed to ``input_name`` (or changed since), oldest first.

        Not by time (``after`` is the engine's cursor, unused): days arrive newest
        first, and a day read again later (after a timeout) is older than the cursor.
        Each (serial, day_seq) is handed once per run unless the device changed it.
        Nothing while a back-fill round is unsettled (see the module docstring).
        """
        name = input_name or ""
        with self._lock:
            if self._holding():
                return []
            handed = self.delivered.setdefault(name, {})
            fresh = [(key, row) for key, row in self.rows.items() if handed.get(key) != row.values]
            for key, row in fresh:
                handed[key] = row.values
        return [Row(row.time, name, row.values) for _key, row in sorted(fresh, key=lambda kr: kr[1].time)]
