"""Fixtures of the Redis integration tests (defined in support.py, shared with tests/faults)."""

from tests.integrations.redis.support import (  # noqa: F401 (fixtures)
    clock,
    connector,
    ctx,
    make_sink,
    make_source,
    raw,
    redis_server,
)
