"""RedisCache: the DataCache interface, bounded per input, surviving restarts and outages."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import pytest
import redis
from vemonitor_integrations.redis import create_cache, resp
from vemonitor_integrations.redis.cache import FLUSH_ROWS, RedisCache
from vemonitor_integrations.redis.client import META_KEY
from vemonitor_integrations.redis.schema import RedisConnector

from tests.engine.helpers import Recorder, block_config, running
from tests.integrations.helpers import NOW
from tests.integrations.redis.support import rows
from tests.servers import LOOPBACK, RedisServer
from vemonitor.api import Batch, Context
from vemonitor.datacache import DataCache
from vemonitor.model import Row


def test_same_answers_as_the_memory_cache(connector: RedisConnector, ctx: Context) -> None:
    """add/between/dropped behave as vemonitor.engine.DataCache does."""
    cache = create_cache(connector, 5, ctx)
    memory = DataCache(5)
    for row in rows("bmv700", NOW, 8) + rows("mppt", NOW, 3):
        cache.add(row)
        memory.add(row)
    for source in ("bmv700", "mppt", "absent"):
        for after, upto in ((0, NOW + 100), (NOW + 3, NOW + 6), (NOW + 6, NOW + 6)):
            assert cache.between(source, after, upto) == memory.between(source, after, upto)
    assert cache.dropped == memory.dropped == 3


def test_rows_survive_a_new_instance(connector: RedisConnector, ctx: Context,
                                     raw: redis.Redis) -> None:
    """A restarted daemon finds the rows not yet sent; the cache stays bounded."""
    first = RedisCache(connector, 4, ctx)
    for row in rows("bmv700", NOW, 3):
        first.add(row)
    first.close()  # the buffered rows are written at close (the engine's stop)
    assert raw.zcard("vemonitor:cache:bmv700") == 3
    second = RedisCache(connector, 4, ctx)
    assert second.between("bmv700", 0, NOW + 10) == rows("bmv700", NOW, 3)
    for row in rows("bmv700", NOW + 3, 3):
        second.add(row)
    second.flush()
    assert raw.zcard("vemonitor:cache:bmv700") == 4
    assert [r.time for r in second.between("bmv700", 0, NOW + 10)] == [NOW + i for i in
                                                                       range(2, 6)]
    assert raw.hget(META_KEY, "app") == "vemonitor"
    second.close()


def test_same_time_replaces_the_row(connector: RedisConnector, ctx: Context) -> None:
    """Adding a row for a time already cached replaces it (no duplicates)."""
    cache = RedisCache(connector, 10, ctx)
    cache.add(Row(NOW, "bmv700", {"V": 1}))
    cache.add(Row(NOW, "bmv700", {"V": 2}))
    assert cache.between("bmv700", 0, NOW) == [Row(NOW, "bmv700", {"V": 2})]


def test_outage_keeps_rows_in_memory_then_catches_up(
        ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    """While Redis is down flush() and add() do not raise (one log line); between() still
    answers; rows reach Redis after."""
    with RedisServer() as server:
        conn = RedisConnector(host=LOOPBACK, port=server.port, socket_timeout=1,
                              socket_connect_timeout=1)
        cache = RedisCache(conn, 10, ctx)
        data = rows("bmv700", NOW, 4)
        cache.add(data[0])
        cache.flush()
        server.stop()
        cache.add(data[1])
        cache.flush()  # fails: the outage starts
        cache.add(data[2])  # during an outage every add tries to catch up
        assert cache.between("bmv700", 0, NOW + 10) == data[1:3]
        outage_lines = [r for r in caplog.records if "keeping rows in memory" in r.message]
        assert len(outage_lines) == 1
        server.start()
        cache.add(data[3])
        client = redis.Redis(host=LOOPBACK, port=server.port, decode_responses=True)
        assert client.zcard("vemonitor:cache:bmv700") == 3  # data[0] was lost with the server
        assert cache.between("bmv700", 0, NOW + 10) == data[1:]
        client.close()
        cache.close()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Return the number of commands of each round trip of a RESP client, from now on."""
    counted: list[int] = []
    original = resp.RespClient.round_trip

    def counting(self: resp.RespClient, commands: Any) -> Any:
        counted.append(len(commands))
        return original(self, commands)

    monkeypatch.setattr(resp.RespClient, "round_trip", counting)
    return counted


