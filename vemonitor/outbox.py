"""Durable outbox: a batch leaves it only after its sink accepted it.

One SQLite file per output in ``<state_dir>/outbox/``, WAL mode. Each batch is
one row inserted in one transaction, so a ``kill -9`` or a power cut loses
nothing that was committed. ``synchronous=FULL`` (the default) makes SQLite
fsync at each commit: one fsync per batch, i.e. every ``cache_interval``
output ticks, which is what the SD card sees; ``NORMAL`` trades the last
batches on a power cut for fewer fsyncs.

Bounds: rows, bytes and age. What overflows is dropped oldest first, counted,
and warned about once per overflow episode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vemonitor.errors import OutboxError as OutboxError  # re-exported
from vemonitor.model import Batch, Row

log = logging.getLogger(__name__)

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")




@dataclass(frozen=True)
class OutboxLimits:
    """Caps of one outbox; the oldest batches go first when one is exceeded."""

    max_rows: int = 2_000_000
    max_bytes: int = 256 * 1024 * 1024
    max_age: float = 30 * 86400.0


def encode_rows(rows: Iterable[Row]) -> str:
    """Return rows as compact JSON ([time, source, values, age] per row)."""
    return json.dumps([[r.time, r.source, dict(r.values), r.age] for r in rows],
                      separators=(",", ":"), allow_nan=False)


def decode_rows(text: str) -> tuple[Row, ...]:
    """Return the rows of a JSON payload written by :func:`encode_rows`."""
    return tuple(Row(float(t), str(s), v, float(a)) for t, s, v, a in json.loads(text))


class Outbox:
    """A bounded FIFO of batches on disk for one output."""

    def __init__(self, path: Path, output: str, limits: OutboxLimits | None = None,
                 synchronous: str = "FULL") -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}")
        self.path = path
        self.output = output
        self.limits = limits or OutboxLimits()
        self.synchronous = synchronous.upper()
        self.dropped_rows = 0
        self._overflowing = False
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Open (or create) the file; batches left by a previous run are kept."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                 timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY "
                       "AUTOINCREMENT, created REAL NOT NULL, rows INTEGER NOT NULL, "
                       "bytes INTEGER NOT NULL, payload TEXT NOT NULL)")
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(f"outbox {self.path}: cannot open ({err})") from err
        self._db = db

    @property
    def is_open(self) -> bool:
        """Return True between open() and close()."""
        return self._db is not None

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ------------------------------------------------------------------ queue
    def put(self, batch: Batch, now: float) -> None:
        """Store a batch durably, then enforce the bounds."""
        payload = encode_rows(batch.rows)
        with self._lock:
            db = self._require()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO batches (created, rows, bytes, payload) VALUES "
                           "(?, ?, ?, ?)", (now, len(batch.rows), len(payload), payload))
                dropped = self._enforce(db, now)
                db.execute("COMMIT")
            except sqlite3.Error as err:
                _rollback(db)
                raise OutboxError(f"outbox {self.path}: cannot store a batch ({err})") from err
        self._report_drops(dropped)

    def peek(self, max_rows: int, after: int = 0) -> list[tuple[int, Batch]]:
        """Return the oldest batches (at least one, up to ``max_rows`` rows in all), in order.

        Only batches with an id above ``after`` (ones not sent yet) are returned.
        """
        with self._lock:
            cursor = self._require().execute(
                "SELECT id, rows, payload FROM batches WHERE id > ? ORDER BY id LIMIT 1000",
                (after,))
            out: list[tuple[int, Batch]] = []
            total = 0
            for batch_id, rows, payload in cursor:
                if out and total + rows > max_rows:
                    break
                out.append((batch_id, Batch(self.output, decode_rows(payload))))
                total += rows
            return out

    def ack(self, ids: Iterable[int]) -> None:
        """Remove batches the sink accepted."""
        ids = list(ids)
        with self._lock:
            db = self._require()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in ids])
                db.execute("COMMIT")
            except sqlite3.Error as err:
                _rollback(db)
                raise OutboxError(f"outbox {self.path}: cannot remove sent batches ({err})") \
                    from err

    def depth(self) -> dict[str, Any]:
        """Return batches, rows and bytes waiting, and the oldest batch's creation time."""
        with self._lock:
            row = self._require().execute(
                "SELECT COUNT(*), COALESCE(SUM(rows), 0), COALESCE(SUM(bytes), 0), MIN(created) "
                "FROM batches").fetchone()
        return {"batches": row[0], "rows": row[1], "bytes": row[2], "oldest": row[3]}

    # ------------------------------------------------------------------ internals
    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"outbox {self.path} is not open")
        return self._db

    def _enforce(self, db: sqlite3.Connection, now: float) -> int:
        """Drop the oldest batches beyond the caps (never the newest one); return rows dropped."""
        dropped = 0
        cursor = db.execute("DELETE FROM batches WHERE created < ? AND id < (SELECT MAX(id) "
                            "FROM batches) RETURNING rows", (now - self.limits.max_age,))
        dropped += sum(r[0] for r in cursor.fetchall())
        while True:
            count, total_rows, total_bytes = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(rows), 0), COALESCE(SUM(bytes), 0) "
                "FROM batches").fetchone()
            if count <= 1 or (total_rows <= self.limits.max_rows
                              and total_bytes <= self.limits.max_bytes):
                return int(dropped)
            oldest = db.execute("DELETE FROM batches WHERE id = (SELECT MIN(id) FROM batches) "
                                "RETURNING rows").fetchone()
            dropped += int(oldest[0])

    def _report_drops(self, dropped: int) -> None:
        """Count drops; warn once when an overflow starts, once when it ends."""
        if dropped:
            self.dropped_rows += dropped
            if not self._overflowing:
                log.warning("output %s: outbox full, dropping oldest rows (%d so far)",
                            self.output, self.dropped_rows)
            self._overflowing = True
        elif self._overflowing:
            log.info("output %s: outbox below its limits again (%d rows dropped in all)",
                     self.output, self.dropped_rows)
            self._overflowing = False


