"""Durable outbox: a batch leaves it only after its sink accepted it.

One SQLite file per output in ``<state_dir>/outbox/``, WAL mode. Each batch is
one row inserted in one transaction, so a ``kill -9`` or a power cut loses
nothing that was committed. ``synchronous=FULL`` (the default) makes SQLite
fsync at each commit: one fsync per batch, i.e. every ``cache_interval``
output ticks, which is what the SD card sees; ``NORMAL`` trades the last
batches on a power cut for fewer fsyncs.

Bounds: rows, bytes and age. What overflows is dropped oldest first, counted,
and warned about once per overflow episode.

Damage is contained to the one batch or the one file (see docs/operations.md):

* a batch that can never be delivered (its payload does not decode, or the sink
  refused its content: :class:`~vemonitor.errors.BatchRejected`) moves to the
  ``dead_letters`` table of the same file, with the reason and the time; it is
  kept (never deleted), counted, and delivery goes on with the next batch;
* a file that is not a usable outbox (not a database, a damaged page, a
  directory, truncated to 0 bytes) is moved aside as
  ``<name>.sqlite.broken-<UTC timestamp>`` (with its -wal/-shm), one ERROR line
  says so, and a new empty outbox is started. Only that output is affected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
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
    """Return rows as compact JSON ([time, input, values, age] per row)."""
    return json.dumps([[r.time, r.input, dict(r.values), r.age] for r in rows],
                      separators=(",", ":"), allow_nan=False)


def decode_rows(text: str) -> tuple[Row, ...]:
    """Return the rows of a JSON payload written by :func:`encode_rows`.

    Raises ValueError when the payload is not a list of [time, input, {values}, age].
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"payload is not JSON ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(data, list):
        raise ValueError("payload is not a list of rows")
    rows = []
    for index, item in enumerate(data):
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[2], dict)
                and isinstance(item[0], (int, float)) and isinstance(item[3], (int, float))):
            raise ValueError(f"row {index} is not [time, input, {{values}}, age]")
        rows.append(Row(float(item[0]), str(item[1]), item[2], float(item[3])))
    return tuple(rows)


