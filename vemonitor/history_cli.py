"""``vemonitor history --port PATH | --store PATH [--csv | --json]``: the MPPT's own days.

* ``--port``: reads the device's history over HEX (0x104F, then each available day
  record, HEX.md §4), asked "on demand" through the same
  :class:`vemonitor.hex_session.HexSession` rules as the daemon. Day 0 is today
  (still growing).
* ``--store``: the day rows a daemon's ``history: true`` inputs wrote to a local
  SQLite store (rows holding ``serial`` and ``day_seq``), with their dates.

Output: a table (default), ``--csv``, or ``--json``: one JSON object per day and per
line, with at least day_seq, yield_kwh, max_power_w, bulk_min, absorption_min,
float_min, battery_v_max, battery_v_min, pv_v_max; ``null`` where the device says not
available. Oldest day first. Exit status: 0 printed, 1 no history (no reply, no
rows, port or file error), 2 a command-line mistake. Every error is one line.
"""

from __future__ import annotations

import argparse
import csv
import json
import select
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import serial

from vemonitor import control_cli
from vemonitor import hex_session as hs
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.hex import DayRecord, TotalRecord
from vemonitor.vedirect.hex_registers import HISTORY_DAY0, HISTORY_DAYS, HISTORY_TOTAL

FAILED, USAGE = 1, 2
TEXT_WAIT_S = 3.0  # a device sends a block every second
READ_LIMIT_S = 30.0  # 32 requests, 1 s timeout each at worst, and a margin
# Printed columns, in order (DayRecord fields, HEX.md §4.1).
COLUMNS = ("day_seq", "date", "serial", "yield_kwh", "max_power_w", "bulk_min",
           "absorption_min", "float_min", "battery_v_max", "battery_v_min", "pv_v_max",
           "battery_i_max", "consumed_kwh")


class HistoryError(Exception):
    """A failure to report as one line, with its exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise HistoryError(f"{self.prog}: {message} (see --help)", USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vemonitor history",
                     description="Print an MPPT's day history: from the device (--port) "
                                 "or from a local store (--store).")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port or simulator link of the MPPT")
    where.add_argument("--store", help="a local SQLite store (the sqlite output's file)")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="one JSON object per day")
    shape.add_argument("--csv", action="store_true", help="CSV with a header line")
    return parser


def record_dict(record: DayRecord, serial: str | None = None) -> dict[str, Any]:
    """Return a day record as a printable mapping (None = not available)."""
    out: dict[str, Any] = {name: getattr(record, name) for name in COLUMNS
                           if name not in ("date", "serial")}
    out["serial"] = serial
    out["date"] = None  # the device has no clock; the daemon's store dates each day
    return out


# ------------------------------------------------------------------ from a port
def read_port(port: str) -> list[dict[str, Any]]:
    """Read the total and every available day from the device on ``port``; oldest first."""
    try:  # the daemon's lock: never read beside it, whose bytes these would steal
        link = control_cli.open_exclusive(port)
    except control_cli.ControlCliError as err:
        raise HistoryError(str(err)) from err
    try:
        days = _converse(link, port)
    finally:
        link.close()
    return [record_dict(days[n]) for n in sorted(days, reverse=True)]


def _converse(link: serial.Serial, port: str) -> dict[int, DayRecord]:
    """Ask 0x104F, then each day; return {n: record} (n = days ago)."""
    session = hs.HexSession()
    decoder = Decoder()
    session.submit(hs.get(HISTORY_TOTAL, on_demand=True))
    pending, days, blocks = 1, {}, 0
    started = time.monotonic()
    while pending:
        now = time.monotonic()
        if blocks == 0 and now - started > TEXT_WAIT_S:
            raise HistoryError(f"{port}: no VE.Direct block within {TEXT_WAIT_S:g} s: not a "
                               "VE.Direct device, or no data on this port")
        if now - started > READ_LIMIT_S:
            raise HistoryError(f"{port}: the history did not arrive within {READ_LIMIT_S:g} s")
        if select.select([link.fileno()], [], [], 0.05)[0]:
            events = decoder.feed(link.read(4096), now)
            blocks += sum(1 for e in events if type(e).__name__ == "Block")
            session.on_events(events, now, idle=decoder.pending == 0)
        line = session.outgoing(now)
        if line is not None:
            link.write(line)
        for outcome in session.take_outcomes():
            pending -= 1
            value = outcome.reading.value if outcome.reading is not None else None
            if isinstance(value, TotalRecord):
                for n in range(min(value.days, HISTORY_DAYS)):
                    session.submit(hs.get(HISTORY_DAY0 + n, on_demand=True), now)
                    pending += 1
            elif isinstance(value, DayRecord) and outcome.request.register is not None:
                days[outcome.request.register - HISTORY_DAY0] = value
            elif outcome.request.register == HISTORY_TOTAL:
                raise HistoryError(f"{port}: no history from this device "
                                   f"({hs.STATUSES.get(outcome.status, outcome.status)})")
        if session.policy == hs.NEVER:
            raise HistoryError(f"{port}: this device (BMV-60x) cannot take HEX commands")
    return days


# ----------------------------------------------------------------- from a store
def read_store(path: str) -> list[dict[str, Any]]:
    """Return the day rows (values with serial and day_seq) of a local store, oldest first."""
    if not Path(path).is_file():
        raise HistoryError(f"{path}: no such file")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            found = db.execute('SELECT time, "values" FROM rows ORDER BY time').fetchall()
    except sqlite3.Error as err:
        raise HistoryError(f"{path}: not a vemonitor store ({err})") from err
    days: list[dict[str, Any]] = []
    for when, text in found:
        try:
            values = json.loads(text)
        except ValueError:
            continue
        if isinstance(values, dict) and "day_seq" in values and "serial" in values:
            row = {name: values.get(name) for name in COLUMNS}
            row["date"] = datetime.fromtimestamp(when).date().isoformat()
            days.append(row)
    return days


# --------------------------------------------------------------------- output
def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def print_days(days: list[dict[str, Any]], shape: str) -> None:
    """Print the days as a table, CSV or JSON lines."""
    if shape == "json":
        for day in days:
            print(json.dumps(day, ensure_ascii=False))
        return
    if shape == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        for day in days:
            writer.writerow(["" if day.get(c) is None else day.get(c) for c in COLUMNS])
        return
    cells = [[_text(day.get(c)) for c in COLUMNS] for day in days]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def history_command(args: list[str]) -> int:
    """Run ``vemonitor history ...``; return the exit status."""
    try:
        opts = _parser().parse_args(args)
        days = read_port(opts.port) if opts.port else read_store(opts.store)
        if not days:
            raise HistoryError(f"{opts.port or opts.store}: no day records")
    except HistoryError as err:
        print(str(err), file=sys.stderr)
        return err.status
    print_days(days, "json" if opts.json else "csv" if opts.csv else "table")
    return 0
