"""`vemonitor report`: a self-contained HTML page from the local store, checked in Chromium.

The store is written by the real sqlite sink with a day of the simulator's physics
model (BMV-700 + SmartSolar MPPT, every 2 minutes), with two hours missing (the
device unavailable) and an alarm. Headless Chromium (Debian's ``chromium``) opens the
page from a file: it must log no console error, draw the charts (the DOM it built
holds them) and a screenshot must show them (saved for a person to look at).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from vemonitor_integrations.sqlite.schema import SqliteOutputItem
from vemonitor_integrations.sqlite.sink import SqliteSink

from hw_sim.devices import PROFILES, render
from hw_sim.physics import World
from hw_sim.simulator import HIDDEN_SOLAR
from vemonitor.api import Batch, Context, Row
from vemonitor.clock import SystemClock
from vemonitor.report import alarms, gaps
from vemonitor.vedirect.fields import decode_fields, jsonable

START = 1_796_000_000.0 - 1_796_000_000.0 % 86400  # a midnight (UTC)
STEP = 120.0
GAP = (START + 10 * 3600, START + 12 * 3600)  # the device unavailable 10:00-12:00 UTC
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _values(profile: str, world: World, at: float) -> dict[str, object]:
    reading = (world.bmv_reading(at=at) if profile == "bmv700"
               else world.charger_reading("solar", at=at))
    raw = {label: value for block in render(PROFILES[profile], reading, "HQ2211ABCDE")
           for label, value in block}
    return {k: jsonable(v) for k, v in decode_fields(raw).items()
            if k in ("V", "I", "P", "CE", "SOC", "Alarm", "AR", "PPV", "H20", "CS")}


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
    sink = SqliteSink(SqliteOutputItem(name="store"), Context(SystemClock(), str(state)))
    sink.start()
    sink.write(Batch("store", tuple(rows)))
    sink.close()
    return state / "store.sqlite"


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           "report", *args], capture_output=True, text=True, timeout=120)


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


@pytest.mark.timeout(240)
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                    "chromium; .ci/run installs it)")
def test_chromium_renders_the_page_without_console_errors(page: Path, tmp_path: Path) -> None:
    """Headless Chromium: no console message of level warning or error, charts in the DOM,
    and a screenshot (kept in the test's folder; tests/cli/report-screenshot.png when
    VEMONITOR_KEEP_SCREENSHOT is set, for a person to look at)."""
    assert CHROMIUM is not None
    shot = tmp_path / "report.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,2600",
            "--enable-logging=stderr", "--v=0"]
    env = dict(os.environ, HOME=str(tmp_path))
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") >= 6
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console  # CSP violations and script errors are logged as CONSOLE
    taken = subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                           text=True, timeout=120, env=env)
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # charts, not a blank page
    if os.environ.get("VEMONITOR_KEEP_SCREENSHOT"):
        shutil.copy(shot, Path(os.environ["VEMONITOR_KEEP_SCREENSHOT"]))
