"""Issue 14 items 1 and 6: one bad batch or one bad outbox file never stops an output."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.delivery.test_sender import FlakySink
from vemonitor import supervise
from vemonitor.clock import ScaledClock, SystemClock
from vemonitor.delivery import RetryPolicy, Sender
from vemonitor.errors import BatchRejected
from vemonitor.model import Batch, Row
from vemonitor.outbox import Outbox


def _batch(start: int, n: int = 3) -> Batch:
    return Batch("rr", tuple(Row(float(t), "n", {"V": t}) for t in range(start, start + n)))


def _sender(box: Outbox, sink: FlakySink) -> Sender:
    clock = ScaledClock(SystemClock(), 100.0)
    return Sender("rr", sink, box, clock, RetryPolicy(initial=1.0, cap=10.0, auth=30.0),
                  drain_rows=1000, drain_interval=0.1, seed=1)


def _wait(predicate: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("payload", ["{x]", '[[1, "n"]]', '{"a": 1}', "[" * 100_000])
def test_undecodable_batch_is_dead_lettered_and_delivery_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, payload: str) -> None:
    """Item 1: 6 good batches, one that does not decode, 3 more: 9 delivered, 1 dead-lettered
    (kept with its reason), one ERROR line naming output, batch and reason; the thread lives."""
    box = Outbox(tmp_path / "rr.sqlite", "rr")
    box.open()
    for i in range(6):
        box.put(_batch(i * 3), now=0.0)
    with sqlite3.connect(tmp_path / "rr.sqlite") as db:
        db.execute("INSERT INTO batches (created, rows, bytes, payload) VALUES (0, 3, 4, ?)",
                   (payload,))
    for i in range(6, 9):
        box.put(_batch(i * 3), now=0.0)
    sink = FlakySink()
    sender = _sender(box, sink)
    with caplog.at_level(logging.ERROR):
        sender.start()
        _wait(lambda: len(sink.rows) == 27)
        sender.stop(2.0)
    assert [r.time for r in sink.rows] == [float(t) for t in range(27)]
    assert box.depth()["batches"] == 0
    assert box.dead_depth() == {"batches": 1, "rows": 3}
    assert box.dead_batches == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "output rr" in errors[0] and "batch 7" in errors[0] \
        and "undecodable" in errors[0], errors
    with sqlite3.connect(tmp_path / "rr.sqlite") as db:
        kept = db.execute("SELECT batch_id, payload, reason FROM dead_letters").fetchall()
    assert kept[0][:2] == (7, payload)
    box.close()


class PickySink(FlakySink):
    """Refuses any batch holding the row at time 7 (a content refusal: BatchRejected)."""

    def write(self, batch: Batch) -> None:
        if any(r.time == 7.0 for r in batch.rows):
            raise BatchRejected("value out of range for field V", hint="check the row")
        super().write(batch)


def test_batch_rejected_by_sink_dead_letters_only_that_batch(tmp_path: Path) -> None:
    """Item 1: a merged send refused by content is split; only the guilty batch is set aside."""
    box = Outbox(tmp_path / "rr.sqlite", "rr")
    box.open()
    for i in range(5):
        box.put(_batch(i * 3), now=0.0)  # batch 3 holds times 6, 7, 8
    sink = PickySink()
    sender = _sender(box, sink)
    sender.start()
    _wait(lambda: box.depth()["batches"] == 0 and len(sink.rows) == 12)
    sender.stop(2.0)
    assert [r.time for r in sink.rows] == [0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14]
    assert box.dead_depth() == {"batches": 1, "rows": 3}
    box.close()


def test_a_crashing_loop_is_restarted_logged_once_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    """Item 1: an unexpected exception in a supervised thread restarts it (backoff), is
    logged once per kind and counted; the thread never silently dies."""
    calls: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        calls.append(1)
        if len(calls) < 4:
            raise KeyError("boom")
        stop.wait()

    supervise.FIRST_BACKOFF, old = 0.01, supervise.FIRST_BACKOFF
    try:
        with caplog.at_level(logging.ERROR):
            thread = threading.Thread(target=supervise.supervised("t-test", loop, stop,
                                                                  lambda: "ctx"))
            thread.start()
            _wait(lambda: len(calls) == 4)
            assert thread.is_alive()
            stop.set()
            thread.join(5)
    finally:
        supervise.FIRST_BACKOFF = old
    assert supervise.restarts()["t-test"] == 3
    lines = [r.getMessage() for r in caplog.records if "t-test" in r.getMessage()]
    assert len(lines) == 1 and "ctx" in lines[0] and "KeyError" in lines[0]


def _moved(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".broken-*"))


@pytest.mark.parametrize("damage", ["garbage", "empty", "directory", "truncated"])
def test_unusable_outbox_is_moved_aside_and_a_new_one_started(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    """Item 6: a corrupt, empty, truncated or directory outbox: moved aside (never deleted),
    one ERROR line, a new outbox works."""
    path = tmp_path / "outbox" / "rr.sqlite"
    good = Outbox(path, "rr")
    good.open()
    for i in range(400):
        good.put(_batch(i * 3, 20), now=0.0)
    good.close()
    if damage == "garbage":
        path.write_bytes(b"this is not sqlite" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "directory":
        path.unlink()
        path.mkdir()
        (path / "x").write_text("kept")
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    box = Outbox(path, "rr")
    with caplog.at_level(logging.ERROR):
        box.open()
        box.put(_batch(0), now=0.0)
    assert box.depth()["batches"] == 1
    assert len(_moved(path)) == 1 and box.moved_aside == _moved(path)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "moved aside" in errors[0], errors
    box.close()


def test_damaged_page_moves_aside_and_new_batches_are_kept(tmp_path: Path) -> None:
    """Item 6: a damaged page (valid header): found at open, moved aside, new batches kept
    (before, every new batch was lost for ever)."""
    path = tmp_path / "rr.sqlite"
    box = Outbox(path, "rr")
    box.open()
    for i in range(300):
        box.put(_batch(i * 3, 20), now=0.0)
    box.close()
    with open(path, "r+b") as f:  # overwrite b-tree pages, keep the header
        f.seek(4096)
        f.write(b"\xff" * 4096 * 20)
    box = Outbox(path, "rr")
    box.open()
    box.put(_batch(5000), now=1.0)
    assert len(_moved(path)) == 1
    assert [r.time for _, b in box.peek(100) for r in b.rows] == [5000.0, 5001.0, 5002.0]
    box.close()


class BuggyOutbox(Outbox):
    """An outbox whose first read hits a bug (not an OutboxError)."""

    failures = 1

    def peek(self, max_rows: int, after: int = 0) -> list[tuple[int, Batch]]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug nobody foresaw")
        return super().peek(max_rows, after)


def test_sender_thread_survives_a_bug_and_delivers(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Item 1: an unexpected exception in the sender (here in reading the outbox) is logged
    once, counted, and the sender restarts and delivers (before: the thread died silently)."""
    box = BuggyOutbox(tmp_path / "rr.sqlite", "rr")
    box.open()
    box.put(_batch(0), now=0.0)
    sink = FlakySink()
    sender = _sender(box, sink)
    before = supervise.restarts().get("sender-rr", 0)
    with caplog.at_level(logging.ERROR):
        sender.start()
        _wait(lambda: len(sink.rows) == 3)
        sender.stop(2.0)
    assert supervise.restarts()["sender-rr"] == before + 1
    crashed = [m for m in caplog.messages if "thread sender-rr crashed" in m]
    assert len(crashed) == 1 and "RuntimeError" in crashed[0] and "output rr" in crashed[0]
    box.close()
