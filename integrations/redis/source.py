"""The Redis input: rows another vemonitor wrote (hashes or streams), read since a time.

One source per connector, shared by every input item naming it (as for serial
ports); each item is attached with :meth:`RedisSource.subscribe`. Reading never
raises into the engine: a server (or cluster) that is down is logged once per
outage, counted, and not asked again before a pause that doubles from 1 s to
60 s (:data:`RETRY_DELAYS`); reads return nothing until it is back.

The rows are data from outside, under the rules every input follows (issue 25,
:mod:`vemonitor.outside`): a hash value longer than ``MAX_ROW_TEXT`` (vemonitor.api) is
measured with HSTRLEN and never fetched; depth and string bounds are checked before parsing; a
bad row costs only itself, is counted by kind and said once an hour per kind
(:data:`BAD_LOG_EVERY`); a run of bad rows is stepped over, each looked at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar, cast

from vemonitor_integrations.redis import layout
from vemonitor_integrations.redis.client import (
    Client,
    RedisUnavailable,
    cluster_error,
    errors,
    lost_connection,
    open_client,
    select_db,
    translate,
)
from vemonitor_integrations.redis.schema import RedisConnector, RedisInput, Structure

from vemonitor.api import MAX_ROW_TEXT, BadRow, Context, Row
from vemonitor.vedirect.fields import Value

log = logging.getLogger(__name__)

T = TypeVar("T")
Entry = tuple[str, dict[str, str]]  # a stream entry (decode_responses=True)

MAX_ROWS = 10_000  # rows returned per rows_since() call; call again from the last time
# Pause before reconnecting a client that could not be made (a cluster down at start or
# lost mid-run): doubling from the first to the second, in seconds.
RETRY_DELAYS = (1.0, 60.0)
EPSILON = 1e-6  # makes ``since`` inclusive while reads use exclusive bounds
BAD_LOG_EVERY = 3600.0  # seconds between two log lines of one kind of bad row (as MQTT's)


class _Reader:
    """Reads one input item's rows from one key layout."""

    def __init__(self, item: RedisInput, names: layout.Names) -> None:
        self.item = item
        self.names = names
        self.node = item.remote_node()
        self.floor = -math.inf  # set from ``since`` (or the start time) when started
        self.rejected: Counter[str] = Counter()  # rows dropped by reason (data from outside)
        self._bad_logged_at: dict[str, float] = {}  # monotonic time of each kind's last line
        # The time of the last row of a fetch that found only bad rows: the caller's
        # ``after`` (its last good row) does not move then, so without this a run of
        # ``limit`` bad rows would be read again at every call, for ever (issue 25).
        self.skipped_to = -math.inf
        self._examined = -math.inf  # the last row time the current fetch looked at

    def fetch(self, client: Client, after: float, limit: int) -> list[Row]:
        """Return up to ``limit`` rows with time > after, oldest first; a run of bad rows
        is stepped over (each bad row is looked at once)."""
        after = max(after, self.floor - EPSILON, self.skipped_to)
        self._examined = -math.inf
        if self.item.structure is Structure.Stream:
            rows = self._stream_fetch(client, after, limit)
        else:
            rows = self._hmap_fetch(client, after, limit)
        if not rows and self._examined > after:
            self.skipped_to = self._examined  # only bad rows up to there: start after them
        return rows

    def newest(self, client: Client) -> Row | None:
        """Return the newest row written, or None."""
        if self.item.structure is Structure.Stream:
            entries = cast(list[Entry], client.xrevrange(self._stream(), count=1))
            return self._stream_row(entries[0]) if entries else None
        stamps = (cast(list[str], client.zrevrange(self._index(), 0, 0))
                  or self._legacy_stamps(client, -math.inf))
        return self._hmap_rows(client, stamps[-1:])[0] if stamps else None

    # ------------------------------------------------------------------ hashes
    def _hmap_fetch(self, client: Client, after: float, limit: int) -> list[Row]:
        pipe = client.pipeline(transaction=False)
        pipe.exists(self._index())
        pipe.zrangebyscore(self._index(), f"({after!r}" if math.isfinite(after) else "-inf",
                           "+inf", start=0, num=limit, withscores=True)
        indexed, scored = pipe.execute()
        stamps = [member for member, _ in scored]
        if scored:
            self._examined = float(scored[-1][1])
        if not indexed:  # written by vemonitor_m8 (no index): scan the hash, as it did
            stamps = self._legacy_stamps(client, after)[:limit]
            if stamps:
                self._examined = float(stamps[-1])
        return self._hmap_rows(client, stamps)

    def _legacy_stamps(self, client: Client, after: float) -> list[str]:
        fields = cast(list[str], client.hkeys(self._hash()))
        return sorted((f for f in fields if f.isdigit() and int(f) > after), key=int)

    def _hmap_rows(self, client: Client, stamps: list[str]) -> list[Row]:
        if not stamps:
            return []
        stamps = self._small_enough(client, stamps)
        if not stamps:
            return []
        texts = cast(list[str | None], client.hmget(self._hash(), stamps))
        rows = [self._checked(stamp, functools.partial(layout.decode_values, text))
                for stamp, text in zip(stamps, texts, strict=True) if text is not None]
        return [row for row in rows if row is not None]

    def _small_enough(self, client: Client, stamps: list[str]) -> list[str]:
        """Return the stamps whose text is at most MAX_ROW_TEXT bytes; the others are rejected
        unread (HSTRLEN answers the length without sending the value: a 500 MB value
        written by anyone never crosses the wire, let alone reaches the parser)."""
        pipe = client.pipeline(transaction=False)
        for stamp in stamps:
            pipe.hstrlen(self._hash(), stamp)
        kept = []
        for stamp, size in zip(stamps, pipe.execute(), strict=True):
            if size > MAX_ROW_TEXT:
                self._reject(stamp, BadRow("too_large", f"{size} bytes"))
            else:
                kept.append(stamp)
        return kept

    def _checked(self, stamp: str | float, values: Callable[[], dict[str, Value]]) -> Row | None:
        """Return a row from outside, or None (counted by reason) when it is bad."""
        try:
            time = float(stamp)
            if not math.isfinite(time):
                raise BadRow("non_finite", "row time")
            return Row(time, self.item.name, values())
        except (ValueError, OverflowError) as err:
            self._reject(stamp, err)
            return None

    def _reject(self, stamp: str | float, err: Exception) -> None:
        """Count a bad row by kind; say each kind once an hour (the count goes on)."""
        reason = err.reason if isinstance(err, BadRow) else "bad_time"
        self.rejected[reason] += 1
        now = time.monotonic()
        if now - self._bad_logged_at.get(reason, -math.inf) < BAD_LOG_EVERY:
            return
        self._bad_logged_at[reason] = now
        log.warning("input %s: row %s rejected (%s); such rows are dropped and counted "
                    "(%d so far, said once an hour)", self.item.name, str(stamp)[:40], err,
                    self.rejected[reason])

    # ------------------------------------------------------------------ streams
    def _stream_fetch(self, client: Client, after: float, limit: int) -> list[Row]:
        start = str(math.floor(after * 1000) + 1) if math.isfinite(after) else "-"
        # A stream entry comes whole (XRANGE has no per-field length): its fields are
        # bounded after reading and before parsing (vemonitor.outside.parse_fields).
        entries = cast(list[Entry], client.xrange(self._stream(), min=start, max="+", count=limit))
        if entries:
            self._examined = int(entries[-1][0].split("-", 1)[0]) / 1000.0
        rows = [self._stream_row(entry) for entry in entries]
        return [row for row in rows if row is not None]

    def _stream_row(self, entry: Entry) -> Row | None:
        entry_id, fields = entry
        return self._checked(int(entry_id.split("-", 1)[0]) / 1000.0,
                             functools.partial(layout.decode_fields, fields))

    # ------------------------------------------------------------------ keys
    def _hash(self) -> str:
        return self.names.hmap(self.item.redis_node or "", self.node)

    def _index(self) -> str:
        return self.names.index(self.item.redis_node or "", self.node)

    def _stream(self) -> str:
        return self.names.stream(self.item.stream_prefix, self.node)


