"""Fixtures for the sqlite store: a settable clock, a context in tmp_path, a sink factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vemonitor_integrations.sqlite import create_sink
from vemonitor_integrations.sqlite.schema import SqliteOutputItem
from vemonitor_integrations.sqlite.sink import SqliteSink

from tests.integrations.helpers import NOW, FakeClock  # noqa: F401 (re-exported)
from vemonitor.api import Context


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
