"""``vemonitor report``: one self-contained HTML page drawn from the local store.

Decisions:

* Charts are inline SVG written here (no chart library, no script, no network): the
  page opens from a USB stick or an e-mail, years later, exactly as written. A
  Content-Security-Policy forbids every external load, so a stray one would show.
* The store is the sqlite output's file (``rows(source, time, "values" JSON)``, see
  integrations/sqlite/README.md), opened read-only. ``--state-dir X`` means what
  ``state_dir=X`` means to a run: the store is ``X/store.sqlite``, for the Demo too
  (a Demo run with ``state_dir=X`` writes there). ``--demo`` only changes the default
  folder: the Demo's own ``<default state dir>/demo/``.
* Per source, the series a person looks at, when the source has them: battery voltage,
  current, SOC, PV power, consumed Ah; daily yield as bars, by the charger's own day
  (``vemonitor.vedirect.days``: HSDS delimits the day, dated by the date it began);
  alarms as intervals (``Alarm`` on, or ``AR`` not 0) with their cause.
* Never a traceback, whatever the arguments or the stored values: a bad argument is
  one line and exit 2; a stored value that is not a finite number of a sane size
  (``NaN``, a 400-digit integer, an impossible time) is left out of the charts.
* Gaps: where two rows of a source are further apart than 3 times its usual interval
  (at least 5 s) the line is broken and the span is shaded "no data": a device that was
  unavailable is never drawn as a straight line across the hole.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sqlite3
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from vemonitor.config.paths import default_state_dir
from vemonitor.vedirect import tables
from vemonitor.vedirect.days import daily_kwh, record_kwh, with_records

# (title, columns that may hold it (device label first, then ref_cols names), unit)
SERIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Voltage", ("V", "bat_voltage"), "V"),
    ("Current", ("I", "bat_current"), "A"),
    ("State of charge", ("SOC", "bat_soc"), "%"),
    ("PV power", ("PPV", "pv_power"), "W"),
    ("Consumed", ("CE", "bat_consumed"), "Ah"),
)
# Values beyond this are no device reading (a 400-digit integer, 1e308): left out of
# the charts, whose scales would otherwise overflow. The largest real ones (H19 in
# 0.01 kWh, H6 in mAh) are below 1e9.
MAX_CHART_VALUE = 1e15
# Times a report can draw: 1970 to 9998 (datetime's range; a stored 1e300 is skipped).
TIME_RANGE = (0.0, 253_370_764_800.0)  # to 9998-12-31, clear of any time zone
MAX_HOURS = 24 * 365 * 100  # --hours: a century at most
WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 920, 190, 64, 26, 12
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SourceRows = list[tuple[float, dict[str, Any]]]  # (time, values) oldest first


@dataclass(frozen=True)
class Point:
    """One value of one series at one time."""

    time: float
    value: float


class ReportError(Exception):
    """A user mistake (no store, bad period): one line, exit 2."""


# ------------------------------------------------------------------ reading
def read_store(path: Path, start: float | None, end: float | None,
               site: str | None = None) -> dict[str, SourceRows]:
    """Return series -> [(time, values)] of the store between start and end, oldest first.

    A series is an input, or, for a central input's rows (integrations/sqlite keys them
    by site too), ``<input> <site>``: two sites never mix in one chart. ``site`` keeps
    the rows of one site (``boat`` matches ``boat`` and ``boat/<node>``).
    """
    if not path.is_file():
        raise ReportError(f"no store at {path} (run a block with a sqlite output first, "
                          "or give --store PATH; the Demo's is --demo)")
    clauses: list[str] = []
    args: list[str | float] = []
    if start is not None:
        clauses.append("time >= ?")
        args.append(start)
    if end is not None:
        clauses.append("time <= ?")
        args.append(end)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            # A store of the first schema (no site column: one device per input) reads too.
            has_site = any(r[1] == "site" for r in conn.execute("PRAGMA table_info(rows)"))
            site_col = "site" if has_site else "''"
            if site is not None:
                clauses.append(f"({site_col} = ? OR {site_col} LIKE ? ESCAPE '\\')")
                escaped = site.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                args += [site, escaped + "/%"]
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            found = conn.execute(f'SELECT source, {site_col}, time, "values" FROM rows{where} '
                                 "ORDER BY time", args).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise ReportError(f"cannot read {path}: {err}") from err
    out: dict[str, SourceRows] = {}
    for source, row_site, time_, values in found:
        row = _stored_row(time_, values)
        if row is not None:
            name = f"{source} {row_site}" if row_site else str(source)
            out.setdefault(name, []).append(row)
    return out


def _stored_row(time_: object, values: object) -> tuple[float, dict[str, Any]] | None:
    """Return (time, values) of a stored row, or None when either cannot be drawn."""
    moment = _finite(time_)
    if moment is None or not TIME_RANGE[0] <= moment <= TIME_RANGE[1]:
        return None
    try:
        parsed = json.loads(values) if isinstance(values, str | bytes) else None
    except (ValueError, RecursionError):
        return None
    return (moment, parsed) if isinstance(parsed, dict) else None


def _finite(value: object) -> float | None:
    """Return ``value`` as a finite float of a drawable size, else None (never raises)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a float's range
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_CHART_VALUE * 1e3 else None


