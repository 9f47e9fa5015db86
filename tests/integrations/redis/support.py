"""Redis test support: a real redis-server on a loopback port (ours only), a clean db,
sinks, sources, a clock, and the rows they write.

A plain module, not a conftest: test modules import its helpers, and the conftests of
this folder and of tests/faults take its fixtures from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from vemonitor_integrations.redis import create_sink, create_source
from vemonitor_integrations.redis.schema import RedisConnector, RedisInput, RedisOutput, Structure
from vemonitor_integrations.redis.sink import RedisSink
from vemonitor_integrations.redis.source import RedisSource

from tests.integrations.helpers import FakeClock
from tests.servers import LOOPBACK, RedisServer
from vemonitor.api import Context
from vemonitor.model import Batch, Row


def rows(node: str, start: float, count: int, step: float = 1.0) -> list[Row]:
    """Return ``count`` rows of ``node`` from ``start``, values derived from the index."""
    return [Row(start + i * step, node, {"V": 12.5 + i / 100, "SOC": 90 - i, "Relay": "OFF",
                                         "Alarm": i % 2 == 0, "TTG": None})
            for i in range(count)]


def batch(*groups: list[Row]) -> Batch:
    """Return a batch of the given rows, oldest first."""
    return Batch("redis", tuple(sorted((r for g in groups for r in g), key=lambda r: r.time)))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Start one redis-server (127.0.0.1, free port, temp dir, no persistence) for the folder."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """Return a plain client of our test server, db 0 flushed and stats reset first."""
    client = redis.Redis(host=LOOPBACK, port=redis_server.port, decode_responses=True)
    client.flushall()  # our own throw-away server only
    client.config_resetstat()
    yield client
    client.close()


@pytest.fixture
def connector(redis_server: RedisServer, raw: redis.Redis) -> RedisConnector:
    """Return a connector to db 0 of the test server."""
    return RedisConnector(host=LOOPBACK, port=redis_server.port, db=0)


@pytest.fixture
def clock() -> FakeClock:
    """Return a clock fixed at NOW."""
    return FakeClock()


@pytest.fixture
def ctx(tmp_path: Any, clock: FakeClock) -> Context:
    """Return a worker context with a temp state dir."""
    return Context(clock=clock, state_dir=str(tmp_path))


@pytest.fixture
def make_sink(connector: RedisConnector, ctx: Context) -> Iterator[Callable[..., RedisSink]]:
    """Return a factory of started sinks (item fields as keywords), all closed afterwards."""
    sinks: list[RedisSink] = []

    def make(conn: RedisConnector | None = None, start: bool = True, **fields: Any) -> RedisSink:
        fields.setdefault("redis_node", "bmv700")
        item = RedisOutput(name="redis", source="local", **fields)
        item.validate()
        sink = create_sink(item, conn or connector, ctx)
        assert isinstance(sink, RedisSink)
        sinks.append(sink)
        if start:
            sink.start()
        return sink

    yield make
    for sink in sinks:
        sink.close()


def commandstats(client: redis.Redis) -> dict[str, int]:
    """Return calls per command since the last CONFIG RESETSTAT (INFO's own call excluded)."""
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    for ours in ("info", "config|resetstat"):
        calls.pop(ours, None)
    return calls


@pytest.fixture
def make_source(connector: RedisConnector, ctx: Context) -> Iterator[Callable[..., RedisSource]]:
    """Return a factory of started sources, each with the given input items."""
    sources: list[RedisSource] = []

    def make(*items: RedisInput, conn: RedisConnector | None = None) -> RedisSource:
        source = create_source("edge", conn or connector, ctx)
        assert isinstance(source, RedisSource)
        for item in items:
            item.validate()
            source.subscribe(item)
        source.start()
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


def hmap_input(**fields: object) -> RedisInput:
    """Return an input reading the HmapTimeSeries of node bmv700 under redis_node edge."""
    return RedisInput(name="bmv700", source="edge", redis_node="edge", **fields)  # type: ignore[arg-type]


def stream_input(**fields: object) -> RedisInput:
    """Return an input reading the stream vemonitor:bmv700."""
    return RedisInput(name="bmv700", source="edge", structure=Structure.Stream, **fields)  # type: ignore[arg-type]
