"""Test doubles for plugin authors (and vemonitor's own tests), shipped with the package.

* :class:`RecordingSink` — a Sink keeping every batch it is given;
* :class:`FakeSource` — a Source whose snapshot the test sets (pushing or polled);
* :class:`ManualClock` — the clock that moves only when told (``sleep`` advances it);
* :func:`check_sink_contract` — the Sink contract as one call, for any sink factory;
* :func:`rows` / :func:`batch` — rows and batches to write.

Like structlog's capturing logger: what the core's contract promises, a plugin's tests
can check without an engine, a thread or a server of vemonitor's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from vemonitor.api import Batch, Row, Sink, Value
from vemonitor.clock import ManualClock as ManualClock

__all__ = ["FakeSource", "ManualClock", "RecordingSink", "batch", "check_sink_contract", "rows"]


class RecordingSink:
    """A sink that keeps every batch it is given (thread-safe, like a real one must be)."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.started = False
        self.closed = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        """Note that it was started."""
        self.started = True

    def write(self, batch: Batch) -> None:
        """Keep the batch."""
        with self.lock:
            self.batches.append(batch)

    def close(self) -> None:
        """Count the closes (idempotent: nothing else happens)."""
        self.closed += 1

    def rows(self, input_name: str | None = None) -> list[Row]:
        """Return every row written, or those of one input."""
        with self.lock:
            return [r for b in self.batches for r in b.rows if input_name in (None, r.input)]


class FakeSource:
    """A source whose newest values the test sets with :meth:`push` (or ``snapshot``).

    It pushes like the serial source: :meth:`push` calls the engine's callback, so
    rows are made as soon as the slot's data is in.
    """

    def __init__(self, name: str = "dev") -> None:
        self.name = name
        self.snapshot: tuple[dict[str, Value], float] | None = None
        self.started = False
        self.closed = 0
        self._listeners: list[Callable[[], None]] = []

    def push(self, values: Mapping[str, Value], received: float) -> None:
        """Make ``values`` (received at clock time ``received``) the newest snapshot."""
        self.snapshot = (dict(values), received)
        for listener in list(self._listeners):
            listener()

    def notify_on_update(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on every :meth:`push`."""
        self._listeners.append(callback)

    def start(self) -> None:
        """Note that it was started."""
        self.started = True

    def close(self) -> None:
        """Count the closes."""
        self.closed += 1

    def latest(self) -> tuple[dict[str, Value], float] | None:
        """Return the newest snapshot, or None."""
        return self.snapshot

    def stats(self) -> dict[str, Any]:
        """Return the counters of a source (none here)."""
        return {}


def rows(start: float, count: int, input_name: str = "bmv",
         values: Mapping[str, Value] | None = None, step: float = 1.0) -> tuple[Row, ...]:
    """Return ``count`` rows of one input, ``step`` seconds apart from ``start``."""
    base = dict(values or {"V": 12.5, "I": -1.25, "SOC": 80.0})
    return tuple(Row(start + i * step, input_name, {k: _shift(v, i) for k, v in base.items()})
                 for i in range(count))


def _shift(value: Value, i: int) -> Value:
    """Return a value that changes from row to row (numbers only), so rows differ."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return value + i


def batch(output: str, *row_groups: tuple[Row, ...]) -> Batch:
    """Return the batch of an output holding the rows given, oldest first."""
    return Batch(output, tuple(sorted((r for g in row_groups for r in g),
                                      key=lambda r: (r.time, r.input))))


def check_sink_contract(make_sink: Callable[[], Sink], sample: Batch,
                        read_back: Callable[[], int] | None = None) -> None:
    """Check what every sink promises (docs/integrations.md, "Worker contracts").

    ``make_sink()`` builds a fresh sink the way its factory would; ``read_back()``,
    when given, returns how many distinct rows the target holds. Checked:

    * ``close()`` is idempotent, also before ``start()``;
    * ``start()`` then ``write(batch)`` succeed; writing the same batch again (a
      retry after an unclear failure) succeeds and stores nothing twice;
    * ``close()`` after writing, twice, raises nothing.
    """
    idle = make_sink()
    idle.close()
    idle.close()
    sink = make_sink()
    sink.start()
    try:
        sink.write(sample)
        if read_back is not None:
            first = read_back()
            assert first == len(sample.rows), f"wrote {len(sample.rows)} rows, found {first}"
        sink.write(sample)
        if read_back is not None:
            again = read_back()
            assert again == len(sample.rows), (
                f"a retried batch must not be stored twice: {again} rows for "
                f"{len(sample.rows)} written (key rows by input and time)")
    finally:
        sink.close()
    sink.close()