DEAD_LETTERS_SQL = ("CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, "
                    "batch_id INTEGER NOT NULL, created REAL NOT NULL, failed REAL NOT NULL, "
                    "rows INTEGER NOT NULL, reason TEXT NOT NULL, payload TEXT NOT NULL)")


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
        self.dead_rows = 0  # rows moved to the dead-letter table by this run
        self.dead_batches = 0
        self.moved_aside: list[Path] = []
        self.commits = 0  # transactions that stored or removed batches (each one a sync)
        self._overflowing = False
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Open (or create) the file; batches left by a previous run are kept.

        A file that is not a usable outbox is moved aside and a new one started;
        a directory that cannot be written is an OutboxError.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutboxError(f"outbox {self.path}: cannot open, its folder cannot be "
                              f"created ({err.strerror or err})") from err
        problem = _unusable(self.path)
        if problem is None:
            try:
                self._db = self._connect()
                return
            except sqlite3.DatabaseError as err:
                if not _is_damage(err):
                    raise OutboxError(f"outbox {self.path}: cannot open ({err})") from err
                problem = str(err)
            except OSError as err:
                raise OutboxError(f"outbox {self.path}: cannot open "
                                  f"({err.strerror or err})") from err
        self.moved_aside.append(self._move_aside(problem))
        try:
            self._db = self._connect()
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(f"outbox {self.path}: cannot open ({err})") from err

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                             timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY "
                       "AUTOINCREMENT, created REAL NOT NULL, rows INTEGER NOT NULL, "
                       "bytes INTEGER NOT NULL, payload TEXT NOT NULL)")
            db.execute(DEAD_LETTERS_SQL)
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed "
                                            f"(quick_check: {check[0] if check else '?'})")
        except BaseException:
            db.close()
            raise
        return db

    def _replace_locked(self, damage: str) -> None:
        """A damaged page never heals: keep the file for inspection, start a new one."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self.moved_aside.append(self._move_aside(damage))
        try:
            self._db = self._connect()
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(f"outbox {self.path}: cannot start a new outbox ({err})") from err

    def _move_aside(self, problem: str) -> Path:
        """Rename the unusable file (and its -wal/-shm) with a timestamp; return the new name."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.broken-{stamp}-{n}")
        try:
            self.path.rename(target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.rename(target.with_name(target.name + suffix))
        except OSError as err:
            raise OutboxError(f"outbox {self.path} is unusable ({problem}) and cannot be "
                              f"moved aside ({err.strerror or err})") from err
        log.error("output %s: outbox %s is unusable (%s); moved aside to %s, a new outbox "
                  "is started", self.output, self.path, problem, target.name)
        return target

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
        self.put_many([batch], now)

    def put_many(self, batches: list[Batch], now: float) -> list[int]:
        """Store batches durably in one transaction (one sync), in order; return their ids.

        The bounds are enforced once, after all of them.
        """
        try:
            payloads = [(encode_rows(b.rows), len(b.rows)) for b in batches]
        except (ValueError, TypeError, RecursionError) as err:
            raise OutboxError(f"outbox {self.path}: a batch cannot be encoded "
                              f"({type(err).__name__})") from None
        for attempt in (1, 2):
            with self._lock:
                db = self._require()
                try:
                    db.execute("BEGIN IMMEDIATE")
                    ids = [int(db.execute(
                        "INSERT INTO batches (created, rows, bytes, payload) VALUES "
                        "(?, ?, ?, ?) RETURNING id", (now, rows, len(text), text)).fetchone()[0])
                        for text, rows in payloads]
                    dropped = self._enforce(db, now)
                    db.execute("COMMIT")
                    self.commits += 1
                    break
                except sqlite3.Error as err:
                    _rollback(db)
                    if attempt == 2 or not _is_damage(err):
                        raise OutboxError(f"outbox {self.path}: cannot store a batch "
                                          f"({err})") from err
                    self._replace_locked(str(err))
        self._report_drops(dropped)
        return ids

    def peek(self, max_rows: int, after: int = 0) -> list[tuple[int, Batch]]:
        """Return the oldest batches (at least one, up to ``max_rows`` rows in all), in order.

        Only batches with an id above ``after`` (ones not sent yet) are returned.
        """
        with self._lock:
            try:
                found = self._require().execute(
                    "SELECT id, rows, payload FROM batches WHERE id > ? ORDER BY id LIMIT 1000",
                    (after,)).fetchall()
            except sqlite3.Error as err:
                if not _is_damage(err):
                    raise OutboxError(f"outbox {self.path}: cannot read batches ({err})") \
                        from err
                self._replace_locked(str(err))
                return []
            out: list[tuple[int, Batch]] = []
            undecodable: list[tuple[int, str]] = []
            total = 0
            for batch_id, rows, payload in found:
                if out and total + rows > max_rows:
                    break
                try:
                    out.append((batch_id, Batch(self.output, decode_rows(payload))))
                except ValueError as err:
                    undecodable.append((batch_id, f"undecodable: {err}"))
                    continue
                total += rows
        for batch_id, reason in undecodable:
            self.dead_letter([batch_id], reason)
        return out

    def dead_letter(self, ids: Iterable[int], reason: str) -> None:
        """Move batches that can never be delivered to the dead-letter table (kept, counted)."""
        ids = list(ids)
        with self._lock:
            db = self._require()
            try:
                db.execute("BEGIN IMMEDIATE")
                moved = 0
                for batch_id in ids:
                    row = db.execute("DELETE FROM batches WHERE id = ? RETURNING created, rows, "
                                     "payload", (batch_id,)).fetchone()
                    if row is None:
                        continue
                    db.execute("INSERT INTO dead_letters (batch_id, created, failed, rows, reason,"
                               " payload) VALUES (?, ?, ?, ?, ?, ?)",
                               (batch_id, row[0], time.time(), row[1], reason, row[2]))
                    moved += int(row[1])
                    self.dead_batches += 1
                db.execute("COMMIT")
            except sqlite3.Error as err:
                _rollback(db)
                raise OutboxError(f"outbox {self.path}: cannot dead-letter a batch ({err})") \
                    from err
        self.dead_rows += moved
        for batch_id in ids:
            log.error("output %s: batch %d dead-lettered (%s); kept in the dead_letters table "
                      "of %s, delivery goes on", self.output, batch_id, reason, self.path)

    def dead_depth(self) -> dict[str, int]:
        """Return the batches and rows in the dead-letter table (all runs)."""
        with self._lock:
            row = self._require().execute(
                "SELECT COUNT(*), COALESCE(SUM(rows), 0) FROM dead_letters").fetchone()
        return {"batches": int(row[0]), "rows": int(row[1])}

    def ack(self, ids: Iterable[int]) -> None:
        """Remove batches the sink accepted."""
        ids = list(ids)
        with self._lock:
            db = self._require()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in ids])
                db.execute("COMMIT")
                self.commits += 1
            except sqlite3.Error as err:
                _rollback(db)
                if not _is_damage(err):
                    raise OutboxError(f"outbox {self.path}: cannot remove sent batches "
                                      f"({err})") from err
                self._replace_locked(str(err))

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


