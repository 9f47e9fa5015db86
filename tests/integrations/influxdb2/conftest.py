"""Fixtures: Debian's victoria-metrics and influxd 1.x on free loopback ports; sink builders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vemonitor_integrations.influxdb2.schema import InfluxConnector, InfluxOutput
from vemonitor_integrations.influxdb2.sink import InfluxSink

from tests.integrations.helpers import FakeClock
from tests.integrations.influxdb2.servers import InfluxDB1Server, VictoriaMetricsServer
from tests.integrations.influxdb2.support import TOKEN, Device, SinkMaker
from vemonitor.api import Context, InputInfo


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetricsServer]:
    """A running VictoriaMetrics keeping its data in the test's temp dir."""
    with VictoriaMetricsServer(workdir=tmp_path / "vm") as server:
        yield server


@pytest.fixture
def influx1(tmp_path: Path) -> Iterator[InfluxDB1Server]:
    """A running InfluxDB 1.x with a database ``vemonitor``."""
    with InfluxDB1Server(workdir=tmp_path / "influx") as server:
        server.influxql("CREATE DATABASE vemonitor", post=True)
        yield server


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[SinkMaker]:
    """Build sinks for a server URL (closed at the end)."""
    made: list[InfluxSink] = []

    def make(url: str, api: str = "v2", block: str = "home", **item: Any) -> InfluxSink:
        conf = InfluxConnector(host=url, org="vemonitor", auth=item.pop("auth", TOKEN),
                               api=api, username=item.pop("username", None),
                               timeout=item.pop("timeout", 5000))
        conf.validate()
        output = InfluxOutput(name="tsdb", source="local", db=item.pop("db", "vemonitor"),
                              **item)
        output.validate()
        info = InputInfo("bmv", "vedirect", "bmv700", ("V",), {},
                         Device({"serial": "HQ2211ABCDE", "pid": "0x203", "product": "BMV-700"}))
        ctx = Context(clock=FakeClock(), state_dir=str(tmp_path), block=block,
                      inputs={"bmv": info})
        sink = InfluxSink(output, conf, ctx)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()
