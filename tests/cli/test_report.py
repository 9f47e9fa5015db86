"""`vemonitor report`: a self-contained HTML page from the local store, checked in Chromium.

The store is written by the real sqlite sink with a day of the simulator's physics
model (BMV-700 + SmartSolar MPPT, every 2 minutes), with two hours missing (the
device unavailable) and an alarm. Headless Chromium (Debian's ``chromium``) opens the
page from a file: it must log no console error, draw the charts (the DOM it built
holds them) and a screenshot must show them (saved for a person to look at).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from vemonitor_integrations.sqlite.schema import SqliteOutputItem
from vemonitor_integrations.sqlite.sink import SqliteSink

from hw_sim.devices import PROFILES, render
from hw_sim.physics import World
from hw_sim.simulator import HIDDEN_SOLAR
from vemonitor.api import Batch, Context, Row
from vemonitor.clock import SystemClock
from vemonitor.report import HEIGHT, PAD_BOTTOM, PAD_LEFT, PAD_TOP, WIDTH, alarms, gaps
from vemonitor.vedirect.fields import decode_fields, jsonable

START = 1_796_000_000.0 - 1_796_000_000.0 % 86400  # a midnight (UTC)
STEP = 120.0
GAP = (START + 10 * 3600, START + 12 * 3600)  # the device unavailable 10:00-12:00 UTC
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


COLUMNS = ("V", "I", "P", "CE", "SOC", "Alarm", "AR", "PPV", "H19", "H20", "H22", "HSDS", "CS")


def _values(profile: str, world: World, at: float) -> dict[str, object]:
    reading = (world.bmv_reading(at=at) if profile == "bmv700"
               else world.charger_reading("solar", at=at))
    raw = {label: value for block in render(PROFILES[profile], reading, "HQ2211ABCDE")
           for label, value in block}
    return {k: jsonable(v) for k, v in decode_fields(raw).items() if k in COLUMNS}


def _write_store(state: Path, rows: list[Row]) -> Path:
    """Write ``rows`` through the real sqlite sink; return the store's path."""
    sink = SqliteSink(SqliteOutputItem(name="store"), Context(SystemClock(), str(state)))
    sink.start()
    sink.write(Batch("store", tuple(rows)))
    sink.close()
    return state / "store.sqlite"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a day of rows through the sqlite sink; return the store's path."""
    state = tmp_path_factory.mktemp("state")
    world = World(START, {"solar": HIDDEN_SOLAR}, soc=0.6, seed=1, utc_offset_s=0)
    rows: list[Row] = []
    t = START
    while t < START + 86400:
        if not GAP[0] <= t < GAP[1]:
            bmv = _values("bmv700", world, t)
            if START + 20 * 3600 <= t < START + 20.5 * 3600:  # an alarm: low voltage
                bmv.update(Alarm=True, AR=1)
            rows += [Row(t, "bmv700", bmv), Row(t, "solar", _values("mppt", world, t))]
        t += STEP
    return _write_store(state, rows)


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    # TZ=UTC: the page shows local times and dates, and the simulated sun is UTC here.
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           "report", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TZ="UTC"))


@pytest.fixture(scope="module")
def page(store: Path) -> Path:
    out = store.parent / "day.html"
    result = _report("--store", str(store), "--out", str(out))  # the last 24 h of the store
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out} (")
    return out


def test_page_is_self_contained_with_the_charts(page: Path) -> None:
    """Inline SVG charts for each series, no script, no external URL; gaps and alarms said."""
    text = page.read_text()
    assert "<script" not in text
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    for title in ("bmv700 Voltage", "bmv700 Current", "bmv700 State of charge",
                  "bmv700 Consumed", "solar PV power", "solar daily yield"):
        assert f'aria-label="{title}"' in text, title
    assert text.count('class="gap"') >= 2  # bmv700 and solar charts shade the hole
    assert "no data" in text
    assert "Low voltage" in text  # the alarm's cause


def test_gaps_and_alarms_are_found_in_the_rows() -> None:
    """The hole between two rows is a gap; an alarm interval has its start, end and cause."""
    times = [0.0, 60.0, 120.0, 3720.0, 3780.0]
    assert gaps(times) == [(120.0, 3720.0)]
    rows = [(0.0, {"Alarm": False, "AR": 0}), (60.0, {"Alarm": True, "AR": 1}),
            (120.0, {"Alarm": True, "AR": 1}), (180.0, {"Alarm": False, "AR": 0})]
    assert alarms(rows) == [(60.0, 180.0, "Low voltage")]


def test_mistakes_are_one_line_exit_2(tmp_path: Path) -> None:
    missing = _report("--store", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 2 and missing.stderr.startswith("vemonitor report: no store at")
    bad = _report("--store", str(tmp_path / "none.sqlite"), "--from", "yesterday")
    assert bad.returncode == 2 and "not an ISO 8601 date" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def _chromium(page: Path, tmp_path: Path, height: int) -> tuple[str, Path]:
    """Open ``page`` in headless Chromium: return its DOM and a screenshot's path.

    No console message of level warning or error may be logged (CSP violations and
    script errors are logged as CONSOLE)."""
    assert CHROMIUM is not None
    shot = tmp_path / "report.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", f"--window-size=1000,{height}",
            "--enable-logging=stderr", "--v=0"]
    env = dict(os.environ, HOME=str(tmp_path), TZ="UTC")
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    taken = subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                           text=True, timeout=120, env=env)
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # charts, not a blank page
    return dom.stdout, shot


