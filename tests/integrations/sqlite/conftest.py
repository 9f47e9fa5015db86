"""Fixtures for the sqlite store: a settable clock, a context in tmp_path, a sink factory."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.sqlite import create_sink
from integrations.sqlite.schema import SqliteOutputItem
from integrations.sqlite.sink import SqliteSink
from vemonitor.registry import Context

NOW = 1_714_560_000.0  # 2024-05-01T10:40:00Z


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = NOW) -> None:
        self.t = now

    def now(self) -> float:
        """Return the set time."""
        return self.t

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Advance the time instead of waiting."""
        self.t += max(seconds, 0.0)
        return False


@pytest.fixture
def clock() -> FakeClock:
    """Return a clock fixed at NOW."""
    return FakeClock()


@pytest.fixture
def ctx(tmp_path: Path, clock: FakeClock) -> Context:
    """Return a context whose state directory is a fresh tmp dir."""
    return Context(clock=clock, state_dir=str(tmp_path / "state"))


@pytest.fixture
def make_sink(ctx: Context) -> Iterator[Callable[..., SqliteSink]]:
    """Return a factory of started sinks (item fields as keywords), all closed afterwards."""
    sinks: list[SqliteSink] = []

    def make(start: bool = True, **fields: Any) -> SqliteSink:
        sink = create_sink(SqliteOutputItem(name="store", **fields), None, ctx)
        assert isinstance(sink, SqliteSink)
        sinks.append(sink)
        if start:
            sink.start()
        return sink

    yield make
    for sink in sinks:
        sink.close()
