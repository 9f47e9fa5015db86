"""The Redis output: exact layouts, cheap trimming, idempotent retries, one round trip."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from vemonitor_integrations.redis import resp
from vemonitor_integrations.redis.client import META_KEY, RedisForeignDb, RedisUnavailable
from vemonitor_integrations.redis.schema import RedisConnector
from vemonitor_integrations.redis.sink import RedisSink

from tests.integrations.helpers import NOW
from tests.integrations.redis.support import batch, commandstats, rows
from tests.servers import LOOPBACK, RedisServer
from vemonitor import testing
from vemonitor.api import Context

MakeSink = Callable[..., RedisSink]


def dump(client: redis.Redis) -> dict[str, Any]:
    """Return every key of the db with its content (the meta marker left out)."""
    out: dict[str, Any] = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        if key == META_KEY:
            continue
        if kind == "set":
            out[key] = sorted(client.smembers(key))
        elif kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = client.xrange(key)
    return out


# ---------------------------------------------------------------- HmapTimeSeries
def test_hmap_layout_is_the_originals(make_sink: MakeSink, raw: redis.Redis) -> None:
    """SET <redis_node> of <redis_node>_<node>; HASH fields are epoch seconds, values JSON."""
    sink = make_sink()
    sink.write(batch(rows("bmv700", NOW, 3), rows("smart_solar", NOW + 0.5, 2)))
    assert raw.smembers("bmv700") == {"bmv700_bmv700", "bmv700_smart_solar"}
    fields = raw.hgetall("bmv700_bmv700")
    assert sorted(fields) == [str(int(NOW) + i) for i in range(3)]
    assert json.loads(fields[str(int(NOW))]) == {"V": 12.5, "SOC": 90, "Relay": "OFF",
                                                 "Alarm": True, "TTG": None}
    assert sorted(raw.hkeys("bmv700_smart_solar")) == [str(int(NOW)), str(int(NOW) + 1)]
    assert raw.type("bmv700_bmv700:idx") == "zset"
    assert raw.zcard("bmv700_bmv700:idx") == 3


def test_hmap_trims_to_max_items_without_scanning(make_sink: MakeSink,
                                                  raw: redis.Redis) -> None:
    """Only the newest max_items fields stay; write() never runs HKEYS/HGETALL/HSCAN."""
    sink = make_sink(max_items=5)
    raw.config_resetstat()
    for start in range(0, 12, 3):  # 4 batches of 3 rows
        sink.write(batch(rows("bmv700", NOW + start, 3)))
    calls = commandstats(raw)
    assert not {"hkeys", "hgetall", "hscan", "keys", "scan"} & set(calls)
    expected = [str(int(NOW) + i) for i in range(7, 12)]
    assert sorted(raw.hkeys("bmv700_bmv700")) == expected
    assert raw.zrange("bmv700_bmv700:idx", 0, -1) == expected
    assert sink.trimmed == 7


def test_hmap_rewrite_of_the_same_batch_changes_nothing(make_sink: MakeSink,
                                                        raw: redis.Redis) -> None:
    """Writing a batch again (a retry after an unclear failure) leaves the db identical."""
    sink = make_sink(max_items=4)
    first, second = batch(rows("bmv700", NOW, 3)), batch(rows("bmv700", NOW + 3, 3))
    sink.write(first)
    sink.write(second)
    before = dump(raw)
    sink.write(second)
    sink.write(first)  # older than the window: re-added, then trimmed again
    assert dump(raw) == before


def test_hmap_one_round_trip_per_batch(make_sink: MakeSink, raw: redis.Redis,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of many rows and inputs is sent as one command (one round trip)."""
    sink = make_sink(max_items=50)
    sent: list[int] = []
    writer = threading.current_thread()  # sink.write runs in the test's own thread
    original = resp.RespClient.round_trip
    # Steady state: the first batch on a server that does not know the script yet also
    # loads it (NOSCRIPT, then the script): without this write the count depended on
    # whether an earlier test had loaded it into this worker's server.
    sink.write(batch(rows("bmv700", NOW - 10_000, 1), rows("mppt", NOW - 10_000, 1)))

    def counting(self: Any, commands: Any) -> Any:  # one write, then its replies
        if threading.current_thread() is writer:  # not a thread left by an earlier test
            sent.append(1)                         # in the same (parallel) worker
        return original(self, commands)

    monkeypatch.setattr(resp.RespClient, "round_trip", counting)
    sink.write(batch(rows("bmv700", NOW, 120), rows("mppt", NOW, 120)))  # overflows and trims
    assert len(sent) == 1
    assert raw.hlen("bmv700_bmv700") == 50 and raw.hlen("bmv700_mppt") == 50