def newest_time(path: Path) -> float | None:
    """Return the newest row's time in the store (None when empty or missing)."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        value = conn.execute("SELECT max(time) FROM rows WHERE time BETWEEN ? AND ?",
                             TIME_RANGE).fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return _finite(value)


def series(rows: SourceRows, columns: tuple[str, ...]) -> list[Point]:
    """Return the numeric points of the first of ``columns`` the rows hold."""
    column = next((c for c in columns if any(c in values for _, values in rows)), None)
    if column is None:
        return []
    points = [(t, _finite(v.get(column))) for t, v in rows]
    return [Point(t, value) for t, value in points
            if value is not None and abs(value) <= MAX_CHART_VALUE]


def gap_after(times: Sequence[float]) -> float:
    """Return the spacing beyond which two rows have a hole between them."""
    steps = [b - a for a, b in zip(times, times[1:]) if b > a]
    usual = statistics.median(steps) if steps else 1.0
    return max(5.0, 3.0 * usual)


def gaps(times: Sequence[float]) -> list[tuple[float, float]]:
    """Return the (start, end) spans without data between rows."""
    limit = gap_after(times)
    return [(a, b) for a, b in zip(times, times[1:]) if b - a > limit]


def daily_yield(rows: SourceRows, records: dict[str, dict[str, float]] | None = None
                ) -> list[tuple[str, float]]:
    """Return (date, kWh) per device day (HSDS or the H20 reset delimits it; see days.py).

    The device's own day records (a ``history: true`` input in the same store) take
    precedence where present (issue 22): those of the rows' SER#, or the only device's.
    """
    days = daily_kwh(rows)
    own = _records_of(rows, records or {})
    if own and (days or _is_record_rows(rows)):
        days = with_records(days, own)
    return [(day, kwh) for day, kwh in days if abs(kwh) <= MAX_CHART_VALUE]


def _is_record_rows(rows: SourceRows) -> bool:
    return any("day_seq" in values and "yield_kwh" in values for _, values in rows)


def _records_of(rows: SourceRows, records: dict[str, dict[str, float]]) -> dict[str, float]:
    """Return the day records of the device behind ``rows`` (by SER#, or the only one)."""
    serials = {str(values.get("SER#") or values.get("serial")) for _, values in rows
               if values.get("SER#") or values.get("serial")}
    if len(serials) == 1 and (serial := serials.pop()) in records:
        return records[serial]
    return next(iter(records.values())) if len(records) == 1 and not serials else {}


def alarms(rows: SourceRows) -> list[tuple[float, float, str]]:
    """Return (start, end, cause) of each interval with the alarm on (or an alarm reason set)."""
    out: list[tuple[float, float, str]] = []
    current: tuple[float, str] | None = None
    last = 0.0
    for time_, values in rows:
        ar = values.get("AR")
        reason = ar if isinstance(ar, int) and not isinstance(ar, bool) else 0
        on = values.get("Alarm") is True or reason != 0
        if on and current is None:
            names = [n for bit, n in tables.ALARM_BITS.items() if reason & bit]
            current = (time_, ", ".join(names) or "alarm on")
        elif not on and current is not None:
            out.append((current[0], time_, current[1]))
            current = None
        last = time_
    if current is not None:
        out.append((current[0], last, current[1]))
    return out


# ------------------------------------------------------------------ drawing
def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.0f}"


def _time_label(epoch: float, span: float) -> str:
    moment = datetime.fromtimestamp(epoch)
    return moment.strftime("%H:%M" if span <= 86400 else "%m-%d %H:%M")


