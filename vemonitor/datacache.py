"""The memory cache: where rows wait between inputs and outputs (the default :class:`Cache`)."""

from __future__ import annotations

import threading
from collections import deque

from vemonitor.model import Row


class DataCache:
    """Rows per input, bounded (``max_data_points`` per input), oldest dropped first.

    Each row gets an arrival number, so outputs take rows in arrival order: a row
    forwarded late with an old time (from another vemonitor) is still sent.
    """

    def __init__(self, max_points: int) -> None:
        self._rows: dict[str, deque[tuple[int, Row]]] = {}
        self._max = max_points
        self._lock = threading.Lock()
        self.seq = 0  # arrival number of the last row added
        self.dropped = 0

    def add(self, row: Row) -> None:
        """Store a row."""
        with self._lock:
            rows = self._rows.setdefault(row.input, deque(maxlen=self._max))
            if len(rows) == self._max:
                self.dropped += 1
            self.seq += 1
            rows.append((self.seq, row))

    def between(self, input_name: str, after: float, upto: float) -> list[Row]:
        """Return the rows of ``input_name`` with after < time <= upto, oldest first."""
        with self._lock:
            return [row for _, row in self._rows.get(input_name, ()) if after < row.time <= upto]

    def arrived_after(self, input_name: str, seq: int) -> list[tuple[int, Row]]:
        """Return (arrival number, row) of the rows of ``input_name`` added after ``seq``."""
        with self._lock:
            return [(n, row) for n, row in self._rows.get(input_name, ()) if n > seq]
