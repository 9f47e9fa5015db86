"""Log lines never land inside the live screen: they go above it (a real terminal, tmux).

The Demo logs INFO lines ("bmv700: available", the simulator's ports...) while its live
screen is drawn. A logging handler writing straight to the terminal would put them
under the screen's cursor, in the middle of the panels. The console sink sends them
through the live console instead (``logs_above``), which prints them above the screen.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from vemonitor_integrations.console.schema import ConsoleOutputItem
from vemonitor_integrations.console.sink import ConsoleSink, logs_above, logs_back

from tests.integrations.console.test_screen_terminal import TMUX, Terminal
from vemonitor.api import Batch, Row

PANEL_EDGES = ("│", "╭", "╰", "┃", "┏", "┗")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    """The Demo in a 100x30 terminal, its stderr (the log) on the terminal too."""
    env = (f"HOME={tmp_path}/home XDG_STATE_HOME={tmp_path}/xdg "
           f"PATH={Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    code = "from vemonitor.cli import main; main()"
    run = (f"env -u COLUMNS -u LINES {env} {sys.executable} -c '{code}' "
           f"state_dir={tmp_path}/state duration=12; echo EXIT=$?; sleep 600")
    opened = Terminal(100, 30, run)
    yield opened
    opened.close()


@pytest.mark.timeout(180)
@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)")
def test_log_lines_go_above_the_live_screen_never_into_it(terminal: Terminal) -> None:
    shown = terminal.wait_for(lambda ls: any("EXIT=" in line for line in ls), timeout=120,
                              history=True)
    text = "\n".join(shown)
    assert "EXIT=0" in text, text
    logged = [line for line in shown if "INFO " in line]
    assert any("serial_reader" in line and "available" in line for line in logged), text
    for line in logged:  # each log line is a line of its own, outside every panel
        assert line.startswith("INFO "), text
    assert not any("INFO" in line for line in shown if line.startswith(PANEL_EDGES)), text
    assert text.count("vemonitor output screen") == 1, text  # one screen, redrawn in place


def test_only_terminal_handlers_are_moved_and_given_back() -> None:
    """A handler on a terminal prints through the console; a file or pipe is untouched."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    on_tty, on_pipe = logging.StreamHandler(tty), logging.StreamHandler(pipe)
    log = logging.getLogger("vemonitor.test_screen_logs")
    log.addHandler(on_tty)
    log.addHandler(on_pipe)
    try:
        moved = logs_above(console)
        assert [h for h, _ in moved] == [on_tty]
        log.warning("device [x] gone")  # no rich markup is read from a log line
        assert "device [x] gone" in out.getvalue() and tty.getvalue() == ""
        assert pipe.getvalue() == "device [x] gone\n"
        logs_back(moved)
        log.warning("after")
        assert tty.getvalue() == "after\n" and "after" not in out.getvalue()
    finally:
        log.removeHandler(on_tty)
        log.removeHandler(on_pipe)


def test_the_sink_gives_the_handlers_back_when_it_closes() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=20)
    sink = ConsoleSink(ConsoleOutputItem(name="screen", mode="table"), console=console)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    handler = logging.StreamHandler(tty)
    logging.getLogger().addHandler(handler)
    try:
        sink.start()
        assert handler.stream is not tty  # moved while the screen is shown
        sink.write(Batch("screen", (Row(1.0, "bmv700", {"V": 12.5}),)))
        sink.close()
        assert handler.stream is tty
    finally:
        logging.getLogger().removeHandler(handler)
