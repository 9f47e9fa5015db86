"""Fixtures of the engine tests: a real redis-server (the history rows' network sink)."""

from tests.integrations.redis.support import raw, redis_server  # noqa: F401 (fixtures)
