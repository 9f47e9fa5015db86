"""The control state in the state dir: the audit log, rate limits, the daily NV budget.

One SQLite file, ``<state_dir>/control.sqlite``, shared by the daemon and the
``vemonitor hex`` command (each connection waits up to 5 s for the other's lock).

* ``audit``: one row per attempt, written *before* the frame is sent (``state`` =
  ``pending``) and completed after (``done``). A process killed mid-write leaves its
  row pending; the next process to open the store marks it ``interrupted`` (the frame
  may or may not have reached the device) and, once it has read the register again,
  records that value as the row's read-back: the log says what is known.
* ``last_write``: the time of the last frame sent per (device serial, control): the
  rate limits survive a restart and hold across the daemon and the CLI.
* ``nv_writes``: NV writes per (device serial, UTC day): the daily budget (HEX.md §8.7).
* ``consent``: the controls the daemon's configuration enables per device serial, so
  ``vemonitor hex set`` on the same device needs no ``--enable`` (issue 23 point 4).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

FILE_NAME = "control.sqlite"
AUDIT_COLUMNS = ("id", "time", "device", "serial", "surface", "caller", "control",
                 "register", "event", "old", "new", "frame", "reply", "readback", "result",
                 "reason", "state", "pid")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, device TEXT NOT NULL,
    serial TEXT, surface TEXT NOT NULL, caller TEXT NOT NULL, control TEXT NOT NULL,
    register TEXT NOT NULL, event TEXT NOT NULL, old TEXT, new TEXT, frame TEXT NOT NULL,
    reply TEXT NOT NULL DEFAULT '', readback TEXT, result TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, pid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS last_write (
    serial TEXT NOT NULL, control TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (serial, control));
CREATE TABLE IF NOT EXISTS nv_writes (
    serial TEXT NOT NULL, day TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (serial, day));
CREATE TABLE IF NOT EXISTS consent (
    serial TEXT NOT NULL, control TEXT NOT NULL, enabled INTEGER NOT NULL,
    dry_run INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (serial, control));
"""


def dump(value: object) -> str | None:
    """Return a value as the audit log stores it (JSON text; None stays NULL)."""
    return None if value is None else json.dumps(value)


def load(text: str | None) -> Any:
    """Return a stored value."""
    return None if text is None else json.loads(text)


def utc_day(at: float) -> str:
    """Return the UTC date of a wall-clock time (the NV budget's day)."""
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def _alive(pid: int) -> bool:
    """Return True when process ``pid`` still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ControlStore:
    """The control tables of one state dir (thread-safe: one connection, one lock)."""

    def __init__(self, state_dir: str | Path) -> None:
        folder = Path(state_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False,
                                   isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a pending row survives a power cut
            self._db.executescript(_SCHEMA)
        self.mark_interrupted()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ audit
    def begin(self, **row: Any) -> int:
        """Write a pending audit row (before the frame is sent); return its id."""
        row = {**row, "state": "pending", "pid": os.getpid(),
               "old": dump(row.get("old")), "new": dump(row.get("new"))}
        keys = sorted(row)
        with self._lock:
            cur = self._db.execute(
                f"INSERT INTO audit ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})",
                [row[k] for k in keys])
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish(self, row_id: int, *, result: str, reason: str, reply: str,
               readback: object, frame: str | None = None) -> None:
        """Complete an audit row with what the device said."""
        with self._lock:
            self._db.execute(
                "UPDATE audit SET result=?, reason=?, reply=?, readback=?, state='done',"
                " frame=COALESCE(?, frame) WHERE id=?",
                (result, reason, reply, dump(readback), frame, row_id))

    def record(self, **row: Any) -> int:
        """Write a finished audit row at once (refusals, dry runs, lease ends)."""
        row_id = self.begin(**row)
        self.finish(row_id, result=row["result"], reason=row.get("reason", ""),
                    reply=row.get("reply", ""), readback=row.get("readback"))
        return row_id

    def mark_interrupted(self) -> int:
        """Mark the pending rows of dead processes ``interrupted``; return how many."""
        with self._lock:
            rows = self._db.execute("SELECT id, pid FROM audit WHERE state='pending'").fetchall()
            dead = [row_id for row_id, pid in rows if pid != os.getpid() and not _alive(pid)]
            for row_id in dead:
                self._db.execute(
                    "UPDATE audit SET state='done', result='interrupted', reason=? WHERE id=?",
                    ("the process ended before the reply: the frame may or may not have "
                     "reached the device", row_id))
        return len(dead)

    def known_after_restart(self, serial: str, control: str, value: object) -> int:
        """Record ``value`` (read at connect) as the read-back of interrupted rows."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE audit SET readback=?, reason=reason || ?"
                " WHERE result='interrupted' AND readback IS NULL AND serial=? AND control=?",
                (dump(value), f"; read at the next connect: {value}", serial, control))
        return cur.rowcount

    def rows(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the newest audit rows, oldest first."""
        with self._lock:
            found = self._db.execute(
                f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit ORDER BY id DESC LIMIT ?",
                (limit,)).fetchall()
        out = [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in reversed(found)]
        for row in out:
            for key in ("old", "new", "readback"):
                row[key] = load(row[key])
        return out

    # ----------------------------------------------------------- rate limits
    def last_write(self, serial: str, control: str) -> float | None:
        """Return when a frame of ``control`` was last sent to this device."""
        with self._lock:
            row = self._db.execute("SELECT at FROM last_write WHERE serial=? AND control=?",
                                   (serial, control)).fetchone()
        return None if row is None else float(row[0])

    def note_write(self, serial: str, control: str, at: float, nv: bool) -> None:
        """Count a frame about to be sent: rate limit time, and the NV budget when ``nv``."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO last_write VALUES (?, ?, ?)",
                             (serial, control, at))
            if nv:
                self._db.execute(
                    "INSERT INTO nv_writes VALUES (?, ?, 1) ON CONFLICT (serial, day)"
                    " DO UPDATE SET count = count + 1", (serial, utc_day(at)))

    def nv_writes(self, serial: str, at: float) -> int:
        """Return the NV writes sent to this device on the UTC day of ``at``."""
        with self._lock:
            row = self._db.execute("SELECT count FROM nv_writes WHERE serial=? AND day=?",
                                   (serial, utc_day(at))).fetchone()
        return 0 if row is None else int(row[0])

    # ---------------------------------------------------------------- consent
    def save_consent(self, serial: str, control: str, enabled: bool, dry_run: bool,
                     at: float) -> None:
        """Remember what the daemon's configuration enables for this device."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO consent VALUES (?, ?, ?, ?, ?)",
                             (serial, control, int(enabled), int(dry_run), at))

    def consent(self, serial: str, control: str) -> tuple[bool, bool] | None:
        """Return (enabled, dry_run) the configuration gave this device's control, or None."""
        with self._lock:
            row = self._db.execute("SELECT enabled, dry_run FROM consent WHERE serial=? AND"
                                   " control=?", (serial, control)).fetchone()
        return None if row is None else (bool(row[0]), bool(row[1]))