def _keep(shot: Path, suffix: str = "") -> None:
    """Copy a screenshot where VEMONITOR_KEEP_SCREENSHOT says (for a person to look at)."""
    target = os.environ.get("VEMONITOR_KEEP_SCREENSHOT")
    if target:
        path = Path(target)
        shutil.copy(shot, path.with_name(f"{path.stem}{suffix}{path.suffix}"))


NEEDS_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(apt-get install chromium; .ci/run installs it)")


@pytest.mark.timeout(240)
@NEEDS_CHROMIUM
def test_chromium_renders_the_page_without_console_errors(page: Path, tmp_path: Path) -> None:
    """Headless Chromium: no console message of level warning or error, charts in the DOM,
    and a screenshot (kept in the test's folder; where VEMONITOR_KEEP_SCREENSHOT says
    when it is set, for a person to look at)."""
    dom, shot = _chromium(page, tmp_path, 2600)
    assert dom.count("<svg") >= 6
    _keep(shot)


# ------------------------------------------------------ a simulated 48 h, as the Demo makes it
NOON = START + 12 * 3600  # the Demo's day starts at noon (the model's sun is UTC here)
DAY = 86400.0


@pytest.fixture(scope="module")
def sim48(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row]]:
    """48 h of the simulator's BMV-700 + SmartSolar MPPT from noon (every 2 min), stored
    by the sqlite sink and reported; return the page and the solar rows."""
    state = tmp_path_factory.mktemp("sim48")
    world = World(NOON, {"solar": PROFILES["mppt"].charger}, soc=0.8, seed=4, utc_offset_s=0)
    rows: list[Row] = []
    t = NOON
    while t < NOON + 2 * DAY:
        rows += [Row(t, "bmv700", _values("bmv700", world, t)),
                 Row(t, "solar", _values("mppt", world, t))]
        t += STEP
    store = _write_store(state, rows)
    out = state / "sim48.html"
    result = _report("--store", str(store), "--hours", "48", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, [r for r in rows if r.input == "solar"]


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def _chart(text: str, label: str) -> str:
    found = re.search(rf'<svg[^>]*aria-label="{re.escape(label)}".*?</svg>', text, re.S)
    assert found, label
    return found.group(0)


def _drawn(svg: str, start: float, end: float) -> list[tuple[float, float]]:
    """Return the (time, value) points a line chart draws, read back from its SVG."""
    axis = [float(v) for v in re.findall(r'text-anchor="end">(-?[\d.]+) ', svg)[:3]]
    low, high = axis[0], axis[2]
    plot_w, plot_h = WIDTH - PAD_LEFT - 10, HEIGHT - PAD_BOTTOM - PAD_TOP
    path = re.search(r'<path class="line" d="([^"]+)"', svg)
    assert path
    points = []
    for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", path.group(1)):
        t = start + (float(x) - PAD_LEFT) / plot_w * (end - start)
        points.append((t, high - (float(y) - PAD_TOP) / plot_h * (high - low)))
    return points


def test_a_simulated_48h_shows_each_device_day_once_under_its_date(
        sim48: tuple[Path, list[Row]]) -> None:
    """From noon: the day begun that morning, the next one, and the third so far; each
    yield under the date its day began; not yesterday's again after midnight."""
    page, rows = sim48
    bars = re.findall(r"<title>(\d{4}-\d{2}-\d{2}): ([\d.]+) kWh</title>",
                      _chart(page.read_text(), "solar daily yield"))
    assert [day for day, _ in bars] == [_day(NOON), _day(NOON + DAY), _day(NOON + 2 * DAY)]
    rolls = [b for a, b in zip(rows, rows[1:]) if b.values["HSDS"] != a.values["HSDS"]]
    assert [_day(r.time) for r in rolls] == [_day(NOON + DAY), _day(NOON + 2 * DAY)]
    expected = [rolls[0].values["H22"], rolls[1].values["H22"], rows[-1].values["H20"]]
    assert [float(kwh) for _, kwh in bars] == pytest.approx(expected, abs=0.0005)
    assert all(float(kwh) > 0.3 for _, kwh in bars[:2])


def test_a_simulated_48h_has_no_pv_power_between_dusk_and_dawn(
        sim48: tuple[Path, list[Row]]) -> None:
    """The PV chart, read back from the SVG: zero at night, the sun at midday."""
    page, rows = sim48
    text = page.read_text()
    points = _drawn(_chart(text, "solar PV power"), rows[0].time, rows[-1].time)
    hour = [(((t % DAY) / 3600), value) for t, value in points]
    night = [value for h, value in hour if h >= 18.5 or h < 5.5]
    midday = [value for h, value in hour if 11 <= h < 13]
    assert len(night) > 300 and max(night) < 1.0
    assert max(midday) > 100
    # The time axis is local time: its noon ticks sit where the sun is.
    assert re.search(r">\d\d-\d\d 12:00<", _chart(text, "solar PV power"))


@pytest.mark.timeout(240)
@NEEDS_CHROMIUM
def test_chromium_shows_the_simulated_48h(sim48: tuple[Path, list[Row]],
                                          tmp_path: Path) -> None:
    """The 48 h page in Chromium: no console error, the charts and the two days' bars
    drawn (screenshot kept with the suffix -48h for a person to look at)."""
    page, _ = sim48
    dom, shot = _chromium(page, tmp_path, 2500)
    assert dom.count("<svg") >= 6
    assert dom.count('class="bar"') == 3
    _keep(shot, "-48h")


# ------------------------------------------------------ never a traceback (issue 25)
@pytest.mark.parametrize("hours", ["nan", "inf", "-inf", "1e308", "0", "-3", "abc", "1e6"])
def test_any_hours_is_a_report_or_one_line_exit_2(tmp_path: Path, hours: str) -> None:
    result = _report("--store", str(tmp_path / "none.sqlite"), "--hours", hours)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("vemonitor report: ") and "--hours" in result.stderr


def test_stored_values_that_cannot_be_drawn_are_left_out(tmp_path: Path) -> None:
    """A 400-digit integer (OverflowError before), NaN, a 1e300 time, broken JSON: the
    page is written with the rest."""
    store = tmp_path / "store.sqlite"
    with sqlite3.connect(store) as db:
        db.execute('CREATE TABLE rows (source TEXT, time REAL, "values" TEXT, '
                   "PRIMARY KEY (source, time))")
        good = [(f"s{i}", START + i * 60, json.dumps({"V": 12.5 + i / 100, "PPV": 10}))
                for i in range(5)]
        bad = [("s0", START + 400, '{"V": ' + "9" * 400 + ', "PPV": 1' + "0" * 330 + "}"),
               ("s0", START + 460, '{"V": NaN, "H20": Infinity, "HSDS": 1}'),
               ("s0", 1e300, '{"V": 12.0}'), ("s0", START + 520, "{not json"),
               ("s0", START + 580, "[1, 2]"), ("s0", START + 640, '{"AR": ' + "7" * 400 + "}")]
        db.executemany('INSERT INTO rows VALUES (?, ?, ?)',
                       [(s, t, v) for s, t, v in good] +
                       [(s, t, v) for s, t, v in bad])
    result = _report("--store", str(store), "--from", _day(START), "--to", _day(START + DAY))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "report.html").read_text()
    assert 'aria-label="s0 Voltage"' in text and 'aria-label="s0 PV power"' in text
    for path in re.findall(r' d="([^"]+)"', text):  # every drawn coordinate is a number
        assert all(math.isfinite(float(n)) for n in re.findall(r"-?[\d.]+", path)), path
    assert not re.search(r"\b(nan|inf)\b", text, re.I)


def test_report_and_run_agree_on_the_demo_store(tmp_path: Path) -> None:
    """`vemonitor state_dir=X` writes X/store.sqlite: `report --demo --state-dir X` reads it."""
    state = tmp_path / "X"
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"))
    run = subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                          f"state_dir={state}", "duration=3"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert (state / "store.sqlite").is_file()
    report = subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                             "report", "--demo", "--state-dir", str(state)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith(f"wrote {state / 'report.html'} (")
    assert "solar" in report.stdout and "bmv700" in report.stdout
