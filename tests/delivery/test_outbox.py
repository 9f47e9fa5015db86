"""The durable outbox: order, durability across processes, bounds with counted drops."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from vemonitor.model import Batch, Row
from vemonitor.outbox import Outbox, OutboxError, OutboxLimits


def _batch(start: int, n: int = 3) -> Batch:
    return Batch("out", tuple(Row(float(t), "node", {"V": t / 10, "ok": True}) for t in
                              range(start, start + n)))


def _open(path: Path, **limits: float) -> Outbox:
    box = Outbox(path, "out", OutboxLimits(**limits) if limits else None)  # type: ignore[arg-type]
    box.open()
    return box


def test_batches_come_back_in_order_and_leave_only_when_acked(tmp_path: Path) -> None:
    """peek returns the oldest first; ack removes exactly what was sent."""
    box = _open(tmp_path / "o.sqlite")
    for start in (0, 10, 20):
        box.put(_batch(start), now=1000.0)
    items = box.peek(max_rows=6)
    assert [b.rows[0].time for _, b in items] == [0.0, 10.0]
    assert items[0][1].rows[0].values == {"V": 0.0, "ok": True}
    box.ack([items[0][0]])
    assert [b.rows[0].time for _, b in box.peek(100)] == [10.0, 20.0]
    assert box.depth()["rows"] == 6


def _writer(path: str, ready: multiprocessing.synchronize.Event) -> None:
    box = Outbox(Path(path), "out")
    box.open()
    for start in range(0, 300, 3):
        box.put(_batch(start), now=1000.0)
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)  # no clean shutdown at all


def test_sigkilled_process_loses_nothing_that_reached_the_outbox(tmp_path: Path) -> None:
    """A writer killed with SIGKILL right after put(): a new process reads every batch."""
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_writer, args=(str(tmp_path / "o.sqlite"), ready))
    proc.start()
    proc.join(30)
    assert ready.is_set() and proc.exitcode == -signal.SIGKILL
    box = _open(tmp_path / "o.sqlite")
    rows = [r.time for _, b in box.peek(10_000) for r in b.rows]
    assert rows == [float(t) for t in range(300)]


def test_overflow_drops_oldest_counts_and_warns_once(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Beyond max_rows the oldest batches go; the newest stay; one warning per episode."""
    box = _open(tmp_path / "o.sqlite", max_rows=9)
    with caplog.at_level(logging.WARNING):
        for start in range(0, 30, 3):
            box.put(_batch(start), now=1000.0)
    kept = [r.time for _, b in box.peek(100) for r in b.rows]
    assert kept == [float(t) for t in range(21, 30)]
    assert box.dropped_rows == 21
    assert sum("outbox full" in r.message for r in caplog.records) == 1


def test_age_bound_drops_batches_older_than_max_age(tmp_path: Path) -> None:
    """Batches older than max_age are dropped when a new one arrives (the newest always stays)."""
    box = _open(tmp_path / "o.sqlite", max_age=60.0)
    box.put(_batch(0), now=1000.0)
    box.put(_batch(3), now=1030.0)
    box.put(_batch(6), now=1090.0)
    assert [b.rows[0].time for _, b in box.peek(100)] == [3.0, 6.0]
    assert box.dropped_rows == 3


def test_unwritable_state_dir_gives_one_clear_error(tmp_path: Path) -> None:
    """An outbox that cannot be created names its file."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    box = Outbox(blocker / "outbox" / "o.sqlite", "out")
    with pytest.raises(OutboxError, match="cannot open"):
        box.open()


def test_rows_stored_before_the_row_input_rename_are_read_unchanged() -> None:
    """A payload as 0.x wrote it (the Row field was then called ``source``) still decodes.

    The stored form is positional, [time, input, {values}, age], so an outbox left on a
    Pi by the previous version is delivered after an upgrade, row for row.
    """
    from vemonitor.outbox import decode_rows, encode_rows

    stored = '[[1700000000.0,"bmv700",{"V":12.5,"Relay":"OFF"},0.25]]'  # written before it
    (row,) = decode_rows(stored)
    assert (row.time, row.input, dict(row.values), row.age) == (
        1_700_000_000.0, "bmv700", {"V": 12.5, "Relay": "OFF"}, 0.25)
    assert encode_rows([row]) == stored  # and the same bytes are written now
