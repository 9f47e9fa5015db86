"""Fixtures of the fault suite: the real redis-server fixtures of the Redis integration tests."""

from tests.integrations.redis.conftest import (  # noqa: F401 (fixtures used by the fault tests)
    clock,
    connector,
    ctx,
    make_sink,
    raw,
    redis_server,
)
from tests.integrations.redis.test_redis_source import make_source  # noqa: F401 (fixture)
