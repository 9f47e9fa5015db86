"""The JSON Lines sink: one line per row, appended, fsynced, never the same (source, time) twice."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Mapping
from contextlib import suppress
from itertools import islice
from pathlib import Path
from typing import IO, Any

from vemonitor.api import Batch, Row

from vemonitor_jsonl.schema import JsonlOutputItem

log = logging.getLogger(__name__)

TAIL_BYTES = 1024 * 1024  # how much of an existing file is read back to recover recent rows
MIN_RECENT = 10_000  # (source, time) keys remembered to skip rows a retried batch repeats

Key = tuple[str, float]


class JsonlWriteError(Exception):
    """The file could not be opened or written; the message names it."""


def resolve_path(path: str | None, output: str | None, state_dir: str) -> Path:
    """Return the file: ``<output>.jsonl`` in the state dir, or ``path`` relative to it."""
    target = Path(path).expanduser() if path else Path(f"{output or 'jsonl'}.jsonl")
    return target if target.is_absolute() else Path(state_dir).expanduser() / target


def encode_row(row: Row) -> str:
    """Return a row as one compact JSON line; NaN and infinities become null."""
    values = {key: None if isinstance(v, float) and not math.isfinite(v) else v
              for key, v in row.values.items()}
    # The file's key stays "source": readers of existing files depend on it.
    return json.dumps({"time": row.time, "source": row.input, "values": values},
                      separators=(",", ":"), allow_nan=False)


def read_rows(path: str | Path) -> list[Row]:
    """Return the rows of a JSON Lines file written by this sink, in file order."""
    with open(path, encoding="utf-8") as stream:
        return [_decode(line) for line in stream if line.strip()]


def _decode(line: str) -> Row:
    data: Mapping[str, Any] = json.loads(line)
    return Row(float(data["time"]), str(data["source"]), dict(data["values"]))


def _tail_keys(lines: Iterable[bytes]) -> list[Key]:
    """Return the (source, time) keys of complete lines, skipping any that do not parse."""
    keys: list[Key] = []
    for line in lines:
        try:
            row = _decode(line.decode("utf-8"))
        except (ValueError, KeyError, TypeError):
            continue  # the first line of a tail read is usually cut: not ours to judge
        keys.append((row.input, row.time))
    return keys


class JsonlSink:
    """Appends each batch to a JSON Lines file; a re-sent batch adds no duplicate lines."""

    def __init__(self, item: JsonlOutputItem, state_dir: str) -> None:
        self.name = item.name
        self.path = resolve_path(item.path, item.name, state_dir)
        self.fsync = item.fsync
        # A retry re-sends at most drain_rows rows (more for one big batch): remember more.
        self.max_recent = max(MIN_RECENT, 2 * item.delivery.drain_rows)
        self.skipped = 0  # rows not written again because the file already had them
        self._recent: dict[Key, None] = {}  # insertion-ordered: oldest keys are evicted first
        self._file: IO[str] | None = None
        self._synced = False  # False until the file's tail was read back (again after a failure)
        self._started = False
        self._lock = threading.Lock()  # write() runs in the sender thread, close() in the engine's

    def start(self) -> None:
        """Open the file for appending (creating folders), after reading back its tail."""
        with self._lock:
            self._started = True
            try:
                self._open()
            except OSError as err:
                raise JsonlWriteError(f"cannot open JSON Lines file {self.path}: {err}") from err

    def write(self, batch: Batch) -> None:
        """Append the rows not already in the file, then flush (and fsync); raise on failure."""
        with self._lock:
            if not self._started:
                raise JsonlWriteError(f"JSON Lines file {self.path} is not open (start() first)")
            try:
                stream = self._open()
                rows = [row for row in batch.rows if (row.input, row.time) not in self._recent]
                self.skipped += len(batch.rows) - len(rows)
                if not rows:
                    return
                text = "".join(encode_row(row) + "\n" for row in rows)  # before any byte is written
                stream.write(text)
                stream.flush()
                if self.fsync:
                    os.fsync(stream.fileno())
            except OSError as err:
                self._synced = False  # some lines may be in the file: read it back next time
                raise JsonlWriteError(f"cannot write to JSON Lines file {self.path}: {err}") from err
            self._remember((row.input, row.time) for row in rows)

    def close(self) -> None:
        """Close the file; safe to call more than once, never raises."""
        with self._lock:
            self._started = False
            stream, self._file = self._file, None
        if stream is not None:
            try:
                stream.close()
            except OSError as err:  # unflushed lines of a failed write: the outbox still has them
                log.warning("jsonl %s: closing %s: %s", self.name, self.path, err)

    def _open(self) -> IO[str]:
        """Return the open file; (re)open it, reading its tail back, at start and after a failure."""
        if self._file is not None and self._synced:
            return self._file
        if self._file is not None:
            stream, self._file = self._file, None
            with suppress(OSError):  # its unflushed bytes, if any, are judged by _recover()
                stream.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        return self._file

    def _recover(self) -> None:
        """Cut a torn last line (a crash mid-write) and remember the rows of the file's tail."""
        if self.path.exists():
            with open(self.path, "rb+") as raw:
                size = raw.seek(0, os.SEEK_END)
                start = raw.seek(max(0, size - TAIL_BYTES))
                tail = raw.read()
                complete = tail.rfind(b"\n") + 1
                # A torn line was never acknowledged (write() raised): the outbox re-sends it.
                if complete < len(tail) and (complete or start == 0):
                    log.warning("jsonl %s: removing a torn last line from %s", self.name, self.path)
                    raw.truncate(start + complete)
                self._remember(_tail_keys(tail[:complete].splitlines()))
        self._synced = True

    def _remember(self, keys: Iterable[Key]) -> None:
        """Add keys, forgetting the oldest beyond ``max_recent``."""
        for key in keys:
            self._recent[key] = None
        excess = len(self._recent) - self.max_recent
        for key in list(islice(self._recent, max(0, excess))):
            del self._recent[key]
