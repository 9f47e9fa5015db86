"""The Redis output: one EVALSHA per batch, idempotent by row time, trimmed to max_items."""

from __future__ import annotations

import logging
from typing import Any

import redis

from integrations.redis import layout
from integrations.redis.client import (
    META_KEY,
    RedisUnavailable,
    claim_db,
    connect,
    select_db,
    translate,
)
from integrations.redis.schema import RedisConnector, RedisOutput, Structure
from vemonitor.api import Batch, Context, Row

log = logging.getLogger(__name__)

Args = list[str | int]
Command = tuple[list[str], Args]


class RedisSink:
    """Writes batches as the original's time-series hashes or as streams."""

    def __init__(self, item: RedisOutput, connector: RedisConnector, ctx: Context) -> None:
        self.item = item
        self.connector = connector
        self.clock = ctx.clock
        self.name = item.name or "redis"
        self.client: redis.Redis | None = None
        self._script: Any = None
        self.trimmed = 0  # hash fields removed to stay within max_items
        self.skipped = 0  # stream rows already present (retries) or older than the stream
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
        self.client = connect(self.connector, client_name=f"vemonitor-{self.name}")
        source = (layout.HMAP_WRITE if self.item.structure is Structure.HmapTimeSeries
                  else layout.STREAM_WRITE)
        self._script = self.client.register_script(
            layout.script(source, self.connector.db_selector))

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
        command = self._command(batch)
        if command is None:
            return  # nothing to write (empty batch, or only empty rows on a stream)
        keys, args = command
        try:
            result = int(self._script(keys=keys, args=args))
        except redis.RedisError as err:
            raise translate(err, self.connector, f"writing batch of output {self.name}") from err
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
        return {"trimmed": self.trimmed, "skipped": self.skipped}

    # ------------------------------------------------------------------ encoding
    def _command(self, batch: Batch) -> Command | None:
        """Return the script's KEYS and ARGV for a batch, or None when there is nothing to write."""
        args: Args = [str(int(self.clock.now())), self.item.max_items]
        if self.item.structure is Structure.HmapTimeSeries:
            keys, args = self._hmap_command(batch, args)
            return (keys, args) if len(keys) > 2 else None
        keys, args = self._stream_command(batch, args)
        return (keys, args) if len(keys) > 1 else None

    def _hmap_command(self, batch: Batch, args: Args) -> Command:
        redis_node = self.item.redis_node or ""
        keys = [META_KEY, redis_node]
        for node, rows in batch.by_source().items():
            unique = layout.one_per_stamp(rows, layout.epoch_field)
            keys += [layout.hmap_key(redis_node, node), layout.index_key(redis_node, node)]
            args.append(len(unique))
            for row in unique:
                args += [layout.epoch_field(row.time), layout.encode_values(row.values, self.item.json_style)]
        return keys, args

    def _stream_command(self, batch: Batch, args: Args) -> Command:
        keys = [META_KEY]
        for node, rows in batch.by_source().items():
            unique = [r for r in layout.one_per_stamp(rows, layout.stream_ms) if r.values]
            if not unique:
                continue
            keys.append(layout.stream_key(self.item.stream_prefix, node))
            args.append(len(unique))
            for row in unique:
                args += _stream_entry(row)
        return keys, args


def _stream_entry(row: Row) -> Args:
    """Return one row's script arguments: ms, field count, field/value pairs."""
    return [layout.stream_ms(row.time), len(row.values), *layout.encode_fields(row.values)]
