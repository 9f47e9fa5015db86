"""Fixtures for the emoncms output: a contract server on 127.0.0.1, a settable clock, sinks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vemonitor_integrations.emoncms import create_sink
from vemonitor_integrations.emoncms.schema import EmoncmsConnector, EmoncmsOutput
from vemonitor_integrations.emoncms.sink import EmoncmsSink

from tests.integrations.emoncms.contract_server import ContractServer
from tests.integrations.emoncms.emon_helpers import KEY, FakeClock
from vemonitor.api import Context


@pytest.fixture
def clock() -> FakeClock:
    """Return the sink's clock, fixed at NOW."""
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[ContractServer]:
    """Return a started contract server whose clock agrees with the sink's."""
    srv = ContractServer(clock=clock.now).start()
    yield srv
    srv.stop()


@pytest.fixture
def ctx(tmp_path: Path, clock: FakeClock) -> Context:
    """Return a context whose state directory is a fresh tmp dir."""
    return Context(clock=clock, state_dir=str(tmp_path / "state"))


@pytest.fixture
def make_sink(ctx: Context, server: ContractServer) -> Iterator[Callable[..., EmoncmsSink]]:
    """Return a factory of started sinks pointed at the server, all closed afterwards.

    Keywords go to the connector (``apikey``, ``timeout``, ...); ``item`` may
    give the output item's fields.
    """
    sinks: list[EmoncmsSink] = []

    def make(item: dict[str, Any] | None = None, start: bool = True,
             **connector: Any) -> EmoncmsSink:
        settings: dict[str, Any] = {"addr": server.url, "apikey": KEY, "timeout": 2.0}
        settings.update(connector)
        conf = EmoncmsConnector(**settings)
        conf.validate()
        output = EmoncmsOutput(**{"name": "emon", "source": "local", **(item or {})})
        sink = create_sink(output, conf, ctx)
        assert isinstance(sink, EmoncmsSink)
        sinks.append(sink)
        if start:
            sink.start()
        return sink

    yield make
    for sink in sinks:
        sink.close()
