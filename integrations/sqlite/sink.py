"""The SQLite store: one row per (source, site, time), values as JSON, one transaction per batch.

``site`` (issue 25): a central input (MQTT, influxDb2) forwards many sites' rows under one
input name, each carrying its ``site``/``node``; the key (source, time) made all sites of
one second overwrite each other. The site key is what the Redis output calls the row's
node, minus the input: ``<site>/<node>``, ``<node>``, or ``''`` for a row of one device.

Schema versions (``PRAGMA user_version``): 0 is the first (``PRIMARY KEY (source,
time)``); 2 adds ``site``. :func:`migrate` brings a version-0 store to 2 in one
transaction, keeping every row (its site taken from the values it stored).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vemonitor_integrations.sqlite.schema import SqliteOutputItem

from vemonitor.api import Batch, ConfigError, Context, Row, SinkUnavailable
from vemonitor.vedirect.fields import Value

log = logging.getLogger(__name__)

DEFAULT_FILE = "store.sqlite"
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
PRUNE_EVERY = 3600.0  # seconds of clock time between retention passes
BUSY_TIMEOUT = 5.0  # seconds to wait for another connection (a reader, a second output)

SCHEMA_VERSION = 2
SCHEMA = """CREATE TABLE IF NOT EXISTS rows (
    source TEXT NOT NULL,
    site TEXT NOT NULL DEFAULT '',
    time REAL NOT NULL,
    "values" TEXT NOT NULL,
    PRIMARY KEY (source, site, time)
)"""
INSERT = 'INSERT OR REPLACE INTO rows (source, site, time, "values") VALUES (?, ?, ?, ?)'
# The site of a version-0 row, from its stored values (the same rule as site_of).
_TEXT = "json_type(\"values\", '$.{0}') = 'text' AND json_extract(\"values\", '$.{0}') <> ''"
_SITE_SQL = (f"CASE WHEN json_valid(\"values\") AND {_TEXT.format('node')} THEN "
             f"(CASE WHEN {_TEXT.format('site')} THEN json_extract(\"values\", '$.site') || '/' "
             "ELSE '' END) || json_extract(\"values\", '$.node') ELSE '' END")
MIGRATE = [
    SCHEMA.replace("TABLE IF NOT EXISTS rows", "TABLE rows_v2"),
    f'INSERT OR REPLACE INTO rows_v2 (source, site, time, "values") '
    f'SELECT source, {_SITE_SQL}, time, "values" FROM rows',
    "DROP TABLE rows",
    "ALTER TABLE rows_v2 RENAME TO rows",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
]


def site_of(values: Mapping[str, Value]) -> str:
    """Return a row's site key: ``site/node``, ``node`` or '' (a row of one device)."""
    site, node = values.get("site"), values.get("node")
    if not isinstance(node, str) or not node:
        return ""
    return f"{site}/{node}" if isinstance(site, str) and site else node


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the store to :data:`SCHEMA_VERSION` in one transaction; return the rows moved.

    A new file gets the table; a version-0 table (no ``site`` column) is copied row by
    row into the new key, every row kept.
    """
    columns = [r[1] for r in conn.execute("PRAGMA table_info(rows)")]
    if not columns:
        conn.execute(SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return 0
    if "site" in columns:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        moved = int(conn.execute("SELECT count(*) FROM rows").fetchone()[0])
        for statement in MIGRATE:
            conn.execute(statement)
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise
    return moved


class SqliteStoreError(SinkUnavailable):
    """The store could not be opened or written (retried with backoff); names the file."""


def resolve_path(path: str | None, state_dir: str) -> Path:
    """Return the store file: the default in the state dir, or ``path`` relative to it."""
    target = Path(path).expanduser() if path else Path(DEFAULT_FILE)
    return target if target.is_absolute() else Path(state_dir).expanduser() / target


def check_synchronous(value: str, output: str | None) -> str:
    """Return the PRAGMA synchronous level upper-cased, or raise a ConfigError."""
    level = str(value).strip().upper()
    if level not in SYNCHRONOUS:
        raise ConfigError(f"output '{output}': must be one of {', '.join(SYNCHRONOUS)}, "
                          f"got {value!r}", key="synchronous")
    return level


def check_retention(days: float | None, output: str | None) -> float | None:
    """Return the retention in seconds (None keeps everything), or raise a ConfigError."""
    if days is None:
        return None
    if not days > 0:
        raise ConfigError(f"output '{output}': must be > 0 days or null, got {days!r}",
                          key="retention_days")
    return float(days) * 86400.0


def encode_values(values: Mapping[str, Value]) -> str:
    """Return the values as compact JSON; NaN and infinities become null (JSON has none)."""
    clean = {key: None if isinstance(v, float) and not math.isfinite(v) else v
             for key, v in values.items()}
    return json.dumps(clean, separators=(",", ":"), allow_nan=False)


class SqliteSink:
    """Stores every batch in a local SQLite file (WAL, idempotent by source, site and time)."""

    def __init__(self, item: SqliteOutputItem, ctx: Context) -> None:
        self.name = item.name
        self.clock = ctx.clock
        self.path = resolve_path(item.path, ctx.state_dir)
        # Checked here, not in start(): a typo is reported before anything is opened.
        self.synchronous = check_synchronous(item.synchronous, item.name)
        self.retention = check_retention(item.retention_days, item.name)
        self._conn: sqlite3.Connection | None = None
        self._next_prune = -math.inf
        # write() runs in the sender thread, close() in the engine's: never both at once.
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open (creating if needed) the store, switch it to WAL and create the table."""
        with self._lock:
            if self._conn is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                       check_same_thread=False)
            except (OSError, sqlite3.Error) as err:
                raise SqliteStoreError(f"cannot open SQLite store {self.path}: {err}") from err
            try:
                self._prepare(conn)
            except sqlite3.Error as err:
                conn.close()
                raise SqliteStoreError(f"cannot open SQLite store {self.path}: {err}") from err
            self._conn = conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # e.g. some network filesystems: still works, slower
            log.warning("sqlite %s: WAL mode unavailable for %s (journal_mode=%s)",
                        self.name, self.path, mode)
        conn.execute(f"PRAGMA synchronous={self.synchronous}")  # checked against SYNCHRONOUS
        moved = migrate(conn)
        if moved:
            log.info("sqlite %s: %s migrated to schema %d (rows keyed by site too; %d rows "
                     "kept)", self.name, self.path, SCHEMA_VERSION, moved)

    def write(self, batch: Batch) -> None:
        """Store the batch in one transaction; a re-sent batch replaces, never duplicates."""
        with self._lock:
            conn = self._connection()
            params = [(row.input, site_of(row.values), float(row.time),
                       encode_values(row.values)) for row in batch.rows]
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(INSERT, params)
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise SqliteStoreError(f"cannot write to SQLite store {self.path}: {err}") from err
            self._maybe_prune(conn)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SqliteStoreError(f"SQLite store {self.path} is not open (start() first)")
        return self._conn

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        """Delete rows past retention, at most once per PRUNE_EVERY of clock time."""
        now = self.clock.now()
        if self.retention is None or now < self._next_prune:
            return
        # Set before trying: a failing prune must not be retried on every write.
        self._next_prune = now + PRUNE_EVERY
        try:
            deleted = conn.execute("DELETE FROM rows WHERE time < ?",
                                   (now - self.retention,)).rowcount
        except sqlite3.Error as err:
            # The batch is already committed: report, but do not fail (and re-send) it.
            log.warning("sqlite %s: retention pass on %s failed: %s", self.name, self.path, err)
            return
        if deleted:
            log.info("sqlite %s: deleted %d rows older than %g days", self.name, deleted,
                     self.retention / 86400.0)

    def close(self) -> None:
        """Close the store (checkpointing the WAL); safe to call more than once."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def read_rows(path: str | Path, input_name: str | None = None,
              since: float | None = None) -> list[Row]:
    """Return the stored rows (oldest first), optionally of one input and from ``since`` on.

    The table's column is still named ``source`` (the input's name): renaming it would
    make every existing store unreadable for a word.
    """
    clauses: list[str] = []
    args: list[Any] = []
    if input_name is not None:
        clauses.append("source = ?")
        args.append(input_name)
    if since is not None:
        clauses.append("time >= ?")
        args.append(float(since))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    query = f'SELECT time, source, "values" FROM rows{where} ORDER BY time, source'
    try:
        # Read-only URI: reading must never create an empty store by mistake.
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise SqliteStoreError(f"cannot open SQLite store {path}: {err}") from err
    try:
        return [Row(time, src, json.loads(values)) for time, src, values in
                conn.execute(query, args)]
    except sqlite3.Error as err:
        raise SqliteStoreError(f"cannot read SQLite store {path}: {err}") from err
    finally:
        conn.close()