def _rollback(db: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        db.execute("ROLLBACK")


def outbox_path(state_dir: Path, output: str) -> Path:
    """Return the outbox file of an output."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in output)
    return state_dir / "outbox" / f"{safe}.sqlite"


class MemoryOutbox:
    """An outbox in memory, for outputs where durability costs more than it gives.

    The console only shows rows: storing them on disk first would cost the SD card two
    writes per batch for nothing. Same interface as :class:`Outbox`, bounded by rows.
    """

    def __init__(self, output: str, limits: OutboxLimits | None = None) -> None:
        self.output = output
        self.limits = limits or OutboxLimits()
        self.dropped_rows = 0
        self._lock = threading.Lock()
        self._batches: dict[int, tuple[float, Batch]] = {}
        self._next = 1
        self.is_open = False

    def open(self) -> None:
        """Nothing to open."""
        self.is_open = True

    def close(self) -> None:
        """Forget nothing: there is nothing to flush (idempotent)."""
        self.is_open = False

    def put(self, batch: Batch, now: float) -> None:
        """Keep a batch; drop the oldest beyond max_rows."""
        with self._lock:
            self._batches[self._next] = (now, batch)
            self._next += 1
            while len(self._batches) > 1 and sum(len(b) for _, b in self._batches.values()) \
                    > self.limits.max_rows:
                oldest = min(self._batches)
                self.dropped_rows += len(self._batches.pop(oldest)[1])

    def peek(self, max_rows: int, after: int = 0) -> list[tuple[int, Batch]]:
        """Return the oldest batches with an id above ``after``, up to ``max_rows`` rows."""
        with self._lock:
            out: list[tuple[int, Batch]] = []
            total = 0
            for batch_id in sorted(i for i in self._batches if i > after):
                batch = self._batches[batch_id][1]
                if out and total + len(batch) > max_rows:
                    break
                out.append((batch_id, batch))
                total += len(batch)
            return out

    def ack(self, ids: Iterable[int]) -> None:
        """Forget sent batches."""
        with self._lock:
            for batch_id in ids:
                self._batches.pop(batch_id, None)

    def depth(self) -> dict[str, Any]:
        """Return what is waiting, as Outbox.depth does."""
        with self._lock:
            items = list(self._batches.values())
        return {"batches": len(items), "rows": sum(len(b) for _, b in items),
                "bytes": 0, "oldest": min((t for t, _ in items), default=None)}
