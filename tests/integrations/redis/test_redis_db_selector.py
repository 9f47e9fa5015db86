"""vemonitor_m8's db rules (connector ``db_selector``), against a real redis-server.

The seed (vemonitor_m8/workers/redis/redis_api.py, RedisApi.run_db_selector and
control_current_db) uses the configured db when it is empty or its ``vemonitor_meta``
hash says ``controled_by: vemonitor_m8``; otherwise the first such db of 0..15.
"""

from __future__ import annotations

import dataclasses

import pytest
import redis
from vemonitor_integrations.redis import create_source
from vemonitor_integrations.redis.client import RedisForeignDb, select_db
from vemonitor_integrations.redis.schema import RedisConnector, RedisInput
from vemonitor_integrations.redis.source import RedisSource

from tests.integrations.helpers import NOW
from tests.integrations.redis.support import batch, rows
from tests.servers import LOOPBACK, RedisServer
from vemonitor.api import Context


def db(server: RedisServer, number: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=server.port, db=number, decode_responses=True)


@pytest.fixture
def seed_connector(connector: RedisConnector) -> RedisConnector:
    """The connector a legacy configuration gets: db 3 and the seed's selector."""
    return dataclasses.replace(connector, db=3, db_selector=True)


def test_empty_configured_db_is_kept(seed_connector: RedisConnector) -> None:
    """An empty db 3 is the seed's choice (control_current_db initialises it)."""
    assert select_db(seed_connector).db == 3


def test_db_with_keys_but_no_seed_meta_is_skipped_for_db_0(
        seed_connector: RedisConnector, redis_server: RedisServer) -> None:
    """Keys without the seed's marker: 'Try another Redis db', from db 0 on."""
    db(redis_server, 3).set("foreign", "1")
    assert select_db(seed_connector).db == 0


def test_vemonitor_native_marker_is_not_the_seeds(
        seed_connector: RedisConnector, redis_server: RedisServer) -> None:
    """A db marked by vemonitor alone (app=vemonitor) fails the seed's is_db_meta."""
    db(redis_server, 3).hset("vemonitor_meta", mapping={"app": "vemonitor", "created": "1"})
    db(redis_server, 0).set("foreign", "1")
    assert select_db(seed_connector).db == 1


def test_db_marked_by_the_seed_is_used_even_with_data(
        seed_connector: RedisConnector, redis_server: RedisServer) -> None:
    """controled_by: vemonitor_m8 makes a non-empty db usable (the seed's own data)."""
    seed_db = db(redis_server, 3)
    seed_db.hset("vemonitor_meta", mapping={"controled_by": "vemonitor_m8", "version": "0.1.2"})
    seed_db.sadd("bmv700", "bmv700_bmv700")
    assert select_db(seed_connector).db == 3


def test_no_usable_db_is_a_foreign_db_error(
        seed_connector: RedisConnector, redis_server: RedisServer) -> None:
    """All 16 dbs hold another application's keys: refused, as the seed refused."""
    for number in range(16):
        db(redis_server, number).set("foreign", "1")
    with pytest.raises(RedisForeignDb, match="no db 0..15"):
        select_db(seed_connector)


def test_without_db_selector_the_connector_is_unchanged(
        connector: RedisConnector, redis_server: RedisServer) -> None:
    """Hydra-native connectors keep vemonitor's rule: the configured db, no search."""
    db(redis_server, 0).set("foreign", "1")
    assert select_db(connector) is connector


def test_sink_writes_the_seed_marker_in_the_selected_db(
        make_sink, seed_connector: RedisConnector, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    """The sink selects past a foreign db 3, marks db 0 as the seed's reader expects, and
    writes the hashes there; db 3 is left untouched."""
    db(redis_server, 3).set("foreign", "1")
    sink = make_sink(conn=seed_connector)
    sink.write(batch(rows("bmv700", 1_700_000_000, 3)))
    target = db(redis_server, 0)
    meta = target.hgetall("vemonitor_meta")
    assert meta["controled_by"] == "vemonitor_m8" and meta["app"] == "vemonitor"
    assert target.hlen("bmv700_bmv700") == 3
    assert db(redis_server, 3).keys("*") == ["foreign"]


def test_sink_refuses_a_db_that_turned_foreign(
        make_sink, seed_connector: RedisConnector, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    """After selection, a db whose marker vanished while keys remain is refused (the write
    script checks the seed's marker atomically), never written unmarked."""
    from vemonitor_integrations.redis.client import RedisForeignDb as Foreign

    sink = make_sink(conn=seed_connector)
    sink.write(batch(rows("bmv700", 1_700_000_000, 1)))
    target = db(redis_server, 3)
    target.delete("vemonitor_meta")
    with pytest.raises(Foreign):
        sink.write(batch(rows("bmv700", 1_700_000_010, 1)))


def test_legacy_input_reads_the_db_the_legacy_writer_chose(
        make_sink, seed_connector: RedisConnector, redis_server: RedisServer,  # type: ignore[no-untyped-def]
        ctx: Context) -> None:
    """A redis input with the same legacy connector follows the writer past a foreign db 3
    (it only reads: it never marks a db)."""
    db(redis_server, 3).set("foreign", "1")
    written = rows("bmv700", NOW, 4)
    make_sink(conn=seed_connector, redis_node="edge").write(batch(written))
    source = create_source("edge", seed_connector, ctx)
    assert isinstance(source, RedisSource)
    source.subscribe(RedisInput(name="bmv700", source="edge", redis_node="edge", since=NOW))
    source.start()
    try:
        assert [r.time for r in source.rows_since(0, "bmv700")] == [r.time for r in written]
    finally:
        source.close()
