"""Connections to Redis: the client, the error taxonomy and the database-ownership marker.

Every error leaving this integration is a :class:`RedisIntegrationError`
subclass raised ``from`` the library's error, with a message naming
``host:port/db`` and never the password.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from integrations.redis.schema import RedisConnector
from vemonitor.errors import SinkAuthFailed, SinkError, SinkRejected, SinkUnavailable

META_KEY = "vemonitor_meta"
APP = "vemonitor"


class RedisIntegrationError(SinkError):
    """Base of the Redis integration's errors."""


class RedisUnavailable(RedisIntegrationError, SinkUnavailable):
    """The server cannot be reached or timed out: not ready, retry later."""


class RedisAuthError(RedisIntegrationError, SinkAuthFailed):
    """The server refused the credentials."""


class RedisForeignDb(RedisIntegrationError, SinkRejected):
    """The database holds another application's keys: vemonitor will not write there."""


class RedisWriteError(RedisIntegrationError):
    """The server rejected a command (wrong key type, script error...)."""


def connect(config: RedisConnector, client_name: str = APP) -> redis.Redis:
    """Return a client for the connector (no I/O yet); redis-py's own retries are off."""
    options: dict[str, Any] = {
        "host": config.host, "port": config.port, "db": config.db,
        "username": config.username, "password": config.password,
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.socket_connect_timeout,
        # One attempt per call: the core's outbox owns retries and backoff.
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True, "client_name": client_name,
    }
    if config.ssl:
        options.update(ssl=True, ssl_ca_certs=config.ssl_ca_certs,
                       ssl_certfile=config.ssl_certfile, ssl_keyfile=config.ssl_keyfile,
                       ssl_cert_reqs=config.ssl_cert_reqs,
                       # Explicit: redis-py < 6 did not check the name by default, so a
                       # certificate for another host was accepted.
                       ssl_check_hostname=config.ssl_check_hostname
                       and config.ssl_cert_reqs == "required")
    return redis.Redis(**options)


def translate(err: Exception, config: RedisConnector, doing: str) -> RedisIntegrationError:
    """Return the typed error for a redis-py error, naming the server but never the secret."""
    where = config.address()
    if isinstance(err, RedisIntegrationError):
        return err
    if isinstance(err, redis.AuthenticationError | redis.exceptions.NoPermissionError) or (
            isinstance(err, redis.ResponseError) and _is_auth_error(str(err))):
        return RedisAuthError(f"redis {where}: authentication failed while {doing} "
                              f"(check username/password)")
    if isinstance(err, redis.ConnectionError | redis.TimeoutError | socket.error | TimeoutError):
        return RedisUnavailable(f"redis {where}: unavailable while {doing}: "
                                f"{_scrub(str(err), config)}")
    if isinstance(err, redis.ResponseError) and "vemonitor_foreign_db" in str(err):
        return RedisForeignDb(foreign_message(config))
    return RedisWriteError(f"redis {where}: {doing} failed: {_scrub(str(err), config)}")


def _is_auth_error(text: str) -> bool:
    lowered = text.lower()
    return "noauth" in lowered or "wrongpass" in lowered or "invalid password" in lowered


def _scrub(text: str, config: RedisConnector) -> str:
    """Return ``text`` without the password, should a server or library ever echo it."""
    return text.replace(config.password, "***") if config.password else text


def foreign_message(config: RedisConnector) -> str:
    """Return the refusal message for a database another application uses."""
    return (f"db {config.db} of {config.host}:{config.port} is used by another application "
            f"(it holds keys but no '{META_KEY}' hash); vemonitor will not write into it: "
            f"choose an empty db")


def claim_db(client: redis.Redis, config: RedisConnector, created: float | None = None) -> None:
    """Mark an empty database as vemonitor's, or raise RedisForeignDb if another app uses it."""
    try:
        pipe = client.pipeline(transaction=False)
        pipe.exists(META_KEY)
        pipe.dbsize()
        exists, size = pipe.execute()
        if exists:
            return
        if size:
            raise RedisForeignDb(foreign_message(config))
        stamp = str(int(created if created is not None else time.time()))
        # HSETNX: two starting instances may race; whichever is first, the marker is the same.
        client.hsetnx(META_KEY, "app", APP)
        client.hsetnx(META_KEY, "created", stamp)
    except redis.RedisError as err:
        raise translate(err, config, "checking database ownership") from err