def _unusable(path: Path) -> str | None:
    """Return why an existing outbox path cannot be opened as one (None when it may be)."""
    if path.is_dir():
        return "it is a directory"
    if path.exists() and path.stat().st_size == 0:
        wal = path.with_name(path.name + "-wal")
        if not (wal.exists() and wal.stat().st_size > 0):
            return "the file is empty (truncated); its pending batches are lost"
    return None


def _is_damage(err: sqlite3.Error) -> bool:
    """Return True when SQLite says the file is not (or no longer) a sound database."""
    text = str(err).lower()
    return isinstance(err, sqlite3.DatabaseError) and any(
        word in text for word in ("malformed", "not a database", "file is encrypted",
                                  "disk image", "unable to open database file"))


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
        self.dead_rows = 0
        self.dead_batches = 0
        self.moved_aside: list[Path] = []
        self.dead: list[tuple[int, str, Batch]] = []
        self.commits = 0
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
        self.put_many([batch], now)

    def put_many(self, batches: list[Batch], now: float) -> list[int]:
        """Keep batches in order; drop the oldest beyond max_rows; return their ids."""
        with self._lock:
            ids = []
            for batch in batches:
                self._batches[self._next] = (now, batch)
                ids.append(self._next)
                self._next += 1
            self.commits += 1
            while len(self._batches) > 1 and sum(len(b) for _, b in self._batches.values()) \
                    > self.limits.max_rows:
                oldest = min(self._batches)
                self.dropped_rows += len(self._batches.pop(oldest)[1])
            return ids

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

    def dead_letter(self, ids: Iterable[int], reason: str) -> None:
        """Keep batches that can never be delivered aside, in memory (counted, logged)."""
        for batch_id in ids:
            with self._lock:
                item = self._batches.pop(batch_id, None)
            if item is None:
                continue
            self.dead.append((batch_id, reason, item[1]))
            self.dead_batches += 1
            self.dead_rows += len(item[1])
            log.error("output %s: batch %d dead-lettered (%s); delivery goes on", self.output,
                      batch_id, reason)

    def dead_depth(self) -> dict[str, int]:
        """Return the batches and rows set aside."""
        return {"batches": len(self.dead), "rows": sum(len(b) for _, _, b in self.dead)}

    def depth(self) -> dict[str, Any]:
        """Return what is waiting, as Outbox.depth does."""
        with self._lock:
            items = list(self._batches.values())
        return {"batches": len(items), "rows": sum(len(b) for _, b in items),
                "bytes": 0, "oldest": min((t for t, _ in items), default=None)}
