"""The Demo's live screen in a real terminal (tmux), read back as a person would see it.

tmux gives the program a real pty of a chosen size; ``capture-pane`` returns the
characters on screen. The Demo runs to its ``duration=`` end (or Ctrl-C), and the test
asserts what a person reads: one panel per device, SOC with its unit, decoded charger
state and error, no cut cells, nothing wider than the terminal, the title once.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from vemonitor_integrations.console.screen import Screen, SourceState, show_value

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux;"
                                " .ci/run installs it)")
CS_NAMES = ("Bulk", "Absorption", "Float", "Off", "Fault", "Starting up", "Storage",
            "Equalize (manual)", "Recharge", "Ext. Control", "Inverting")
TITLE = "vemonitor output screen"


class Terminal:
    """A tmux server of its own (socket name) running one command in a window of a set size."""

    def __init__(self, columns: int, lines: int, command: str) -> None:
        self.socket = f"vm-test-{uuid.uuid4().hex[:8]}"
        self.columns, self.lines = columns, lines
        self._tmux("new-session", "-d", "-s", "t", "-x", str(columns), "-y", str(lines),
                   command)

    def _tmux(self, *args: str) -> str:
        assert TMUX is not None
        result = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True,
                                text=True, timeout=30, check=False)
        return result.stdout

    def screen(self, history: bool = False) -> list[str]:
        """Return the lines on screen (with the scroll-back when ``history``)."""
        extra = ["-S", "-200"] if history else []
        return self._tmux("capture-pane", "-p", "-t", "t", *extra).splitlines()

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, predicate: object, timeout: float, history: bool = False) -> list[str]:
        """Poll the screen until ``predicate(lines)`` holds; return the lines (or fail)."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines = self.screen(history)
            if predicate(lines):  # type: ignore[operator]
                return lines
            time.sleep(0.25)
        raise AssertionError("screen never matched:\n" + "\n".join(lines))

    def close(self) -> None:
        self._tmux("kill-server")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[object]:
    """Return a factory starting the Demo in a terminal of a given size."""
    opened: list[Terminal] = []

    def start(columns: int, lines: int, *args: str) -> Terminal:
        env = (f"HOME={tmp_path}/home XDG_STATE_HOME={tmp_path}/xdg "
               f"PATH={Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        code = "from vemonitor.cli import main; main()"
        run = (f"env -u COLUMNS -u LINES {env} {sys.executable} -c '{code}' state_dir={tmp_path}/state "
               f"{' '.join(args)} 2>{tmp_path}/stderr; echo EXIT=$?; sleep 600")
        terminal = Terminal(columns, lines, run)
        opened.append(terminal)
        return terminal

    yield start
    for terminal in opened:
        terminal.close()


def _panels_full(lines: list[str]) -> bool:
    text = "\n".join(lines)
    return "SOC" in text and "State" in text and "bmv700" in text and "solar" in text


def _assert_readable(lines: list[str], columns: int) -> None:
    """What a person must be able to read, whatever the size."""
    text = "\n".join(lines)
    assert all(len(line) <= columns for line in lines)
    assert "…" not in text, text  # no cut cell
    assert re.search(r"SOC\s+\d+(\.\d+)? %", text), text
    assert re.search(r"\bV\s+\d+\.\d+ V\b", text), text
    assert re.search(r"\bI\s+-?\d+(\.\d+)? A\b", text), text
    assert re.search(r"Panel P\s+\d+ W", text), text
    assert re.search(r"Yield today\s+\d+(\.\d+)? kWh", text), text
    assert re.search(r"Error\s+No error", text), text
    assert any(re.search(rf"State\s+{re.escape(name)}\b", text) for name in CS_NAMES), text
    assert re.search(r"TTG\s+(∞|\d+h\d\dm|\d+ min)", text), text
    assert "more columns" not in text and "+" not in "".join(
        line for line in lines if "more" in line), text
    assert text.count(TITLE) == 1


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("columns", "lines"), [(80, 24), (160, 40)])
def test_demo_screen_reads_in_a_real_terminal(demo: object, columns: int, lines: int) -> None:
    """80x24 and 160x40: both panels, units and decoded codes, nothing cut; wide = fewer lines."""
    terminal = demo(columns, lines, "duration=15")  # type: ignore[operator]
    shown = terminal.wait_for(_panels_full, timeout=90)
    _assert_readable(shown, columns)
    # Battery fields first: V, I, P, SOC on the panel's first lines.
    bmv_start = next(i for i, line in enumerate(shown) if "bmv700" in line)
    top = "\n".join(shown[bmv_start + 1:bmv_start + 3])
    assert "SOC" in top and "V " in top
    body = [line for line in shown if line.startswith("│")]
    if columns >= 160:  # four pairs per line: both panels in 3 lines each
        assert len(body) <= 7, "\n".join(shown)
        assert re.search(r"\bV\s.*\bI\s.*\bP\s.*SOC", "\n".join(body)), "\n".join(shown)
    finished = terminal.wait_for(lambda ls: any("EXIT=0" in line for line in ls), timeout=90,
                                 history=True)
    text = "\n".join(finished)
    assert text.count(TITLE) == 1, text  # the last frame stays, once
    assert "summary of block Demo" in text


@pytest.mark.timeout(180)
def test_ctrl_c_leaves_one_screen_then_the_summary(demo: object) -> None:
    """Ctrl-C: the terminal does not echo ^C over the screen; title once, then the summary."""
    terminal = demo(80, 24)  # type: ignore[operator]
    terminal.wait_for(_panels_full, timeout=90)
    terminal.keys("C-c")
    finished = terminal.wait_for(lambda ls: any("EXIT=0" in line for line in ls), timeout=60,
                                 history=True)
    text = "\n".join(finished)
    assert text.count(TITLE) == 1, text
    assert "^C" not in text
    assert text.index("summary of block Demo") > text.index("SOC")


def test_a_silent_source_is_marked_stale_with_its_age() -> None:
    """No row for longer than stale_after: the panel says STALE and for how long."""
    now = time.monotonic()
    sources = {"bmv700": SourceState(time.time() - 40, {"V": 12.5, "SOC": 80.0}, now - 40),
               "solar": SourceState(time.time(), {"PPV": 120, "CS": 3}, now)}
    console = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    console.print(Screen("t", sources, stale_after=5.0, max_fields=12))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    bmv, solar = out.split("solar", 1)
    assert re.search(r"STALE, no data for 4\d s", bmv)
    assert "STALE" not in solar and "Bulk" in solar


@pytest.mark.parametrize(("label", "value", "text"), [
    ("SOC", 87.5, "87.5 %"), ("TTG", -1, "∞"), ("TTG", 205, "3h25m"), ("TTG", 45, "45 min"),
    ("CS", 3, "Bulk"), ("ERR", 0, "No error"), ("Alarm", True, "on"), ("AR", 0, "none"),
    ("MPPT", 1, "V or I limited"), ("V", None, "n/a"), ("bat_voltage", 12.5, "12.5"),
])
def test_values_read_with_units_and_names(label: str, value: object, text: str) -> None:
    assert show_value(label, value) == text
