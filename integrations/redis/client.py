"""Connections to Redis: the client, the error taxonomy and the database-ownership marker.

Every error leaving this integration is a :class:`RedisIntegrationError`
subclass raised ``from`` the library's error, with a message naming
``host:port/db`` and never the password.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol, cast

from vemonitor_integrations.redis import layout, resp
from vemonitor_integrations.redis.schema import SELECTOR_DBS, RedisConnector

from vemonitor.api import SinkAuthFailed, SinkError, SinkRejected, SinkUnavailable, __version__

if TYPE_CHECKING:
    import redis

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

    setting = "db"


class RedisWriteError(RedisIntegrationError):
    """The server rejected a command (wrong key type, script error...)."""


class Client(Protocol):
    """The thin surface both clients offer (resp.RespClient and redis-py's RedisCluster):
    all that the cache, the sink and the db rules use."""

    def execute_command(self, *args: Any, **options: Any) -> Any: ...
    def pipeline(self, transaction: bool = ...) -> Any: ...
    def register_script(self, script: str) -> Any: ...
    def hget(self, name: str, key: str) -> Any: ...
    def hsetnx(self, name: str, key: str, value: Any) -> Any: ...
    def hset(self, name: str, mapping: Any) -> Any: ...
    def zrangebyscore(self, name: str, min: Any, max: Any, **options: Any) -> Any: ...  # noqa: A002
    def zrevrange(self, name: str, start: int, end: int) -> Any: ...
    def hkeys(self, name: str) -> Any: ...
    def hmget(self, name: str, keys: Any) -> Any: ...
    def hstrlen(self, name: str, key: str) -> Any: ...
    def xrange(self, name: str, min: str = ..., max: str = ..., count: int | None = ...) -> Any: ...  # noqa: A002,E501
    def xrevrange(self, name: str, max: str = ..., min: str = ..., count: int | None = ...) -> Any: ...  # noqa: A002,E501
    def close(self) -> None: ...


def errors() -> tuple[type[BaseException], ...]:
    """Return the exceptions a client call may raise: this package's RESP client's, plus
    redis-py's once something loaded it (a cluster, or the Redis input). Used as
    ``except errors() as err`` (evaluated only when an exception is raised)."""
    found: tuple[type[BaseException], ...] = (resp.RespError,)
    if "redis" in sys.modules:
        library = sys.modules["redis"]
        found += (library.RedisError, library.exceptions.RedisClusterException)
    return found


def cluster_error(err: BaseException) -> bool:
    """Return True for redis-py's cluster errors (all nodes lost, no slot map); False
    without importing redis-py when nothing loaded it (no cluster in this run)."""
    library = sys.modules.get("redis")
    return library is not None and isinstance(err, library.exceptions.RedisClusterException)


def lost_connection(err: BaseException) -> bool:
    """Return True when a client's connection is gone (either client), not a server's answer."""
    return cluster_error(err) or isinstance(err, _kinds()[1])


def open_client(config: RedisConnector, client_name: str = APP) -> Client:
    """Return the client of the connector (no I/O yet): the small RESP2 client for one
    server, redis-py's RedisCluster (imported only then) for a cluster.

    Why two: docs/performance.md, "A RESP2 client of our own" (import redis costs ~20 MiB).
    """
    if config.is_cluster():
        return cast(Client, connect(config, client_name))
    return resp.RespClient(resp.Settings.of(config, client_name))


def connect(config: RedisConnector, client_name: str = APP) -> redis.Redis:
    """Return a redis-py client for the connector (no I/O yet); its own retries are off.

    Used for a cluster only (through :func:`open_client`); kept public for the TLS
    option test (tests/faults/test_issue14_tls.py reads its connection kwargs).

    For a cluster this is a RedisCluster (routing by key slot, refreshing its slot map
    after a failed node); it answers every command the integration uses like a Redis.
    """
    import redis  # noqa: PLC0415 (lazily: ~20 MiB, not needed for one plain server)
    from redis.backoff import NoBackoff  # noqa: PLC0415
    from redis.cluster import ClusterNode, RedisCluster  # noqa: PLC0415
    from redis.retry import Retry  # noqa: PLC0415

    options: dict[str, Any] = {
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
    if config.is_cluster():
        nodes = [ClusterNode(host, port)  # type: ignore[no-untyped-call]
                 for host, port in config.nodes()]
        # One attempt per call here too; a failed node makes the client re-read the slot
        # map, so the outbox's next attempt reaches the promoted replica.
        cluster = RedisCluster(startup_nodes=nodes, **options)
        return cast(redis.Redis, cluster)  # same command surface for what we use
    return redis.Redis(host=config.host, port=config.port, db=config.db, **options)


def wait_replicas(client: Client, config: RedisConnector, key: str, doing: str) -> None:
    """Return once ``wait_replicas`` replicas hold the writes to ``key`` (WAIT), else raise.

    Replication is asynchronous: a master that dies before its replica copied a write
    loses it at failover. Raising RedisUnavailable makes the outbox send the batch
    again, which the write scripts make idempotent (same hash field, stream id skipped).
    """
    wanted = config.wait_replicas
    if wanted <= 0:
        return
    args = ("WAIT", wanted, int(config.wait_timeout * 1000))
    try:
        if config.is_cluster():
            node = client.get_node_from_key(key)  # type: ignore[attr-defined]
            acked = client.execute_command(*args, target_nodes=node)
        else:
            acked = client.execute_command(*args)
    except errors() as err:
        raise translate(err, config, doing) from err
    if int(acked) < wanted:
        raise RedisUnavailable(f"redis {config.address()}: {doing}: only {acked} of "
                               f"{wanted} replicas confirmed within {config.wait_timeout:g} s; "
                               f"sending it again")


def translate(err: Exception, config: RedisConnector, doing: str) -> RedisIntegrationError:
    """Return the typed error for a client's error (resp's or redis-py's), naming the
    server but never the secret."""
    where = config.address()
    if isinstance(err, RedisIntegrationError):
        return err
    auth, unavailable, response = _kinds()
    if isinstance(err, auth) or (isinstance(err, response) and _is_auth_error(str(err))):
        return RedisAuthError(f"redis {where}: authentication failed while {doing} "
                              f"(check username/password)")
    if isinstance(err, unavailable):
        return RedisUnavailable(f"redis {where}: unavailable while {doing}: "
                                f"{_scrub(str(err), config)}")
    if isinstance(err, response) and "vemonitor_foreign_db" in str(err):
        return RedisForeignDb(foreign_message(config))
    return RedisWriteError(f"redis {where}: {doing} failed: {_scrub(str(err), config)}")


Kinds = tuple[type[BaseException], ...]


def _kinds() -> tuple[Kinds, Kinds, Kinds]:
    """Return (auth, unavailable, response) error classes of both clients (redis-py's
    only if it is loaded: checking must not import it)."""
    auth: Kinds = (resp.AuthenticationError,)
    unavailable: Kinds = (resp.ConnectionError, socket.error, TimeoutError)
    response: Kinds = (resp.ResponseError,)
    library = sys.modules.get("redis")
    if library is not None:
        auth += (library.AuthenticationError, library.exceptions.NoPermissionError)
        unavailable += (library.ConnectionError, library.TimeoutError)
        response += (library.ResponseError,)
    return auth, unavailable, response


def _is_auth_error(text: str) -> bool:
    lowered = text.lower()
    return "noauth" in lowered or "wrongpass" in lowered or "invalid password" in lowered


def _scrub(text: str, config: RedisConnector) -> str:
    """Return ``text`` without the password, should a server or library ever echo it."""
    return text.replace(config.password, "***") if config.password else text


def foreign_message(config: RedisConnector) -> str:
    """Return the refusal message for a database another application uses."""
    neighbour = "; EmonCms keeps its own keys in db 0" if config.db == 0 else ""
    return (f"db {config.db} of {config.host}:{config.port} is used by another application "
            f"(it holds keys but no '{META_KEY}' hash); vemonitor will not write into it: "
            f"choose an empty db{neighbour}")


def claim_db(client: Client, config: RedisConnector, created: float | None = None) -> None:
    """Mark an empty database as vemonitor's, or raise RedisForeignDb if another app uses it.

    A cluster has no database to own (DBSIZE is per node, and clusters are shared): each
    write script marks its own hash-tagged meta key instead (layout.Names).
    """
    if config.is_cluster():
        return
    try:
        if config.db_selector:
            _claim_seed_db(client, config, created)
            return
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
    except errors() as err:
        raise translate(err, config, "checking database ownership") from err


# ------------------------------------------------------------ vemonitor_m8's db rules
def seed_db_usable(client: Client) -> bool:
    """Return True for a db the seed's RedisApi.control_current_db accepts.

    Its rule: a db without keys is initialised; a db with keys is accepted only when
    the ``vemonitor_meta`` hash says ``controled_by: vemonitor_m8``.
    """
    pipe = client.pipeline(transaction=False)
    pipe.dbsize()
    pipe.hget(META_KEY, "controled_by")
    size, owner = pipe.execute()
    return not size or owner == layout.SEED_APP


def select_db(config: RedisConnector) -> RedisConnector:
    """Return the connector on the db the seed's RedisApi.run_db_selector would choose.

    The configured db first, then 0..15 in order (the configured one skipped), the
    first usable wins; none usable is RedisForeignDb, as the seed stopped there too.
    Without ``db_selector`` the connector is returned unchanged.
    """
    if not config.db_selector:
        return config
    order = [config.db, *(db for db in range(SELECTOR_DBS) if db != config.db)]
    for db in order:
        candidate = dataclasses.replace(config, db=db)
        client = open_client(candidate, client_name="vemonitor-db-selector")
        try:
            if seed_db_usable(client):
                return candidate
        except errors() as err:
            raise translate(err, candidate, "choosing a db (vemonitor_m8 db selector)") from err
        finally:
            client.close()
    raise RedisForeignDb(f"redis {config.host}:{config.port}: no db 0..{SELECTOR_DBS - 1} is "
                         f"empty or marked by vemonitor_m8 ('{META_KEY}'); flush one for "
                         f"vemonitor")


def _claim_seed_db(client: Client, config: RedisConnector, created: float | None) -> None:
    """Mark an empty db the way the seed's RedisApi.init_db_meta does (plus vemonitor's fields)."""
    if not seed_db_usable(client):
        raise RedisForeignDb(foreign_message(config))
    if client.hget(META_KEY, "controled_by") == layout.SEED_APP:
        return
    stamp = str(int(created if created is not None else time.time()))
    client.hset(META_KEY, mapping={"controled_by": layout.SEED_APP, "version": __version__,
                                   "app": APP, "created": stamp})
