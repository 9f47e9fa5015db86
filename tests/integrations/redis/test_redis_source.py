"""The Redis input reads rows another vemonitor wrote, from a time on, in both structures."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis
from vemonitor_integrations.redis.schema import RedisConnector, RedisInput
from vemonitor_integrations.redis.sink import RedisSink
from vemonitor_integrations.redis.source import RedisSource

from tests.integrations.helpers import NOW, FakeClock
from tests.integrations.redis.support import batch, hmap_input, rows, stream_input
from tests.servers import LOOPBACK, free_port

MakeSink = Callable[..., RedisSink]


@pytest.mark.parametrize("structure", ["HmapTimeSeries", "Stream"])
def test_rows_written_are_read_back_since_a_time(make_sink: MakeSink,
                                                 make_source: Callable[..., RedisSource],
                                                 structure: str) -> None:
    """What a sink wrote, an input reads: rows with time >= since and > after, oldest first."""
    written = rows("bmv700", NOW, 10)
    make_sink(structure=structure, redis_node="edge").write(batch(written))
    item = hmap_input(since=NOW + 3) if structure == "HmapTimeSeries" else stream_input(
        since=NOW + 3)
    source = make_source(item)
    got = source.rows_since(0)
    assert got == written[3:]
    assert source.rows_since(NOW + 7) == written[8:]
    assert source.latest() == (dict(written[-1].values), written[-1].time)


@pytest.mark.parametrize("structure", ["HmapTimeSeries", "Stream"])
def test_since_null_means_rows_written_after_start(make_sink: MakeSink,
                                                   make_source: Callable[..., RedisSource],
                                                   clock: FakeClock, structure: str) -> None:
    """With since: null, rows older than the start are not forwarded."""
    sink = make_sink(structure=structure, redis_node="edge")
    sink.write(batch(rows("bmv700", NOW - 5, 5)))
    source = make_source(hmap_input() if structure == "HmapTimeSeries" else stream_input())
    assert source.rows_since(0) == []
    new = rows("bmv700", NOW, 2)
    sink.write(batch(new))
    assert source.rows_since(0) == new


def test_node_and_input_names_can_differ(make_sink: MakeSink,
                                         make_source: Callable[..., RedisSource]) -> None:
    """``node`` names the writer's input; the rows carry this input's name."""
    make_sink(redis_node="edge").write(batch(rows("smart_solar", NOW, 2)))
    item = RedisInput(name="site1_mppt", source="edge", redis_node="edge", node="smart_solar",
                      since=0)
    other = hmap_input(since=0)
    source = make_source(item, other)
    got = source.rows_since(0, "site1_mppt")
    assert [r.input for r in got] == ["site1_mppt", "site1_mppt"]
    assert source.rows_since(0, "bmv700") == []
    assert source.latest("site1_mppt") is not None


def test_reads_hashes_written_by_vemonitor_m8(raw: redis.Redis,
                                              make_source: Callable[..., RedisSource]) -> None:
    """A hash without vemonitor's index (the original's layout) is still read."""
    raw.sadd("edge", "edge_bmv700")
    raw.hset("edge_bmv700", mapping={str(int(NOW) + i): json.dumps({"V": i}) for i in range(3)})
    source = make_source(hmap_input(since=0))
    assert [(r.time, r.values) for r in source.rows_since(NOW)] == [
        (NOW + 1, {"V": 1}), (NOW + 2, {"V": 2})]


def test_an_unreachable_server_returns_nothing_and_is_counted(
        make_source: Callable[..., RedisSource]) -> None:
    """Reads never raise into the engine: no rows, no latest, an error counted; the second
    read comes within the back-off pause, so it does not try the server again."""
    conn = RedisConnector(host=LOOPBACK, port=free_port(), socket_connect_timeout=1)
    source = make_source(hmap_input(since=0), conn=conn)
    assert source.rows_since(0) == []
    assert source.latest() is None
    assert source.stats()["errors"] == 1 and source.stats()["available"] is False
