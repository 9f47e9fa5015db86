"""The console sink: one line per row, or a live screen of the latest row of each source."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from vemonitor_integrations.console.schema import ConsoleOutputItem
from vemonitor_integrations.console.screen import Screen, SourceState

from vemonitor.api import Batch, ConfigError, Row

if TYPE_CHECKING:  # rich is imported lazily: lines mode (headless, journald) never needs it
    from rich.console import Console
    from rich.live import Live

log = logging.getLogger(__name__)

MODES = ("auto", "table", "lines")
NONE_TEXT = "n/a"  # how a missing value (device field "---", stale) is shown
NEEDS_QUOTES = frozenset(' \t\r\n="')


def check_mode(mode: str, output: str | None) -> str:
    """Return the mode lower-cased, or raise a ConfigError naming the output."""
    value = str(mode).strip().lower()
    if value not in MODES:
        raise ConfigError(f"output '{output}': must be one of {', '.join(MODES)}, got {mode!r}",
                          key="mode")
    return value


def check_max_columns(count: int, output: str | None) -> int:
    """Return ``count`` if it is at least 1, or raise a ConfigError naming the output."""
    if count < 1:
        raise ConfigError(f"output '{output}': must be >= 1, got {count!r}", key="max_columns")
    return count


def short_float(value: float) -> str:
    """Return a float with at most 3 decimals and no trailing zeros (12.8, -1.5, 0.0004)."""
    if not math.isfinite(value):
        return str(value)  # nan, inf, -inf
    if value == 0:
        return "0"  # also -0.0
    if abs(value) < 0.001:
        return f"{value:.3g}"  # keep tiny values visible instead of rounding them to 0
    return f"{value:.3f}".rstrip("0").rstrip(".")


def format_value(value: Any, quote: bool = True) -> str:
    """Return a value as short text; never fails, whatever the type."""
    if value is None:
        return NONE_TEXT
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, float):
        return short_float(value)
    if isinstance(value, int):
        return str(value)
    text = value if isinstance(value, str) else repr(value)
    # Quoted (JSON-escaped) only when needed, so a line still splits on spaces.
    if quote and (not text or NEEDS_QUOTES.intersection(text) or not text.isprintable()):
        return json.dumps(text)
    return text


def format_time(epoch: float, iso: bool = True) -> str:
    """Return the local time of an epoch (ISO with offset, or HH:MM:SS); raw if invalid."""
    try:
        moment = datetime.fromtimestamp(epoch).astimezone()
    except (OverflowError, OSError, ValueError, TypeError):
        return str(epoch)
    return moment.isoformat(timespec="seconds") if iso else moment.strftime("%H:%M:%S")


def format_line(row: Row, max_columns: int) -> str:
    """Return ``<iso time> <source> K=v ...`` for a row, at most ``max_columns`` values."""
    items = list(row.values.items())
    parts = [format_time(row.time), format_value(row.input)]
    parts += [f"{key}={format_value(value)}" for key, value in items[:max_columns]]
    if len(items) > max_columns:
        parts.append(f"(+{len(items) - max_columns} more)")
    return " ".join(parts)


def quiet_keyboard() -> tuple[int, list[Any]] | None:
    """Stop the terminal echoing keys (Ctrl-C's "^C") over the live screen; return the settings.

    An echoed "^C" at the end of the screen's last line wraps it, and the screen's
    next redraw then starts one line low: its title shows twice. Full-screen programs
    turn echo off for the same reason. Nothing is done when stdin is not a terminal.
    """
    try:
        import termios
    except ImportError:  # not POSIX
        return None
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return None
        saved = termios.tcgetattr(fd)
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except (OSError, ValueError, AttributeError, termios.error):
        return None
    return fd, saved


def logs_above(console: Console) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Send the log lines meant for a terminal above the live screen; return what to undo.

    A logging handler writes straight to the stream it was given (stderr), under the
    live screen's cursor: an INFO line then lands inside the panels ("waiting for the
    first rows...INFO vemonitor.serial_reader: ..."). rich's FileProxy prints each
    whole line through the live console, which draws it above the screen and redraws
    the screen below it (what rich's Live does for print()). Only handlers writing to a
    terminal are moved, and only when the screen is on one too: a log file or a pipe
    (journald) is left alone.
    """
    from rich.file_proxy import FileProxy

    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    if not console.is_terminal:
        return moved
    for handler in _stream_handlers():
        stream = handler.stream
        try:
            on_terminal = stream is not None and stream.isatty()
        except (AttributeError, ValueError, OSError):
            on_terminal = False
        if on_terminal:
            handler.setStream(FileProxy(console, stream))
            moved.append((handler, stream))
    return moved


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    """Return the StreamHandlers of the root logger and of every logger created so far."""
    # A copy first: another thread may create a logger meanwhile (dict.copy() is atomic).
    known = logging.Logger.manager.loggerDict.copy()
    loggers = [logging.getLogger()] + [lg for lg in known.values() if isinstance(lg, logging.Logger)]
    found: list[logging.StreamHandler[Any]] = []
    for lg in loggers:
        for handler in lg.handlers:
            if isinstance(handler, logging.StreamHandler) and handler not in found:
                found.append(handler)
    return found


def logs_back(moved: list[tuple[logging.StreamHandler[Any], Any]]) -> None:
    """Give the handlers moved by logs_above() their own streams back (flushing the proxy)."""
    for handler, stream in moved:
        proxy = handler.setStream(stream)
        with contextlib.suppress(Exception):
            if proxy is not None:
                proxy.flush()


def restore_keyboard(saved: tuple[int, list[Any]] | None) -> None:
    """Put the terminal settings back as they were before quiet_keyboard()."""
    if saved is None:
        return
    import termios

    with contextlib.suppress(OSError, termios.error):
        termios.tcsetattr(saved[0], termios.TCSANOW, saved[1])


class ConsoleSink:
    """Shows each batch on the console; ``console`` and ``stream`` can be injected (tests)."""

    def __init__(self, item: ConsoleOutputItem, *, console: Console | None = None,
                 stream: TextIO | None = None) -> None:
        self.name = item.name
        self.mode = check_mode(item.mode, item.name)
        self.max_columns = check_max_columns(item.max_columns, item.name)
        self._console = console
        self._stream = stream
        self._live: Live | None = None
        self._sources: dict[str, SourceState] = {}  # source -> latest row, in first-seen order
        # A source is stale after 3 of its sends without a row (real seconds, at least 5).
        self._stale_after = max(5.0, 3.0 * float(item.time_interval) * item.cache_interval)
        self._resolved = "lines"
        self._tty: tuple[int, list[Any]] | None = None  # terminal settings to restore
        self._logs: list[tuple[logging.StreamHandler[Any], Any]] = []  # handlers moved
        # write() in the sender thread, close() in the engine's, renders in rich's refresh
        # thread; reentrant because write()'s own refresh renders while holding it.
        self._lock = threading.RLock()

    @property
    def resolved_mode(self) -> str:
        """Return the mode in use after ``start()``: table or lines."""
        return self._resolved

    def start(self) -> None:
        """Pick table or lines (auto: table only on a terminal) and start the live table."""
        with self._lock:
            if self._live is not None:
                return
            self._resolved = "table" if self._wants_table() else "lines"
            if self._resolved == "table":
                self._start_live()

    def _wants_table(self) -> bool:
        if self.mode != "auto":
            return self.mode == "table"
        if self._console is not None:
            return self._console.is_terminal
        stdout = self._stream or sys.stdout
        return stdout is not None and hasattr(stdout, "isatty") and stdout.isatty()

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.errors import LiveError
        from rich.live import Live

        console = self._console or Console(file=self._stream)  # file=None: stdout
        # Refreshed on write(), and once a second so a silent device shows as stale and a
        # resized terminal gets a new layout; the renderable lays itself out at each refresh.
        live = Live(self._render(), console=console, auto_refresh=True, refresh_per_second=1,
                    redirect_stdout=False, redirect_stderr=False)
        try:
            live.start(refresh=True)
        except LiveError as err:  # rich allows one live display per console at a time
            log.warning("console %s: %s; showing lines instead", self.name, err)
            self._resolved = "lines"
            return
        self._live = live
        self._tty = quiet_keyboard()
        self._logs = logs_above(live.console)

    def write(self, batch: Batch) -> None:
        """Show the batch: refresh the table, or print one line per row."""
        with self._lock:
            if self._live is not None:
                arrived = time.monotonic()
                for row in batch.rows:
                    self._sources[row.input] = SourceState(row.time, dict(row.values), arrived)
                self._live.update(self._render(), refresh=True)
                return
            if not batch.rows:
                return
            stream = self._stream or sys.stdout
            text = "\n".join(format_line(row, self.max_columns) for row in batch.rows)
            # Flushed at once: behind a pipe (journald) lines would otherwise wait in a buffer.
            print(text, file=stream, flush=True)

    def _render(self) -> Screen:
        """Return the live screen: one panel per source (integrations/console/screen.py)."""
        return Screen(f"vemonitor output {self.name}: latest rows (Ctrl-C stops)",
                      self._sources, self._stale_after, self.max_columns)

    def close(self) -> None:
        """Stop the live table (leaving its last state on screen); safe to call twice."""
        with self._lock:
            live, self._live = self._live, None
            tty, self._tty = self._tty, None
            moved, self._logs = self._logs, []
        if live is not None:
            live.stop()
        logs_back(moved)  # after stop: a line the proxy still holds prints below the screen
        restore_keyboard(tty)