def line_chart(title: str, unit: str, points: list[Point], start: float, end: float) -> str:
    """Return an SVG line chart of ``points`` over [start, end], broken and shaded at gaps."""
    low = min(p.value for p in points)
    high = max(p.value for p in points)
    if high == low:
        low, high = low - 1, high + 1
    span = max(end - start, 1.0)
    plot_w, plot_h = WIDTH - PAD_LEFT - 10, HEIGHT - PAD_BOTTOM - PAD_TOP

    def x(t: float) -> float:
        return PAD_LEFT + (t - start) / span * plot_w

    def y(v: float) -> float:
        return PAD_TOP + (high - v) / (high - low) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>',
             f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" '
             'class="plot"/>']
    holes = gaps([p.time for p in points])
    for a, b in holes:
        parts.append(f'<rect class="gap" x="{x(a):.1f}" y="{PAD_TOP}" width="{x(b) - x(a):.1f}" '
                     f'height="{plot_h}"><title>no data {_time_label(a, span)} to '
                     f'{_time_label(b, span)}</title></rect>')
        if x(b) - x(a) > 50:
            parts.append(f'<text class="gaplabel" x="{(x(a) + x(b)) / 2:.1f}" '
                         f'y="{PAD_TOP + 14}">no data</text>')
    limit = gap_after([p.time for p in points])
    path: list[str] = []
    for i, point in enumerate(points):
        move = i == 0 or point.time - points[i - 1].time > limit
        path.append(f"{'M' if move else 'L'}{x(point.time):.1f},{y(point.value):.1f}")
    parts.append(f'<path class="line" d="{" ".join(path)}"/>')
    for value in (low, (low + high) / 2, high):
        parts.append(f'<text class="axis" x="{PAD_LEFT - 6}" y="{y(value) + 4:.1f}" '
                     f'text-anchor="end">{_fmt(value)} {html.escape(unit)}</text>')
    for k, anchor in enumerate(("start", "middle", "middle", "middle", "end")):
        t = start + span * k / 4
        parts.append(f'<text class="axis" x="{x(t):.1f}" y="{HEIGHT - 6}" '
                     f'text-anchor="{anchor}">{_time_label(t, span)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, unit: str, bars: list[tuple[str, float]]) -> str:
    """Return an SVG bar chart (one bar per day)."""
    high = max((v for _, v in bars), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - PAD_LEFT - 10, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / max(len(bars), 1)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>',
             f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" '
             'class="plot"/>']
    for i, (day, value) in enumerate(bars):
        h = value / high * plot_h
        bar = min(step * 0.7, 90.0)
        left = PAD_LEFT + i * step + (step - bar) / 2
        parts.append(f'<rect class="bar" x="{left:.1f}" y="{PAD_TOP + plot_h - h:.1f}" '
                     f'width="{bar:.1f}" height="{h:.1f}"><title>{day}: '
                     f'{_fmt(value)} {unit}</title></rect>')
        parts.append(f'<text class="axis" x="{left + bar / 2:.1f}" y="{HEIGHT - 6}" '
                     f'text-anchor="middle">{day} ({_fmt(value)} {unit})</text>')
    parts.append(f'<text class="axis" x="{PAD_LEFT - 6}" y="{PAD_TOP + 4}" '
                 f'text-anchor="end">{_fmt(high)} {unit}</text></svg>')
    return "".join(parts)


STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:980px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
h3{font-size:14px;margin:14px 0 4px}.chart{width:100%;height:auto;display:block}
.plot{fill:#fafafa;stroke:#ddd}.line{fill:none;stroke:#1f6fb2;stroke-width:1.6}
.gap{fill:#e6e6e6}.gaplabel{font-size:11px;fill:#777;text-anchor:middle}
.bar{fill:#e0a020}.axis{font-size:11px;fill:#555}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.muted{color:#777}
"""


def render(store: Path, data: dict[str, SourceRows], start: float,
           end: float) -> str:
    """Return the whole HTML page (charts span the rows found, within the period asked)."""
    times = [t for rows in data.values() for t, _ in rows]
    if times:
        start, end = max(start, min(times)), min(end, max(times))
        end = max(end, start + 1.0)
    period = f"{datetime.fromtimestamp(start):%Y-%m-%d %H:%M} to {datetime.fromtimestamp(end):%Y-%m-%d %H:%M}"
    body = [f"<h1>vemonitor report</h1><p>{html.escape(period)} &middot; store "
            f"<code>{html.escape(str(store))}</code> &middot; "
            f"{sum(len(r) for r in data.values())} rows</p>"]
    if not data:
        body.append('<p class="muted">No rows in this period.</p>')
    records = record_kwh(row for rows in data.values() for row in rows)
    for source, rows in data.items():
        body.append(f"<h2>{html.escape(source)}</h2>")
        holes = gaps([t for t, _ in rows])
        if holes:
            total = sum(b - a for a, b in holes)
            body.append(f'<p class="muted">{len(holes)} gap(s) without data, '
                        f"{total / 60:.1f} min in all (device unavailable or not running)</p>")
        for title, columns, unit in SERIES:
            points = series(rows, columns)
            if points:
                body.append(f"<h3>{html.escape(title)} ({unit})</h3>")
                body.append(line_chart(f"{source} {title}", unit, points, start, end))
        days = daily_yield(rows, records)
        if days:
            body.append("<h3>Daily yield (kWh)</h3>")
            body.append(bar_chart(f"{source} daily yield", "kWh", days))
        found = alarms(rows)
        if any(k in values for _, values in rows for k in ("Alarm", "AR")):
            body.append("<h3>Alarms</h3>")
            if not found:
                body.append('<p class="muted">No alarm in this period.</p>')
            else:
                body.append("<table><tr><th>from</th><th>to</th><th>cause</th></tr>" + "".join(
                    f"<tr><td>{datetime.fromtimestamp(a):%Y-%m-%d %H:%M:%S}</td>"
                    f"<td>{datetime.fromtimestamp(b):%Y-%m-%d %H:%M:%S}</td>"
                    f"<td>{html.escape(cause)}</td></tr>" for a, b, cause in found) + "</table>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width\">"
            f"<title>vemonitor report {html.escape(period)}</title><style>{STYLE}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


# ------------------------------------------------------------------ command
def store_dir(state_dir: Path | None, demo: bool) -> Path:
    """Return the folder of the store: ``state_dir`` as given to the run, else the default
    one (its ``demo/`` for the Demo, as conf/block/Demo.yaml makes it)."""
    if state_dir is not None:
        return state_dir
    return default_state_dir() / "demo" if demo else default_state_dir()


def _moment(text: str, option: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ReportError(f"{option} {text!r}: not an ISO 8601 date or date-time "
                          "(e.g. 2026-05-01 or 2026-05-01T18:00)") from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _hours(text: str) -> float:
    """Return a period length in hours: finite, > 0, at most a century."""
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(hours) and 0 < hours <= MAX_HOURS):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours > 0 and "
                                         f"<= {MAX_HOURS}")
    return hours


def parser() -> argparse.ArgumentParser:
    """Return the command's argument parser."""
    p = _Parser(prog="vemonitor report",
                                description="Write a self-contained HTML report of the local "
                                            "store (charts of battery, PV, yield, alarms).")
    p.add_argument("--store", type=Path, help="the SQLite store (default: "
                   "<state_dir>/store.sqlite)")
    p.add_argument("--demo", action="store_true", help="the Demo's store (default state "
                   "dir + /demo, where the Demo writes unless run with state_dir=)")
    p.add_argument("--state-dir", type=Path, help="the run's state_dir= (default: "
                   "$XDG_STATE_HOME/vemonitor, + /demo with --demo)")
    p.add_argument("--from", dest="start", help="start, ISO 8601 (default: --hours before --to)")
    p.add_argument("--to", dest="end", help="end, ISO 8601 (default: the newest row)")
    p.add_argument("--hours", type=_hours, default=24.0, help="period length (default: 24)")
    p.add_argument("--out", type=Path, help="the HTML file (default: report.html beside "
                   "the store)")
    p.add_argument("--site", help="only the rows of this site of a fleet (a central's store; "
                   "SITE or SITE/NODE as the edges' topics name them; default: every site, "
                   "each charted on its own)")
    return p


def report_command(args: list[str]) -> int:
    """Run ``vemonitor report``: write the page, print where; a mistake is one line, exit 2."""
    opts = parser().parse_args(args)
    try:
        store = opts.store or store_dir(opts.state_dir, opts.demo) / "store.sqlite"
        end = _moment(opts.end, "--to") if opts.end else newest_time(store)
        end = end if end is not None else datetime.now().timestamp()
        start = (_moment(opts.start, "--from") if opts.start
                 else max(TIME_RANGE[0], end - timedelta(hours=opts.hours).total_seconds()))
        if start >= end:
            raise ReportError("--from must be before --to")
        data = read_store(store, start, end, opts.site)
        if opts.site is not None and not data:
            raise ReportError(f"--site {opts.site}: no rows of that site in {store} between "
                              "--from and --to")
        out = opts.out or store.parent / "report.html"
        out.write_text(render(store, data, start, end), encoding="utf-8")
    except ReportError as err:
        print(f"vemonitor report: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"vemonitor report: cannot write {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    rows = sum(len(r) for r in data.values())
    print(f"wrote {out} ({rows} rows of {', '.join(data) or 'no source'})")
    return 0