def _fetch(reader: _Reader, client: Client, after: float) -> list[Row]:
    """Return a reader's rows after a time (bound with functools.partial for _guard)."""
    return reader.fetch(client, after, MAX_ROWS)


class RedisSource:
    """A Redis connector read by one or more input items."""

    def __init__(self, name: str, connector: RedisConnector, ctx: Context) -> None:
        self.name = name
        self.connector = connector
        self.clock = ctx.clock
        self.client: Client | None = None
        self.readers: dict[str, _Reader] = {}
        self._started_at: float | None = None
        self._failing = False
        self._stats = {"rows": 0, "errors": 0, "reconnects": 0}
        self._pause = 0.0  # seconds until the next reconnection attempt (doubling)
        self._retry_at = 0.0  # monotonic time of that attempt

    def __repr__(self) -> str:
        return f"RedisSource({self.name!r}, {self.connector.address()})"

    def subscribe(self, item: RedisInput) -> None:
        """Attach an input item (before or after start)."""
        reader = _Reader(item, layout.Names(self.connector.is_cluster()))
        self.readers[item.name] = reader
        if self._started_at is not None:
            self._set_floor(reader, self._started_at)

    def start(self) -> None:
        """Create the client; ``since: null`` means rows from now on.

        With ``db_selector`` (a legacy connector) the db is the one vemonitor_m8's
        selector, and so a vemonitor writing with the same connector, chooses; a server
        down at start leaves the configured db.
        """
        try:
            self.connector = select_db(self.connector)
        except RedisUnavailable as err:
            log.warning("input %s: %s (reading db %d)", self.name, err, self.connector.db)
        self._started_at = self.clock.now()
        for reader in self.readers.values():
            self._set_floor(reader, self._started_at)
        self._connect()  # a server (or cluster) down at start is an outage, retried later

    def close(self) -> None:
        """Release the connection (idempotent)."""
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def latest(self, input_name: str | None = None) -> tuple[dict[str, Value], float] | None:
        """Return the newest row's values and time (of one input, or the only one)."""
        reader = self._reader(input_name)
        row = self._guard(reader.newest, None) if reader else None
        return (dict(row.values), row.time) if row is not None else None

    def rows_since(self, after: float, input_name: str | None = None) -> list[Row]:
        """Return rows with time > after (and >= since), oldest first, at most MAX_ROWS."""
        readers = [self.readers[input_name]] if input_name else list(self.readers.values())
        rows: list[Row] = []
        for reader in readers:
            rows += self._guard(functools.partial(_fetch, reader, after=after), [])
        rows.sort(key=lambda row: (row.time, row.input))
        self._stats["rows"] += len(rows)
        return rows[:MAX_ROWS]

    def stats(self) -> dict[str, Any]:
        """Return the rows read and errors met."""
        rejected: Counter[str] = Counter()
        for reader in self.readers.values():
            rejected.update(reader.rejected)
        return {**self._stats, "available": not self._failing, "rejected": dict(rejected)}

    # ------------------------------------------------------------------ helpers
    def _set_floor(self, reader: _Reader, started_at: float) -> None:
        since = reader.item.since
        reader.floor = float(since) if since is not None else started_at

    def _reader(self, input_name: str | None) -> _Reader | None:
        if input_name is not None:
            return self.readers.get(input_name)
        return next(iter(self.readers.values()), None) if len(self.readers) == 1 else None

    def _connect(self) -> bool:
        """Make the client; on failure (a cluster client asks its nodes at once) count it,
        say it once and try again after a growing pause (:data:`RETRY_DELAYS`)."""
        try:
            self.client = open_client(self.connector, client_name=f"vemonitor-in-{self.name}")
        except (*errors(), OSError) as err:
            self._failed(err)
            return False
        return True

    def _guard(self, read: Callable[[Client], T], default: T) -> T:
        """Run a read; on a Redis error log the state change once and return ``default``.

        While failing, the server is not asked again before the pause is over: a read per
        tick would be a connection attempt per tick (and its timeout) for the whole outage.
        """
        if self._failing and time.monotonic() < self._retry_at:
            return default
        if self.client is None and not self._reconnect_due():
            return default
        assert self.client is not None
        try:
            result = self._within_deadline(read, self.client)
        except (*errors(), ValueError, TimeoutError) as err:
            self._failed(err)
            if lost_connection(err) and self.connector.is_cluster():
                # A cluster client that lost its nodes is rebuilt (a fresh slot map),
                # after the pause: no storm against a cluster that is down.
                client, self.client = self.client, None
                with contextlib.suppress(Exception):
                    client.close()
            return default
        if self._failing:
            log.info("input %s: redis %s available again", self.name, self.connector.address())
            self._failing = False
            self._stats["reconnects"] += 1
            self._pause = 0.0
        return result

    def _within_deadline(self, read: Callable[[Client], T], client: Client) -> T:
        """Run ``read`` within one deadline (socket_timeout) for the whole request.

        One server: the RESP client keeps that deadline itself (resp.py). A Cluster client
        is redis-py's, whose timeout is per read: a node trickling its answer would hold
        the input for ever. So the read runs on a short-lived thread; past the deadline
        the client is closed (its sockets shut down, which ends the blocked read) and
        the read counts as failed: TimeoutError, retried after the usual pause.
        """
        if not self.connector.is_cluster():
            return read(client)
        import threading  # noqa: PLC0415 (cluster inputs only)

        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, read(client)))
            except BaseException as err:  # handed to the caller's thread, raised there
                outcome.append((False, err))

        worker = threading.Thread(target=run, name=f"redis-in-{self.name}", daemon=True)
        worker.start()
        worker.join(self.connector.socket_timeout)
        if not outcome:
            self.client = None
            with contextlib.suppress(Exception):
                client.close()
            raise TimeoutError(f"no whole answer within socket_timeout "
                               f"({self.connector.socket_timeout:g} s)")
        done, value = outcome[0]
        if not done:
            raise value
        return cast(T, value)

    def _reconnect_due(self) -> bool:
        """Try to make the client again when its pause is over; return True when made."""
        if self._started_at is None or time.monotonic() < self._retry_at:
            return False
        return self._connect()

    def _failed(self, err: Exception) -> None:
        """Count a failure, say the first of a spell, and set the next reconnection time."""
        self._stats["errors"] += 1
        if not self._failing:
            log.warning("input %s: %s; retrying with backoff", self.name, self._describe(err))
        self._failing = True
        self._pause = min(max(self._pause * 2, RETRY_DELAYS[0]), RETRY_DELAYS[1])
        self._retry_at = time.monotonic() + self._pause

    def _describe(self, err: Exception) -> Exception:
        """Return the error to show (typed, naming the server, never the secret)."""
        doing = f"reading input connector {self.name}"
        if isinstance(err, ValueError):
            return err
        if isinstance(err, TimeoutError) and not isinstance(err, errors()):
            return RedisUnavailable(f"redis {self.connector.address()}: unavailable while "
                                    f"{doing}: {err}")
        if cluster_error(err):
            return RedisUnavailable(f"redis {self.connector.address()}: unavailable while "
                                    f"{doing}: {err.__class__.__name__}")
        return translate(err, self.connector, doing)

