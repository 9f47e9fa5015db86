"""RedisCache: the DataCache interface, bounded per input, surviving restarts and outages."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
import redis
from vemonitor_integrations.redis import create_cache, resp
from vemonitor_integrations.redis.cache import RedisCache
from vemonitor_integrations.redis.client import META_KEY
from vemonitor_integrations.redis.schema import RedisConnector

from tests.integrations.helpers import NOW
from tests.integrations.redis.support import rows
from tests.servers import LOOPBACK, RedisServer
from vemonitor.api import Context
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
    first.close()
    second = RedisCache(connector, 4, ctx)
    assert second.between("bmv700", 0, NOW + 10) == rows("bmv700", NOW, 3)
    for row in rows("bmv700", NOW + 3, 3):
        second.add(row)
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


def test_outage_keeps_rows_in_memory_then_catches_up(ctx: Context) -> None:
    """While Redis is down add() does not raise; between() still answers; rows reach Redis after."""
    with RedisServer() as server:
        conn = RedisConnector(host=LOOPBACK, port=server.port, socket_timeout=1,
                              socket_connect_timeout=1)
        cache = RedisCache(conn, 10, ctx)
        data = rows("bmv700", NOW, 4)
        cache.add(data[0])
        server.stop()
        cache.add(data[1])
        cache.add(data[2])
        assert cache.between("bmv700", 0, NOW + 10) == data[1:3]
        server.start()
        cache.add(data[3])
        client = redis.Redis(host=LOOPBACK, port=server.port, decode_responses=True)
        assert client.zcard("vemonitor:cache:bmv700") == 3  # data[0] was lost with the server
        assert cache.between("bmv700", 0, NOW + 10) == data[1:]
        client.close()
        cache.close()


def test_rows_kept_through_an_outage_go_in_one_round_trip(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """After an outage the buffered rows of every input are written by one pipelined
    round trip (plus SCRIPT LOAD: the restarted server knows no script), then the new row."""
    with RedisServer() as server:
        conn = RedisConnector(host=LOOPBACK, port=server.port, socket_timeout=1,
                              socket_connect_timeout=1)
        cache = RedisCache(conn, 100, ctx)
        cache.add(rows("bmv700", NOW - 100, 1)[0])
        server.stop()
        kept = rows("bmv700", NOW, 30) + rows("mppt", NOW, 30)
        for row in kept:
            cache.add(row)
        server.start()
        trips: list[int] = []
        original = resp.RespClient.round_trip

        def counting(self: resp.RespClient, commands: Any) -> Any:
            trips.append(len(commands))
            return original(self, commands)

        monkeypatch.setattr(resp.RespClient, "round_trip", counting)
        cache.add(rows("bmv700", NOW + 100, 1)[0])
        # 60 EVALSHA -> NOSCRIPT, SCRIPT LOAD, 60 EVALSHA, the new row (the connection's
        # own handshake is not a round_trip call)
        assert trips == [60, 1, 60, 1]
        client = redis.Redis(host=LOOPBACK, port=server.port, decode_responses=True)
        assert client.zcard("vemonitor:cache:bmv700") == 31
        assert client.zcard("vemonitor:cache:mppt") == 30
        assert cache.between("mppt", 0, NOW + 1000) == kept[30:]
        assert cache._pending == {"bmv700": deque(), "mppt": deque()}
        client.close()
        cache.close()
