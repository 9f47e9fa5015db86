"""Configuration schema of a ``sqlite`` output item."""

from __future__ import annotations

from dataclasses import dataclass

from vemonitor.api import OutputItem


@dataclass
class SqliteOutputItem(OutputItem):
    """One local SQLite store: where it is, how durable, how long rows are kept."""

    # None -> <state_dir>/store.sqlite; a relative path is relative to the state dir.
    path: str | None = None
    # PRAGMA synchronous: OFF, NORMAL, FULL or EXTRA (checked when the sink is built).
    synchronous: str = "NORMAL"
    # Delete rows older than this many days (checked at most once an hour); None keeps all.
    retention_days: float | None = None
