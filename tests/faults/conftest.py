"""Fixtures of the fault suite: the real redis-server fixtures of the Redis integration tests."""

from tests.integrations.redis.support import (  # noqa: F401 (fixtures used by the fault tests)
    clock,
    connector,
    ctx,
    make_sink,
    make_source,
    raw,
    redis_server,
)