def test_hmap_large_batch_stays_under_lua_limits(make_sink: MakeSink,
                                                 raw: redis.Redis) -> None:
    """A batch larger than Lua's unpack limit (10 000 rows) is written and trimmed."""
    sink = make_sink(max_items=3600)
    sink.write(batch(rows("bmv700", NOW, 10_000)))
    assert raw.hlen("bmv700_bmv700") == 3600
    assert min(map(int, raw.hkeys("bmv700_bmv700"))) == int(NOW) + 6400


# ---------------------------------------------------------------- Stream
def test_stream_xadd_ids_are_row_times_and_values_json(make_sink: MakeSink,
                                                       raw: redis.Redis) -> None:
    """One entry per row at <prefix><node>, id = time in ms, one JSON-encoded field per value."""
    sink = make_sink(structure="Stream", redis_node=None)
    sink.write(batch(rows("bmv700", NOW, 2), rows("mppt", NOW + 0.25, 1)))
    entries = raw.xrange("vemonitor:bmv700")
    assert [e[0] for e in entries] == [f"{int(NOW * 1000)}-0", f"{int(NOW * 1000) + 1000}-0"]
    assert entries[0][1] == {"V": "12.5", "SOC": "90", "Relay": '"OFF"', "Alarm": "true",
                             "TTG": "null"}
    assert raw.xrange("vemonitor:mppt")[0][0] == f"{int(NOW * 1000) + 250}-0"


def test_stream_retry_is_idempotent(make_sink: MakeSink, raw: redis.Redis) -> None:
    """Re-writing a batch, or one half-written before, adds nothing twice."""
    sink = make_sink(structure="Stream", redis_node=None)
    all_rows = rows("bmv700", NOW, 6)
    sink.write(batch(all_rows[:3]))  # as if the first half of a batch had been written
    sink.write(batch(all_rows))
    sink.write(batch(all_rows))
    ids = [e[0] for e in raw.xrange("vemonitor:bmv700")]
    assert ids == [f"{int(NOW * 1000) + i * 1000}-0" for i in range(6)]
    assert sink.skipped == 3 + 6


def test_stream_is_trimmed_to_about_max_items(make_sink: MakeSink, raw: redis.Redis) -> None:
    """MAXLEN ~ keeps the stream near max_items (whole nodes trimmed, never below)."""
    sink = make_sink(structure="Stream", redis_node=None, stream_prefix="ve:", max_items=100)
    for start in range(0, 1000, 100):
        sink.write(batch(rows("bmv700", NOW + start, 100)))
    length = raw.xlen("ve:bmv700")
    assert 100 <= length < 300
    assert raw.xrevrange("ve:bmv700", count=1)[0][0] == f"{int(NOW * 1000) + 999_000}-0"


