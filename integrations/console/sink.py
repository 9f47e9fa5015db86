"""The console sink: one line per row, or a rich live table of the latest row of each source."""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from integrations.console.schema import ConsoleOutputItem
from vemonitor.api import Batch, ConfigError, Row

if TYPE_CHECKING:  # rich is imported lazily: lines mode (headless, journald) never needs it
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

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
    parts = [format_time(row.time), format_value(row.source)]
    parts += [f"{key}={format_value(value)}" for key, value in items[:max_columns]]
    if len(items) > max_columns:
        parts.append(f"(+{len(items) - max_columns} more)")
    return " ".join(parts)


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
        self._latest: dict[str, Row] = {}
        self._keys: dict[str, None] = {}  # every column seen, in first-seen order
        self._resolved = "lines"
        self._lock = threading.Lock()  # write() in the sender thread, close() in the engine's

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
        # No auto refresh: the table changes only on write(), so no refresh thread is needed.
        live = Live(self._render(), console=console, auto_refresh=False)
        try:
            live.start(refresh=True)
        except LiveError as err:  # rich allows one live display per console at a time
            log.warning("console %s: %s; showing lines instead", self.name, err)
            self._resolved = "lines"
            return
        self._live = live

    def write(self, batch: Batch) -> None:
        """Show the batch: refresh the table, or print one line per row."""
        with self._lock:
            if self._live is not None:
                for row in batch.rows:
                    self._latest[row.source] = row
                    self._keys.update(dict.fromkeys(row.values))
                self._live.update(self._render(), refresh=True)
                return
            if not batch.rows:
                return
            stream = self._stream or sys.stdout
            text = "\n".join(format_line(row, self.max_columns) for row in batch.rows)
            # Flushed at once: behind a pipe (journald) lines would otherwise wait in a buffer.
            print(text, file=stream, flush=True)

    def _render(self) -> Table:
        """Return the table: one row per source with its latest values."""
        from rich.table import Table
        from rich.text import Text

        keys = list(self._keys)
        shown = keys[:self.max_columns]
        hidden = len(keys) - len(shown)
        table = Table(title=f"vemonitor output {self.name}",
                      caption=f"{hidden} more columns (max_columns={self.max_columns})"
                      if hidden else None)
        table.add_column("source")
        table.add_column("time")
        for key in shown:
            table.add_column(key, justify="right")
        for source, row in self._latest.items():
            # Text, not str: values are data, never rich markup ("[/]" would raise).
            cells = [Text(format_value(row.values[key], quote=False))
                     if key in row.values else Text("") for key in shown]
            table.add_row(Text(source), Text(format_time(row.time, iso=False)), *cells)
        return table

    def close(self) -> None:
        """Stop the live table (leaving its last state on screen); safe to call twice."""
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.stop()
