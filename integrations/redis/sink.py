"""The Redis output: one EVALSHA per batch, idempotent by row time, trimmed to max_items.

A stream entry's id is ``<ms>-0``, and Redis refuses ``0-0`` and anything not a
positive integer (XADD: "The ID specified in XADD must be greater than 0-0"): a row
stamped ``"time": 0``, before 1970 or absurdly far ahead would make the whole
script fail, and the batch be sent again for ever. The engine refuses such rows
upstream (``max_time_skew``, per row, counted); should one reach this sink anyway,
it is left out of the stream, counted (``refused``) and said once an hour, and the
batch's other rows are written (issue 25).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from vemonitor_integrations.redis import layout
from vemonitor_integrations.redis.client import (
    Client,
    RedisUnavailable,
    claim_db,
    errors,
    open_client,
    select_db,
    translate,
    wait_replicas,
)
from vemonitor_integrations.redis.schema import RedisConnector, RedisOutput, Structure

from vemonitor.api import Batch, Context, Row

log = logging.getLogger(__name__)

Args = list[str | int]
Command = tuple[list[str], Args]
# The stream ids the script can write: ms > 0 (0-0 is refused by XADD), and at most
# 2**53, the largest integer the script's Lua numbers compare exactly (Redis ids are
# 64-bit; 2**53 ms is the year 287,396, so no real row is refused by this bound).
STREAM_MS = (1, 2 ** 53)
REFUSED_LOG_EVERY = 3600.0  # seconds between two lines about refused rows


class RedisSink:
    """Writes batches as the original's time-series hashes or as streams."""

    def __init__(self, item: RedisOutput, connector: RedisConnector, ctx: Context) -> None:
        self.item = item
        self.connector = connector
        self.clock = ctx.clock
        self.name = item.name or "redis"
        self.client: Client | None = None
        self._script: Any = None
        self.names = layout.Names(connector.is_cluster(), connector.db_selector)
        self.trimmed = 0  # hash fields removed to stay within max_items
        self.skipped = 0  # stream rows already present (retries) or older than the stream
        self.refused = 0  # rows whose time no stream id can carry (STREAM_MS)
        self._refused_logged_at = -math.inf  # monotonic time of the last line about them
        self._db_chosen = False  # vemonitor_m8's db selector ran (connector db_selector)

    def __repr__(self) -> str:
        return (f"RedisSink({self.name!r}, {self.connector.address()}, "
                f"{self.item.structure.value})")

    def start(self) -> None:
        """Connect and check database ownership; a server still down is claimed at first write."""
        self._connect()
        try:
            self._choose_db()
            claim_db(self.client, self.connector, self.clock.now())  # type: ignore[arg-type]
        except RedisUnavailable as err:  # the outbox keeps batches until it is back
            log.warning("output %s: %s (will retry)", self.name, err)

    def _connect(self) -> None:
        self.client = open_client(self.connector, client_name=f"vemonitor-{self.name}")
        lua = (layout.HMAP_WRITE if self.item.structure is Structure.HmapTimeSeries
               else layout.STREAM_WRITE)
        self._script = self.client.register_script(self.names.script(lua))

    def _choose_db(self) -> None:
        """Run vemonitor_m8's db selector once (connector ``db_selector``), then reconnect."""
        if not self.connector.db_selector or self._db_chosen:
            return
        chosen = select_db(self.connector)
        self._db_chosen = True
        if chosen.db != self.connector.db:
            log.warning("output %s: redis db %d holds another application's keys; using db %d "
                        "(vemonitor_m8's db selector)", self.name, self.connector.db, chosen.db)
            self.close()
            self.connector = chosen
            self._connect()

    def write(self, batch: Batch) -> None:
        """Write every row of the batch in one round trip, or raise a RedisIntegrationError."""
        if self._script is None:
            raise RedisUnavailable(f"redis {self.connector.address()}: output {self.name} "
                                   f"written before start()")
        self._choose_db()
        doing = f"writing batch of output {self.name}"
        # One command; on a cluster with streams, one per stream (each its own slot).
        # Each is idempotent, so a batch failing half-way is simply sent again.
        for keys, args in self._commands(batch):
            try:
                result = int(self._script(keys=keys, args=args))
            except errors() as err:
                raise translate(err, self.connector, doing) from err
            assert self.client is not None
            wait_replicas(self.client, self.connector, keys[-1], doing)
            if self.item.structure is Structure.HmapTimeSeries:
                self.trimmed += result
            else:
                self.skipped += result

    def close(self) -> None:
        """Release the connection (idempotent)."""
        client, self.client, self._script = self.client, None, None
        if client is not None:
            client.close()

    def stats(self) -> dict[str, int]:
        """Return what the sink counted."""
        return {"trimmed": self.trimmed, "skipped": self.skipped, "refused": self.refused}

    # ------------------------------------------------------------------ encoding
    def _commands(self, batch: Batch) -> list[Command]:
        """Return the script calls (KEYS, ARGV) of a batch; none when there is nothing to write."""
        args: Args = [str(int(self.clock.now())), self.item.max_items]
        if self.item.structure is Structure.HmapTimeSeries:
            keys, args = self._hmap_command(batch, args)
            return [(keys, args)] if len(keys) > 2 else []
        if not self.names.cluster:
            keys, args = self._stream_command(batch, args)
            return [(keys, args)] if len(keys) > 1 else []
        commands = []
        for rows in by_node(batch.rows).values():
            keys, node_args = self._stream_command(Batch(batch.output, tuple(rows)), list(args))
            if len(keys) > 1:
                commands.append((keys, node_args))
        return commands

    def _hmap_command(self, batch: Batch, args: Args) -> Command:
        redis_node = self.item.redis_node or ""
        names = self.names
        keys = [names.meta(redis_node), names.hmap_set(redis_node)]
        for node, rows in by_node(batch.rows).items():
            unique = layout.one_per_stamp(rows, layout.epoch_field)
            keys += [names.hmap(redis_node, node), names.index(redis_node, node)]
            args.append(len(unique))
            for row in unique:
                args += [layout.epoch_field(row.time), layout.encode_values(row.values, self.item.json_style)]
        return keys, args

    def _stream_command(self, batch: Batch, args: Args) -> Command:
        """Return the call writing a batch's streams (on a cluster: a batch of one input)."""
        prefix = self.item.stream_prefix
        first = layout.row_node(batch.rows[0]) if batch.rows else ""
        keys = [self.names.stream_meta(prefix, first)]
        for node, rows in by_node(batch.rows).items():
            unique = [r for r in layout.one_per_stamp(self._stream_rows(rows), layout.stream_ms)
                      if r.values]
            if not unique:
                continue
            keys.append(self.names.stream(prefix, node))
            args.append(len(unique))
            for row in unique:
                args += _stream_entry(row)
        return keys, args

    def _stream_rows(self, rows: list[Row]) -> list[Row]:
        """Return the rows a stream id can carry; count and say (once an hour) the others."""
        kept = [row for row in rows if _stream_id_ok(row.time)]
        refused = len(rows) - len(kept)
        if refused:
            self.refused += refused
            now = time.monotonic()
            if now - self._refused_logged_at >= REFUSED_LOG_EVERY:
                self._refused_logged_at = now
                bad = next(row for row in rows if not _stream_id_ok(row.time))
                log.warning("output %s: a row stamped %r cannot be a stream entry (ids are "
                            "positive ms); such rows are left out and counted (%d so far)",
                            self.name, bad.time, self.refused)
        return kept


def _stream_id_ok(stamp: float) -> bool:
    """Return True when a row time is a stream id the script can write (STREAM_MS)."""
    return math.isfinite(stamp) and STREAM_MS[0] <= layout.stream_ms(stamp) <= STREAM_MS[1]


def by_node(rows: tuple[Row, ...]) -> dict[str, list[Row]]:
    """Return rows grouped by the node they are written under (layout.row_node)."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(layout.row_node(row), []).append(row)
    return groups


def _stream_entry(row: Row) -> Args:
    """Return one row's script arguments: ms, field count, field/value pairs."""
    return [layout.stream_ms(row.time), len(row.values), *layout.encode_fields(row.values)]
