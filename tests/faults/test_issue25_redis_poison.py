"""Issue 25 point 4 for the Redis inputs, and the Redis output's XADD, on real servers.

* A plain Redis server down at start or mid-run: before, every read (every tick) tried
  the server again, with its connection timeout; now one WARNING per outage and no
  new attempt before the back-off pause (1 s doubling to 60 s).
* The Redis and Redis Cluster inputs follow MQTT's rules: a value over MAX_TEXT is
  measured (HSTRLEN) and never fetched, a nest or a bad key is refused before parsing,
  each bad row is counted by kind and said once an hour per kind, the good rows of the
  same read are kept.
* The Redis output and ``"time": 0``: the stream id 0-0 made the whole write fail, and
  the batch was sent again for ever. Now that row is left out and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from vemonitor_integrations.redis import layout
from vemonitor_integrations.redis.schema import RedisConnector, RedisInput, Structure
from vemonitor_integrations.redis.sink import RedisSink
from vemonitor_integrations.redis.source import RedisSource

from tests.integrations.helpers import NOW, FakeClock
from tests.integrations.redis.cluster import RedisClusterServers
from tests.integrations.redis.support import hmap_input, rows, stream_input
from tests.servers import LOOPBACK, RedisServer, free_port
from vemonitor.api import Batch, Context, Row
from vemonitor.outside import MAX_TEXT

HUGE = "x" * (MAX_TEXT * 16)  # 1 MiB: far over the bound
DEEP = "[" * 5000 + "]" * 5000  # under MAX_TEXT, far over the nesting bound


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and text in r.getMessage()]


def test_plain_redis_down_at_start_and_mid_run_is_retried_with_backoff(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Down at start, up, down mid-run, up: no exception, reads give nothing meanwhile and
    do not each try the server (errors stay at one per back-off pause), one WARNING per
    outage, and rows written after each return are read."""
    caplog.set_level(logging.INFO, "vemonitor_integrations.redis.source")
    port = free_port()
    connector = RedisConnector(host=LOOPBACK, port=port, socket_timeout=1,
                               socket_connect_timeout=1)
    source = RedisSource("edge", connector, Context(clock=FakeClock(), state_dir=str(tmp_path)))
    source.subscribe(hmap_input(since=NOW - 10))
    server = RedisServer(port=port, workdir=tmp_path / "redis")
    try:
        source.start()  # nothing listens: no exception
        for _ in range(50):  # the engine's ticks during the outage
            assert source.rows_since(NOW - 10) == []
        assert source.stats()["available"] is False
        # One attempt, then the pause (1 s): 50 reads are not 50 connection attempts.
        assert source.stats()["errors"] <= 2, source.stats()
        server.start()
        _write_hmap(port, [NOW, NOW + 1])
        assert _poll(source, NOW - 10, 2) == [NOW, NOW + 1]
        server.stop()  # mid-run
        errors = source.stats()["errors"]
        for _ in range(50):
            assert source.rows_since(NOW + 1) == []
        assert source.stats()["errors"] - errors <= 2, source.stats()
        server.start()
        _write_hmap(port, [NOW + 2])
        assert _poll(source, NOW + 1, 1) == [NOW + 2]
    finally:
        source.close()
        server.cleanup()
    assert len(_warnings(caplog, "retrying with backoff")) == 2  # one per outage
    assert source.stats()["reconnects"] == 2


def _write_hmap(port: int, stamps: list[float], text: str | None = None) -> None:
    client = redis.Redis(host=LOOPBACK, port=port, decode_responses=True)
    key, index = layout.hmap_key("edge", "bmv700"), layout.index_key("edge", "bmv700")
    value = text or layout.encode_values({"V": 12.5})
    client.hset(key, mapping={str(int(s)): value for s in stamps})
    client.zadd(index, {str(int(s)): s for s in stamps})
    client.close()


def _poll(source: RedisSource, after: float, count: int) -> list[float]:
    """Read until ``count`` rows came (the source waits out its back-off pause)."""
    import time
    deadline = time.monotonic() + 90
    times: list[float] = []
    while len(times) < count:
        assert time.monotonic() < deadline, f"only {times} read"
        times += [row.time for row in source.rows_since(max([after, *times]))]
        time.sleep(0.2)
    return times


# Each bad row and the kind it is counted as (vemonitor.outside's names).
BAD_HASH_VALUES = {
    "too_large": HUGE,
    "too_deep": '{"V": ' + DEEP + "}",
    "not_json": "{x]",
    "wrong_type": '{"' + "k" * 300 + '": 1}',  # a key longer than MAX_STRING
}


def test_bad_hash_rows_are_set_aside_by_kind_and_huge_ones_never_fetched(
        raw: redis.Redis, make_source: Callable[..., RedisSource],
        caplog: pytest.LogCaptureFixture) -> None:
    """Among good rows: 1 MiB values, 5000-deep nests, not JSON, over-long keys, each 20
    times. The good rows are read in the same call, each bad one counted by kind, one
    WARNING per kind, and the 20 MiB of huge values never leave the server."""
    caplog.set_level(logging.WARNING, "vemonitor_integrations.redis.source")
    key, index = layout.hmap_key("edge", "bmv700"), layout.index_key("edge", "bmv700")
    stamps: dict[int, str] = {}
    for i in range(100):
        kinds = list(BAD_HASH_VALUES.values())
        stamps[int(NOW) + i] = kinds[i % 5] if i % 5 < 4 else layout.encode_values({"V": 12.5})
    for stamp, text in stamps.items():
        raw.hset(key, str(stamp), text)
    raw.zadd(index, {str(s): s for s in stamps})
    sent_before = int(raw.info("stats")["total_net_output_bytes"])
    source = make_source(hmap_input(since=NOW - 10))
    got = [row.time for row in source.rows_since(NOW - 10)]
    sent = int(raw.info("stats")["total_net_output_bytes"]) - sent_before
    assert got == [NOW + i for i in range(100) if i % 5 == 4]
    assert source.stats()["rejected"] == {kind: 20 for kind in BAD_HASH_VALUES}
    assert sent < len(HUGE), f"{sent} bytes sent: a huge value was fetched"
    for kind in BAD_HASH_VALUES:
        assert len(_warnings(caplog, f"({kind}")) == 1, kind


