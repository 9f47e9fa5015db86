"""Configuration schema of a ``console`` output item."""

from __future__ import annotations

from dataclasses import dataclass

from vemonitor.api import OutputItem


@dataclass
class ConsoleOutputItem(OutputItem):
    """How to show what an output sends."""

    # auto: a live table when stdout is a terminal, else one log line per row; table; lines.
    mode: str = "auto"
    # Values shown per row (table columns, or key=value pairs of a line); the rest are counted.
    max_columns: int = 12
