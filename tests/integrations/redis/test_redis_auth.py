"""Password authentication against a server started with --requirepass; secrets stay secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from vemonitor_integrations.redis import create_sink
from vemonitor_integrations.redis.cache import RedisCache
from vemonitor_integrations.redis.client import RedisAuthError
from vemonitor_integrations.redis.schema import RedisConnector, RedisOutput

from tests.integrations.helpers import NOW
from tests.integrations.redis.support import batch, rows
from tests.servers import LOOPBACK, RedisServer
from vemonitor.api import Context

SECRET = "s3cr3t-Pa55word"
WRONG = "not-the-Pa55word"


@pytest.fixture(scope="module")
def locked_server() -> Iterator[RedisServer]:
    """Start a redis-server that requires SECRET."""
    with RedisServer(password=SECRET) as server:
        yield server


def output() -> RedisOutput:
    """Return a HmapTimeSeries output item."""
    return RedisOutput(name="redis", source="locked", redis_node="bmv700")


def test_right_password_writes(locked_server: RedisServer, ctx: Context) -> None:
    """With the password the sink claims the db and writes."""
    conn = RedisConnector(host=LOOPBACK, port=locked_server.port, password=SECRET)
    sink = create_sink(output(), conn, ctx)
    sink.start()
    sink.write(batch(rows("bmv700", NOW, 2)))
    sink.close()


@pytest.mark.parametrize("password", [WRONG, None])
def test_wrong_or_missing_password_is_a_clear_error_without_the_secret(
        locked_server: RedisServer, ctx: Context, caplog: pytest.LogCaptureFixture,
        password: str | None) -> None:
    """start() raises RedisAuthError naming the server, never the password given."""
    conn = RedisConnector(host=LOOPBACK, port=locked_server.port, password=password)
    sink = create_sink(output(), conn, ctx)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RedisAuthError) as info:
        sink.start()
    text = f"{info.value} {info.value!r} {sink!r} {conn!r} {caplog.text}"
    assert f"{LOOPBACK}:{locked_server.port}/0" in str(info.value)
    assert "authentication failed" in str(info.value)
    assert WRONG not in text and SECRET not in text
    sink.close()


def test_cache_refuses_a_wrong_password(locked_server: RedisServer, ctx: Context) -> None:
    """The cache raises the same clear error (a configuration problem, not an outage)."""
    conn = RedisConnector(host=LOOPBACK, port=locked_server.port, password=WRONG)
    cache = RedisCache(conn, 10, ctx)
    with pytest.raises(RedisAuthError) as info:
        cache.add(rows("bmv700", NOW, 1)[0])
    assert WRONG not in str(info.value)