@pytest.fixture
def evalsha_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Return the number of EVALSHA of each round trip that has any, from now on."""
    counted: list[int] = []
    original = resp.RespClient.round_trip

    def counting(self: resp.RespClient, commands: Any) -> Any:
        scripts = sum(1 for command in commands if str(command[0]).upper() == "EVALSHA")
        if scripts:
            counted.append(scripts)
        return original(self, commands)

    monkeypatch.setattr(resp.RespClient, "round_trip", counting)
    return counted


def test_rows_kept_through_an_outage_go_in_one_round_trip(ctx: Context,
                                                          trips: list[int]) -> None:
    """After an outage the buffered rows of every input are written by one pipelined
    round trip (plus SCRIPT LOAD: the restarted server knows no script), the new row with them."""
    with RedisServer() as server:
        conn = RedisConnector(host=LOOPBACK, port=server.port, socket_timeout=1,
                              socket_connect_timeout=1)
        cache = RedisCache(conn, 100, ctx)
        cache.add(rows("bmv700", NOW - 100, 1)[0])
        cache.flush()
        server.stop()
        kept = rows("bmv700", NOW, 30) + rows("mppt", NOW, 30)
        for row in kept:
            cache.add(row)
        cache.flush()  # fails: the outage starts, the rows stay in memory
        server.start()
        trips.clear()
        cache.add(rows("bmv700", NOW + 100, 1)[0])
        # 61 EVALSHA -> NOSCRIPT, SCRIPT LOAD, 61 EVALSHA (the connection's own handshake
        # is not a round_trip call)
        assert trips == [61, 1, 61]
        client = redis.Redis(host=LOOPBACK, port=server.port, decode_responses=True)
        assert client.zcard("vemonitor:cache:bmv700") == 31
        assert client.zcard("vemonitor:cache:mppt") == 30
        assert cache.between("mppt", 0, NOW + 1000) == kept[30:]
        assert cache._pending == {"bmv700": deque(), "mppt": deque()}
        client.close()
        cache.close()


def test_a_batch_of_rows_is_one_round_trip(connector: RedisConnector, ctx: Context,
                                           raw: redis.Redis, trips: list[int]) -> None:
    """add() only buffers; flush() writes the rows of every input in one round trip."""
    cache = RedisCache(connector, 100, ctx)
    cache.add(rows("bmv700", NOW - 10, 1)[0])
    cache.flush()  # the first write loads the script: count in steady state
    trips.clear()
    batch = rows("bmv700", NOW, 5) + rows("mppt", NOW, 5)
    for row in batch:
        cache.add(row)
    assert trips == []
    assert raw.zcard("vemonitor:cache:bmv700") == 1
    cache.flush()
    assert trips == [10]
    assert raw.zcard("vemonitor:cache:bmv700") == 6
    assert raw.zcard("vemonitor:cache:mppt") == 5
    cache.flush()  # nothing buffered: no round trip
    assert trips == [10]
    cache.close()


def test_a_full_buffer_is_written_without_a_flush(connector: RedisConnector, ctx: Context,
                                                  raw: redis.Redis, trips: list[int]) -> None:
    """The buffer is bounded: its FLUSH_ROWS-th row writes all of them in one round trip."""
    cache = RedisCache(connector, 1000, ctx)
    cache.add(rows("bmv700", NOW - 10, 1)[0])
    cache.flush()
    trips.clear()
    for row in rows("bmv700", NOW, 2 * FLUSH_ROWS + 3):
        cache.add(row)
    assert trips == [FLUSH_ROWS, FLUSH_ROWS]
    assert raw.zcard("vemonitor:cache:bmv700") == 1 + 2 * FLUSH_ROWS
    cache.close()
    assert raw.zcard("vemonitor:cache:bmv700") == 1 + 2 * FLUSH_ROWS + 3


def test_between_serves_written_and_buffered_rows(connector: RedisConnector, ctx: Context,
                                                  raw: redis.Redis) -> None:
    """between() answers across the rows in Redis and those still buffered, oldest first,
    a buffered row replacing a written one of the same time."""
    cache = RedisCache(connector, 100, ctx)
    data = rows("bmv700", NOW, 6)
    for row in data[:3]:
        cache.add(row)
    cache.flush()
    newer = Row(data[2].time, "bmv700", {"V": 13.0})
    for row in (newer, *data[3:]):
        cache.add(row)
    assert raw.zcard("vemonitor:cache:bmv700") == 3
    assert cache.between("bmv700", 0, NOW + 10) == [*data[:2], newer, *data[3:]]
    assert cache.between("bmv700", NOW, NOW + 3) == [data[1], newer, data[3]]
    cache.close()


class _CheckingRecorder(Recorder):
    """A sink that, as each batch arrives, notes the batch's rows missing from the cache's
    ZSETs in Redis."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.client = redis.Redis(host=LOOPBACK, port=port, decode_responses=True)
        self.missing: list[Row] = []

    def write(self, batch: Batch) -> None:
        for row in batch.rows:
            if self.client.zcount(f"vemonitor:cache:{row.input}", row.time, row.time) != 1:
                self.missing.append(row)
        super().write(batch)


def test_redis_holds_every_row_an_output_sent_and_every_row_at_stop(
        tmp_path: Path, evalsha_trips: list[int]) -> None:
    """A real run (simulated BMV-700, redis_cache, an output taking batches of 3): each row
    is in Redis when the output's sink gets it; at the stop every row made is there; the
    cache's rows went in one round trip per batch, not one per row."""
    with RedisServer(workdir=tmp_path / "redis") as server:
        sink = _CheckingRecorder(server.port)
        recorders: dict[str, Recorder] = {"seen": sink}
        inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "SOC"]}}
        outputs = {"record": {"seen": {"cache_interval": 3}}}
        config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
        config["appConnectors"]["redis"] = {"local": {"host": LOOPBACK, "port": server.port}}
        config["block"]["redis_cache"] = {"source": "local", "max_data_points": 120}
        with running(config, recorders, ["bmv700"], tmp_path / "sim", speed=4.0) as (engine, _):
            engine.run(24)
        made = engine.inputs[0].stats.rows
        stored = sink.client.zrange("vemonitor:cache:bmv", 0, -1)
        sink.client.close()
    assert made >= 12
    assert sink.missing == []
    assert len(sink.rows()) == made == len(stored)
    # One round trip of the cache's script per batch sent (the batch's rows), not one per
    # row; one more at most if a row came after the last batch (written at close).
    assert sum(evalsha_trips) == made
    assert len(evalsha_trips) <= len(sink.batches) + 1
    assert len(sink.batches) < made
