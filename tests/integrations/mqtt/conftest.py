"""Fixtures: a real mosquitto on a loopback port, an observing subscriber, fake devices, sinks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vemonitor_integrations.mqtt.schema import MqttConnector, MqttOutput
from vemonitor_integrations.mqtt.sink import MqttSink

from tests.integrations.helpers import FakeClock
from tests.integrations.mqtt.support import (
    BMV,
    MPPT,
    FakeSource,
    Namespace,
    Observer,
    input_info,
    observe,
)
from tests.servers import LOOPBACK, MosquittoServer
from vemonitor.api import Context, InputInfo


@pytest.fixture(scope="session")
def broker() -> Iterator[MosquittoServer]:
    """Start one mosquitto (127.0.0.1, free port, no persistence) for the folder's tests."""
    with MosquittoServer() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    """Return a clock fixed at NOW."""
    return FakeClock()


@pytest.fixture
def sources() -> dict[str, FakeSource]:
    """Return a BMV-700 (no SER#) and an MPPT (with SER#) whose state tests may change."""
    return {"bmv": FakeSource("bmv", BMV), "mppt": FakeSource("mppt", MPPT)}


@pytest.fixture
def make_ctx(tmp_path: Path, clock: FakeClock,
             sources: dict[str, FakeSource]) -> Callable[..., Context]:
    """Return a factory of contexts: the BMV and MPPT inputs unless ``inputs`` is given."""

    def make(inputs: dict[str, InputInfo] | None = None, state_dir: Path | None = None) -> Context:
        default = {
            "bmv700": input_info("bmv700", sources["bmv"],
                                 ("V", "I", "SOC", "H17", "H18", "Relay", "PID"),
                                 {"V": "bat_voltage"}),
            "mppt": input_info("mppt", sources["mppt"],
                               ("V", "I", "PPV", "CS", "ERR", "MPPT", "H19", "H20", "H22")),
        }
        return Context(clock=clock, state_dir=str(state_dir or tmp_path / "state"),
                       block="TestBlock", inputs=default if inputs is None else inputs)

    return make


@pytest.fixture
def ns() -> Namespace:
    """Return topic roots unique to this test."""
    tag = uuid.uuid4().hex[:8]
    return Namespace(f"vm-{tag}", f"ha-{tag}")


@pytest.fixture
def make_sink(broker: MosquittoServer, ns: Namespace,
              make_ctx: Callable[..., Context]) -> Iterator[Callable[..., MqttSink]]:
    """Return a factory of started-later sinks on the test broker; all are closed at the end."""
    made: list[MqttSink] = []

    def make(ctx: Context | None = None, port: int | None = None,
             connector: dict[str, Any] | None = None, **item: Any) -> MqttSink:
        options = {"client_id": f"vemonitor-{ns.base}", "timeout": 3.0, **(connector or {})}
        conn = MqttConnector(host=LOOPBACK, port=port or broker.port, **options)
        item = {"base_topic": ns.base, "discovery_prefix": ns.prefix, **item}
        out = MqttOutput(name="mqtt", source="local", **item)
        conn.validate()
        out.validate()
        sink = MqttSink(out, conn, ctx or make_ctx())
        sink.poll_interval = 0.05
        sink.reconnect_delays = (1, 1)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


@pytest.fixture
def observer(broker: MosquittoServer) -> Iterator[Observer]:
    """Return an observer of everything on the test broker."""
    obs = observe(broker.port)
    yield obs
    obs.close()
