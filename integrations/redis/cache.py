"""A data cache kept in Redis: bounded per input, and still there after a restart.

Same interface as :class:`vemonitor.engine.DataCache` (``add``, ``seq``,
``arrived_after``, ``between``, ``dropped``), plus ``flush``. Each input is a ZSET
``<namespace>:<input>`` scored by row time, whose members are JSON
``[time, values, age]``, written by the cache script (one EVALSHA per row, which also
claims the db, see :mod:`vemonitor_integrations.redis.layout`); one ZRANGEBYSCORE per
``between``.

Writes are batched (issue 24f, the lead's decision): the cache is not a durability
mechanism (rows not yet sent wait in each output's durable outbox, and outputs take rows
from the in-memory arrival index), so ``add`` only buffers the row, and the buffer goes
to Redis in ONE pipelined round trip (one EVALSHA per row) when

* an output takes a batch (the engine calls ``flush`` before handing it to the sender:
  Redis then holds every row any output has sent),
* the cache is closed (the engine's stop),
* the buffer holds :data:`FLUSH_ROWS` rows (an output with a long ``cache_interval``
  does not leave other readers of the ZSETs minutes behind),
* and, during an outage, at every ``add`` (catch-up as soon as Redis answers).

``between`` serves buffered rows with the stored ones. On a Redis Cluster (redis-py)
a flush writes row by row (each input's key has its own slot). Unlike
vemonitor_m8 the cache is not wiped at start: other readers (and ``between``)
still find the rows after a restart. Rows not yet sent wait in each output's
durable outbox, not here.

The engine's tick must never fail because Redis blinked: while Redis is
unreachable, rows are kept in a bounded memory buffer (logged once), served by
``between``, and written to Redis when it answers again.

Outputs take rows in arrival order (``arrived_after``, as from the memory cache),
from a bounded index of the rows this process added: a row forwarded late with an
old time (a Redis input reading another vemonitor) is still sent, which a query by
time would miss once the output's cursor passed that time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from typing import Any, cast

from vemonitor_integrations.redis import layout, resp
from vemonitor_integrations.redis.client import (
    Client,
    RedisAuthError,
    RedisForeignDb,
    RedisUnavailable,
    claim_db,
    errors,
    open_client,
    select_db,
    translate,
)
from vemonitor_integrations.redis.schema import RedisConnector

from vemonitor.api import Context, DataCache, Row

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "vemonitor:cache"
# Rows buffered before a flush is forced (issue 24f): the sample's output takes a batch
# of 5 rows every 5 s, so its flushes come from the output; 64 bounds a pipeline (a few
# KiB) and how far the ZSETs lag behind when outputs take rows rarely (8 devices and a
# cache_interval of 60 would otherwise buffer 480 rows).
FLUSH_ROWS = 64


class RedisCache:
    """Rows per input in Redis, bounded (``max_points`` per input), oldest dropped first."""

    def __init__(self, connector: RedisConnector, max_points: int, ctx: Context,
                 namespace: str = DEFAULT_NAMESPACE) -> None:
        self.connector = connector
        self.max_points = max_points
        self.clock = ctx.clock
        self.namespace = namespace
        self.dropped = 0
        self.client: Client | None = None
        self._script: Any = None  # resp.Script, or redis-py's on a cluster
        self._pending: dict[str, deque[Row]] = {}  # per input, while Redis is unreachable
        self._lock = threading.Lock()
        self._failing = False
        self._buffered = 0  # rows added since the last write that emptied the buffer
        self._arrivals = DataCache(max_points)  # this process's rows, in arrival order
        self.names = layout.Names(connector.is_cluster(), connector.db_selector)

    @property
    def seq(self) -> int:
        """Return the arrival number of the last row added."""
        return self._arrivals.seq

    def arrived_after(self, input_name: str, seq: int) -> list[tuple[int, Row]]:
        """Return (arrival number, row) of the rows of ``input_name`` added after ``seq``."""
        return self._arrivals.arrived_after(input_name, seq)

    def __repr__(self) -> str:
        return f"RedisCache({self.connector.address()}, max_points={self.max_points})"

    def key(self, input_name: str) -> str:
        """Return the ZSET of one input (hash-tagged on a cluster: its script's one slot)."""
        return self.names.tag(f"{self.namespace}:{input_name}")

    def start(self) -> None:
        """Connect and claim the db; refuse a db another application uses (idempotent)."""
        if self.client is not None:
            return
        try:
            self.connector = select_db(self.connector)  # vemonitor_m8's rules, if asked
        except (RedisAuthError, RedisForeignDb):
            raise
        except RedisUnavailable as err:  # unreachable now: chosen when it answers
            self._fail(err)
            return
        self.client = open_client(self.connector, client_name="vemonitor-cache")
        self._script = self.client.register_script(self.names.script(layout.CACHE_ADD))
        try:
            claim_db(self.client, self.connector, self.clock.now())
        except (RedisAuthError, RedisForeignDb):
            self._release()  # a refused db: nothing may be written to it
            raise
        except Exception as err:  # unreachable now: rows wait in memory until it answers
            self._fail(err)

    def close(self) -> None:
        """Write the buffered rows, then release the connection (idempotent).

        Rows Redis cannot take now are lost from the cache only: every row not yet sent
        is in its output's outbox."""
        with self._lock:
            self._write()
        self._release()

    def _release(self) -> None:
        client, self.client, self._script = self.client, None, None
        if client is not None:
            client.close()

    def add(self, row: Row) -> None:
        """Buffer a row; write the buffer when it is full, or at once during an outage."""
        with self._lock:
            self.start()
            self._keep(row)
            self._buffered += 1
            if self._failing or self._buffered >= FLUSH_ROWS:
                self._write()
        self._arrivals.add(row)

    def flush(self) -> None:
        """Write the buffered rows to Redis (one round trip); kept in memory while it is down."""
        with self._lock:
            self.start()  # the db selector may still be waiting for the server
            self._write()

    def between(self, input_name: str, after: float, upto: float) -> list[Row]:
        """Return the rows of ``input_name`` with after < time <= upto, oldest first."""
        with self._lock:
            self.start()
            pending = [r for r in self._pending.get(input_name, ()) if after < r.time <= upto]
            if self.client is None:  # the db selector is still waiting for the server
                return pending
            try:
                assert self.client is not None
                members = cast(list[str], self.client.zrangebyscore(
                    self.key(input_name), f"({after!r}", repr(upto)))
            except errors() as err:
                self._fail(err)
                return pending
            rows = {row.time: row for row in (_decode(m, input_name) for m in members)}
            rows.update((row.time, row) for row in pending)
            return [rows[t] for t in sorted(rows)]

    # ------------------------------------------------------------------ helpers
    def _write(self) -> None:
        """Write the buffer if there is a client (under the lock)."""
        if self.client is not None and self._flush():
            self._buffered = 0

    def _store(self, row: Row) -> bool:
        """Write one row; return False when Redis is unreachable."""
        assert self._script is not None
        keys, args = self._call(row)
        try:
            self.dropped += int(self._script(keys=keys, args=args))
        except errors() as err:
            return self._failed(err)
        self._recovered()
        return True

    def _call(self, row: Row) -> tuple[list[str], list[str | int]]:
        """Return the cache script's KEYS and ARGV for one row (layout.CACHE_ADD)."""
        member = json.dumps([row.time, {k: layout.clean(v) for k, v in row.values.items()},
                             row.age], separators=(",", ":"), allow_nan=False)
        return ([self.names.meta(f"{self.namespace}:{row.input}"), self.key(row.input)],
                [str(int(self.clock.now())), self.max_points, repr(row.time), member])

    def _failed(self, err: BaseException) -> bool:
        """Raise a configuration error; note an outage and return False."""
        typed = translate(cast(Exception, err), self.connector, "adding a row to the cache")
        if isinstance(typed, RedisAuthError | RedisForeignDb):
            raise typed from err  # a configuration problem, not an outage
        self._fail(cast(Exception, err))
        return False

    def _recovered(self) -> None:
        if self._failing:
            log.info("cache: redis %s available again", self.connector.address())
            self._failing = False

    def _flush(self) -> bool:
        """Write the rows kept in memory; return False if Redis is still unreachable.

        On one server all of them go in one pipelined round trip (an outage of an hour
        is 3600 rows per input: one write, not 3600 waits); a row is taken out of the
        buffer only once its reply says it is stored. The script is idempotent per row
        time, so rows re-sent after a connection lost mid-pipeline are stored once.
        A cluster (redis-py) writes them one by one (each row's key has its own slot).
        """
        if not any(self._pending.values()):
            return True
        if not isinstance(self.client, resp.RespClient):
            return self._flush_one_by_one()
        assert self._script is not None
        queued = [(rows, row) for rows in self._pending.values() for row in rows]
        try:
            replies = self._pipelined([self._call(row) for _, row in queued])
        except errors() as err:
            return self._failed(err)
        for (rows, _row), reply in zip(queued, replies, strict=True):
            if isinstance(reply, resp.ResponseError):
                return self._failed(reply)
            self.dropped += int(reply)
            rows.popleft()  # queued in each buffer's order: this row is its first
        self._recovered()
        return True

    def _pipelined(self, calls: list[tuple[list[str], list[str | int]]]) -> list[object]:
        """Run the cache script once per call in one round trip (loading it first if the
        server answers NOSCRIPT: a restarted server knows no scripts)."""
        assert isinstance(self.client, resp.RespClient) and self._script is not None
        for attempt in range(2):
            pipe = self.client.pipeline()
            for keys, args in calls:
                pipe.evalsha(self._script.sha, keys, args)
            replies = pipe.execute(raise_on_error=False)
            if attempt or not any(isinstance(r, resp.NoScriptError) for r in replies):
                break
            # NOSCRIPT fails before the script runs: nothing was written, send all again.
            self._script.load()
        return replies

    def _flush_one_by_one(self) -> bool:
        for rows in self._pending.values():
            while rows:
                if not self._store(rows[0]):
                    return False
                rows.popleft()
        return True

    def _keep(self, row: Row) -> None:
        rows = self._pending.setdefault(row.input, deque(maxlen=self.max_points))
        if len(rows) == self.max_points:
            self.dropped += 1
        rows.append(row)

    def _fail(self, err: Exception) -> None:
        """Log the first failure of an outage only."""
        if not self._failing:
            log.warning("cache: %s; keeping rows in memory",
                        translate(err, self.connector, "using the cache"))
        self._failing = True


def _decode(member: str, input_name: str) -> Row:
    """Return the row stored as ``member`` in the ZSET of ``input_name``."""
    time, values, age = json.loads(member)
    return Row(float(time), input_name, values, float(age))