def test_bad_stream_entries_cost_only_themselves(
        raw: redis.Redis, make_source: Callable[..., RedisSource],
        caplog: pytest.LogCaptureFixture) -> None:
    """Stream entries with a 1 MiB field, a deep nest, an over-long key between good ones:
    the good ones are read, the bad ones counted by kind, one WARNING per kind."""
    caplog.set_level(logging.WARNING, "vemonitor_integrations.redis.source")
    key = layout.stream_key("vemonitor:", "bmv700")
    bad = [{"V": HUGE}, {"V": DEEP}, {"k" * 300: "1"}]
    for i in range(40):
        fields = bad[i % 4] if i % 4 < 3 else {"V": "12.5"}
        raw.xadd(key, fields, id=f"{int(NOW * 1000) + i * 1000}-0")
    source = make_source(stream_input(since=NOW - 10))
    got = [row.time for row in source.rows_since(NOW - 10)]
    assert got == [NOW + i for i in range(40) if i % 4 == 3]
    assert source.stats()["rejected"] == {"too_large": 10, "too_deep": 10, "wrong_type": 10}
    assert len(_warnings(caplog, "rejected")) == 3


def test_redis_cluster_input_sets_bad_rows_aside(tmp_path: Path) -> None:
    """The same rules on a real Redis Cluster (hash-tagged keys, one slot per input)."""
    cluster = RedisClusterServers(tmp_path / "cluster")
    cluster.start()
    connector = RedisConnector(startup_nodes=cluster.startup_nodes)
    source = RedisSource("fleet", connector, Context(clock=FakeClock(), state_dir=str(tmp_path)))
    source.subscribe(RedisInput(name="bmv700", source="fleet", redis_node="edge",
                                since=NOW - 10))
    client = redis.RedisCluster(host=LOOPBACK, port=cluster.nodes[0].port, decode_responses=True)
    try:
        names = layout.Names(cluster=True)
        key, index = names.hmap("edge", "bmv700"), names.index("edge", "bmv700")
        texts = [HUGE, DEEP, layout.encode_values({"V": 12.5})]
        for i in range(30):
            client.hset(key, str(int(NOW) + i), texts[i % 3])
            client.zadd(index, {str(int(NOW) + i): NOW + i})
        source.start()
        got = [row.time for row in source.rows_since(NOW - 10)]
    finally:
        client.close()
        source.close()
        cluster.cleanup()
    assert got == [NOW + i for i in range(30) if i % 3 == 2]
    assert source.stats()["rejected"] == {"too_large": 10, "too_deep": 10}


def test_redis_output_leaves_out_a_row_stamped_0(raw: redis.Redis,
                                                 make_sink: Callable[..., RedisSink]) -> None:
    """Rows stamped 0, before 1970 and past any stream id, in one batch with good rows:
    the write succeeds (before: XADD 0-0 failed the batch, retried for ever), the good
    rows are in the stream, the others counted; the same batch again writes nothing new."""
    sink = make_sink(structure=Structure.Stream)
    good = rows("bmv700", NOW, 3)
    bad = [Row(t, "bmv700", {"V": 12.0}) for t in (0.0, -5.0, 1e300)]
    batch = Batch("redis", tuple(sorted([*good, *bad], key=lambda r: r.time)))
    sink.write(batch)
    sink.write(batch)  # a retry of the same batch: nothing new, nothing fails
    key = layout.stream_key("vemonitor:", "bmv700")
    ids = [entry_id for entry_id, _ in raw.xrange(key)]
    assert ids == [f"{int(NOW * 1000) + i * 1000}-0" for i in range(3)]
    assert sink.stats()["refused"] == 6  # 3 rows, each write



class _TricklingClusterClient:
    """A cluster client whose read never completes until it is closed, as redis-py's does
    against a node that sends a byte just inside each per-read timeout (unit edge: a real
    cluster node cannot be made to trickle)."""

    def __init__(self) -> None:
        import threading

        self.closed = threading.Event()

    def read(self) -> list[Row]:
        self.closed.wait(30)  # the socket shut down by close() ends the blocked read
        raise redis.ConnectionError("connection closed while reading")

    def close(self) -> None:
        self.closed.set()


def test_a_cluster_read_has_one_deadline_per_request(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Issue 25 point 4 for the Redis Cluster input: redis-py times out per read, so the
    input gives the whole request socket_timeout: past it the client is closed (which ends
    the blocked read), the read is an outage said once, and the input goes on after the
    pause with a new client, never held by the node."""
    connector = RedisConnector(startup_nodes=[f"{LOOPBACK}:{free_port()}"], socket_timeout=0.5)
    source = RedisSource("fleet", connector, Context(clock=FakeClock(), state_dir=str(tmp_path)))
    client = _TricklingClusterClient()
    source.client = client  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING):
        got = source._guard(lambda c: c.read(), ["default"])  # type: ignore[attr-defined]
    assert got == ["default"]
    assert client.closed.is_set() and source.client is None
    assert source.stats()["errors"] == 1 and source.stats()["available"] is False
    lines = [r.getMessage() for r in caplog.records if "input fleet" in r.getMessage()]
    assert len(lines) == 1 and "socket_timeout (0.5 s)" in lines[0]