def test_stream_one_round_trip_per_batch(make_sink: MakeSink,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream batch of many rows and inputs is one command on the wire."""
    sink = make_sink(structure="Stream", redis_node=None)
    sent: list[int] = []
    writer = threading.current_thread()  # sink.write runs in the test's own thread
    original = resp.RespClient.round_trip
    # Steady state: the first batch on a server that does not know the script yet also
    # loads it (NOSCRIPT, then the script): without this write the count depended on
    # whether an earlier test had loaded it into this worker's server.
    sink.write(batch(rows("bmv700", NOW - 10_000, 1), rows("mppt", NOW - 10_000, 1)))

    def counting(self: Any, commands: Any) -> Any:  # one write, then its replies
        if threading.current_thread() is writer:  # not a thread left by an earlier test
            sent.append(1)                         # in the same (parallel) worker
        return original(self, commands)

    monkeypatch.setattr(resp.RespClient, "round_trip", counting)
    sink.write(batch(rows("bmv700", NOW, 60), rows("mppt", NOW, 60)))
    assert len(sent) == 1


# ---------------------------------------------------------------- cost
# Per batch and input, in steady state (full, trimming every batch):
# HmapTimeSeries: EVALSHA + EXISTS(meta) + SADD + HSET + ZADD + ZCARD + ZPOPMIN + HDEL = 8;
# Stream: EVALSHA + EXISTS(meta) + XREVRANGE = 3, plus one XADD per row.
@pytest.mark.parametrize(("structure", "per_batch", "per_row"),
                         [("HmapTimeSeries", 8, 0), ("Stream", 3, 1)])
def test_commands_per_row_are_bounded(make_sink: MakeSink, raw: redis.Redis, structure: str,
                                      per_batch: int, per_row: int) -> None:
    """Server-side commands (INFO commandstats, script internals included) are O(1) per batch."""
    sink = make_sink(structure=structure, max_items=60)
    for start in range(0, 300, 10):  # reach steady state
        sink.write(batch(rows("bmv700", NOW + start, 10)))
    cursor = 300
    for size in (1, 10, 60):
        raw.config_resetstat()
        for _ in range(10):  # 10 batches of `size` new rows
            sink.write(batch(rows("bmv700", NOW + cursor, size)))
            cursor += size
        calls = commandstats(raw)
        print(f"{structure} batch of {size}: {sum(calls.values()) / (10 * size):.2f} "
              f"commands/row {calls}")
        assert calls["evalsha"] == 10
        assert sum(calls.values()) == 10 * per_batch + 10 * size * per_row


# ---------------------------------------------------------------- ownership
def test_empty_db_is_claimed(make_sink: MakeSink, raw: redis.Redis) -> None:
    """Starting on an empty db writes vemonitor_meta {app, created}."""
    make_sink()
    meta = raw.hgetall(META_KEY)
    assert meta == {"app": "vemonitor", "created": str(int(NOW))}


def test_db_of_another_application_is_refused(make_sink: MakeSink, raw: redis.Redis,
                                              connector: RedisConnector) -> None:
    """Keys but no vemonitor_meta: start() refuses with a clear error and writes nothing."""
    raw.set("someone:else", "1")
    with pytest.raises(RedisForeignDb) as info:
        make_sink()
    assert str(info.value).startswith(
        f"db 0 of {LOOPBACK}:{connector.port} is used by another application")
    assert raw.keys("*") == ["someone:else"]


def test_write_refuses_a_db_taken_over_meanwhile(make_sink: MakeSink,
                                                 raw: redis.Redis) -> None:
    """The check is repeated atomically at each write (the marker gone, other keys present)."""
    sink = make_sink()
    raw.delete(META_KEY)
    raw.set("someone:else", "1")
    with pytest.raises(RedisForeignDb):
        sink.write(batch(rows("bmv700", NOW, 1)))
    assert raw.keys("*") == ["someone:else"]


def test_other_dbs_are_left_alone(make_sink: MakeSink, raw: redis.Redis,
                                  connector: RedisConnector) -> None:
    """A sink on db 3 claims and writes db 3 only."""
    conn = RedisConnector(host=LOOPBACK, port=connector.port, db=3)
    make_sink(conn=conn).write(batch(rows("bmv700", NOW, 1)))
    assert raw.dbsize() == 0
    db3 = redis.Redis(host=LOOPBACK, port=connector.port, db=3, decode_responses=True)
    assert db3.exists(META_KEY, "bmv700", "bmv700_bmv700") == 3
    db3.close()


# ---------------------------------------------------------------- outages
def test_write_raises_when_the_server_is_down_and_works_after_restart(ctx: Context) -> None:
    """write() raises RedisUnavailable at once (no internal retry); after restart it writes."""
    with RedisServer() as server:
        conn = RedisConnector(host=LOOPBACK, port=server.port, socket_timeout=1,
                              socket_connect_timeout=1)
        from vemonitor_integrations.redis import create_sink
        from vemonitor_integrations.redis.schema import RedisOutput

        sink = create_sink(RedisOutput(name="redis", source="x", redis_node="bmv700"), conn, ctx)
        sink.start()
        sink.write(batch(rows("bmv700", NOW, 1)))
        server.stop()
        with pytest.raises(RedisUnavailable, match=f"{LOOPBACK}:{server.port}/0"):
            sink.write(batch(rows("bmv700", NOW + 1, 1)))
        server.start()  # restarted empty (no persistence): the db is claimed again
        sink.write(batch(rows("bmv700", NOW + 2, 1)))
        client = redis.Redis(host=LOOPBACK, port=server.port, decode_responses=True)
        assert client.hkeys("bmv700_bmv700") == [str(int(NOW) + 2)]
        assert client.hget(META_KEY, "app") == "vemonitor"
        client.close()
        sink.close()
        sink.close()  # idempotent


def test_start_with_the_server_down_defers_the_claim(ctx: Context) -> None:
    """start() does not fail on an outage (the outbox keeps batches); write() raises."""
    from vemonitor_integrations.redis import create_sink
    from vemonitor_integrations.redis.schema import RedisOutput

    from tests.servers import free_port

    conn = RedisConnector(host=LOOPBACK, port=free_port(), socket_connect_timeout=1)
    sink = create_sink(RedisOutput(name="redis", source="x", redis_node="n"), conn, ctx)
    sink.start()
    with pytest.raises(RedisUnavailable):
        sink.write(batch(rows("bmv700", NOW, 1)))
    sink.close()


def test_the_sink_keeps_the_shipped_contract(make_sink: MakeSink, raw: redis.Redis) -> None:
    """vemonitor.testing.check_sink_contract, as a plugin author would run it: close before
    start, a retried batch stored once (one hash field per row and time)."""
    sample = testing.batch("redis", testing.rows(NOW, 5, "bmv"),
                           testing.rows(NOW, 3, "solar", {"PPV": 120}))
    testing.check_sink_contract(lambda: make_sink(start=False), sample,
                                lambda: raw.hlen("bmv700_bmv") + raw.hlen("bmv700_solar"))
