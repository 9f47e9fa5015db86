"""Issue 25 point 4 (Redis inputs), on real servers: a run of bad rows as long as one read
is stepped over (it was read again at every call, for ever); a Redis Cluster down at
start or mid-run is retried with backoff (it was a traceback)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from vemonitor_integrations.redis import layout
from vemonitor_integrations.redis.schema import RedisConnector, RedisInput, Structure
from vemonitor_integrations.redis.source import MAX_ROWS, RedisSource

from tests.integrations.helpers import NOW, FakeClock
from tests.integrations.redis.cluster import RedisClusterServers
from tests.integrations.redis.support import hmap_input, stream_input
from tests.servers import LOOPBACK
from vemonitor.api import Context

BAD_RUN = 10_000  # consecutive bad rows, as many as one read returns (MAX_ROWS)


def _read_all(source: RedisSource, after: float, calls: int) -> list[float]:
    """Read as the engine does (from the last row it got), ``calls`` times."""
    times: list[float] = []
    for _ in range(calls):
        rows = source.rows_since(after)
        times += [row.time for row in rows]
        after = rows[-1].time if rows else after
    return times


def test_10000_bad_hash_rows_then_good_ones(raw: object,
                                            make_source: Callable[..., RedisSource]) -> None:
    assert BAD_RUN >= MAX_ROWS
    key, index = layout.hmap_key("edge", "bmv700"), layout.index_key("edge", "bmv700")
    bad = {str(NOW + i): "{x]" for i in range(BAD_RUN)}
    good = {str(NOW + BAD_RUN + i): layout.encode_values({"V": 12.5}) for i in range(3)}
    raw.hset(key, mapping={**bad, **good})  # type: ignore[attr-defined]
    raw.zadd(index, {stamp: float(stamp) for stamp in [*bad, *good]})  # type: ignore[attr-defined]
    source = make_source(hmap_input(since=NOW - 10))
    got = _read_all(source, NOW - 10, calls=3)
    assert got == [NOW + BAD_RUN + i for i in range(3)]
    assert source.stats()["rejected"] == {"not_json": BAD_RUN}  # each bad row once


def test_10000_bad_stream_entries_then_good_ones(raw: object,
                                                 make_source: Callable[..., RedisSource]) -> None:
    key = layout.stream_key("vemonitor:", "bmv700")
    ms = int(NOW * 1000)
    pipe = raw.pipeline(transaction=False)  # type: ignore[attr-defined]
    for i in range(BAD_RUN):
        # Not JSON: the whole entry is unusable (a NaN or Infinity value would cost only
        # that field now, issue 25's typed fields, and the row would be kept).
        pipe.xadd(key, {"V": "{x]"}, id=f"{ms + i * 1000}-0")
    for i in range(3):
        pipe.xadd(key, {"V": "12.5"}, id=f"{ms + (BAD_RUN + i) * 1000}-0")
    pipe.execute()
    source = make_source(stream_input(since=NOW - 10))
    got = _read_all(source, NOW - 10, calls=3)
    assert got == [NOW + BAD_RUN + i for i in range(3)]
    assert source.stats()["rejected"] == {"not_json": BAD_RUN}


def _poll(source: RedisSource, after: float, count: int) -> list[float]:
    """Read until ``count`` rows came (the source retries its cluster with backoff)."""
    deadline = time.monotonic() + 90
    times: list[float] = []
    while len(times) < count:
        assert time.monotonic() < deadline, f"only {times} read"
        times += [row.time for row in source.rows_since(max([after, *times]))]
        time.sleep(0.2)
    return times


def _add(cluster: RedisClusterServers, stamps: list[float]) -> None:
    client = redis.RedisCluster(host=LOOPBACK, port=cluster.nodes[0].port,
                                decode_responses=True)
    key = layout.Names(cluster=True).stream("vemonitor:", "bmv700")
    for stamp in stamps:
        client.xadd(key, {"V": "12.5"}, id=f"{int(stamp * 1000)}-0")
    client.close()


def test_redis_cluster_input_down_at_start_and_mid_run_is_retried(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The cluster is down when the input starts (it raised out of start(), a traceback),
    comes up, goes down mid-run and comes back: reads return nothing meanwhile, one
    WARNING per outage, and the rows written after each return are read."""
    cluster = RedisClusterServers(tmp_path / "cluster")
    connector = RedisConnector(startup_nodes=cluster.startup_nodes, socket_timeout=1,
                               socket_connect_timeout=1)
    source = RedisSource("fleet", connector, Context(clock=FakeClock(),
                                                     state_dir=str(tmp_path)))
    source.subscribe(RedisInput(name="bmv700", source="fleet", structure=Structure.Stream,
                                since=NOW - 10))
    try:
        source.start()  # down at start: no exception
        assert source.rows_since(NOW - 10) == []
        assert source.stats()["available"] is False
        cluster.start()
        _add(cluster, [NOW, NOW + 1])
        assert _poll(source, NOW - 10, 2) == [NOW, NOW + 1]
        for node in cluster.nodes:  # the whole cluster goes away mid-run
            node.stop()
        assert source.rows_since(NOW + 1) == []
        for node in cluster.nodes:
            node.start()
        cluster.wait_ok()
        _add(cluster, [NOW + 2])
        assert _poll(source, NOW + 1, 1) == [NOW + 2]
    finally:
        source.close()
        cluster.cleanup()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"
                and "retrying with backoff" in r.getMessage()]
    assert len(warnings) == 2, warnings  # one per outage, not one per read
    assert all("cluster" in line for line in warnings)
    assert source.stats()["reconnects"] == 2
