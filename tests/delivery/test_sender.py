"""The sender: in order, backoff without storms, one log line per state change, auth waits."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from vemonitor.clock import ScaledClock, SystemClock
from vemonitor.delivery import RetryPolicy, Sender, SinkAuthError
from vemonitor.errors import SinkRejected
from vemonitor.model import Batch, Row
from vemonitor.outbox import Outbox, OutboxError


class FlakySink:
    """A sink that fails while ``down`` is set and records what it accepted."""

    def __init__(self, error: type[Exception] = ConnectionError) -> None:
        self.down = threading.Event()
        self.error = error
        self.rows: list[Row] = []
        self.attempts: list[float] = []
        self.clock: ScaledClock | None = None

    def start(self) -> None:
        pass

    def write(self, batch: Batch) -> None:
        self.attempts.append(self.clock.now() if self.clock else time.monotonic())
        if self.down.is_set():
            raise self.error("server unreachable")
        self.rows.extend(batch.rows)

    def close(self) -> None:
        pass


def _setup(tmp_path: Path, sink: FlakySink, speed: float = 100.0) -> tuple[Sender, Outbox,
                                                                           ScaledClock]:
    clock = ScaledClock(SystemClock(), speed)
    sink.clock = clock
    box = Outbox(tmp_path / "o.sqlite", "out")
    box.open()
    sender = Sender("out", sink, box, clock, RetryPolicy(initial=1.0, cap=60.0, auth=300.0),
                    drain_rows=50, drain_interval=0.5, seed=1)
    return sender, box, clock


def _put(box: Outbox, start: int, n: int = 5) -> None:
    box.put(Batch("out", tuple(Row(float(t), "n", {"V": t}) for t in range(start, start + n))),
            now=0.0)


def test_outage_keeps_data_and_delivers_everything_once_in_order(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """10 device minutes down: attempts back off to a few per minute; then all rows, once, in order."""
    sink = FlakySink()
    sender, box, clock = _setup(tmp_path, sink, speed=100.0)
    sink.down.set()
    with caplog.at_level(logging.INFO):
        sender.start()
        start = clock.now()
        for i in range(0, 600, 5):  # 600 rows arrive during the outage, 5 per "second"
            _put(box, i)
            sender.notify()
            clock.sleep(5.0)
        outage = clock.now() - start
        attempts_during = len(sink.attempts)
        sink.down.clear()
        deadline = time.monotonic() + 20
        while box.depth()["rows"] and time.monotonic() < deadline:
            time.sleep(0.05)
        sender.stop(2.0)
    assert [r.time for r in sink.rows] == [float(t) for t in range(600)]
    # Backoff doubling to a 60 s cap: about 1 attempt per device minute once capped.
    assert attempts_during <= 6 + outage / 60 * 1.5, (attempts_during, outage)
    messages = [r.message for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("recovered" in m for m in messages) == 1


def test_auth_failure_waits_the_slow_auth_delay(tmp_path: Path) -> None:
    """A refused credential is retried after auth_retry (300 s here), not every few seconds."""
    sink = FlakySink(SinkAuthError)
    sender, box, clock = _setup(tmp_path, sink, speed=200.0)
    sink.down.set()
    _put(box, 0)
    sender.start()
    clock.sleep(900.0)
    sender.stop(0.5)
    assert 2 <= len(sink.attempts) <= 5
    gaps = [b - a for a, b in zip(sink.attempts, sink.attempts[1:])]
    assert all(gap > 200 for gap in gaps), gaps
    assert box.depth()["rows"] == 5


def test_a_permanent_refusal_is_said_once_with_its_fix_and_keeps_the_data(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SinkRejected: one ERROR naming the fix, slow retries (no backoff storm), rows kept."""
    class Refused(SinkRejected):
        def __init__(self, message: str) -> None:
            super().__init__(message, hint="point the output at an empty db")

    sink = FlakySink(Refused)
    sender, box, clock = _setup(tmp_path, sink, speed=200.0)
    sink.down.set()
    _put(box, 0)
    with caplog.at_level(logging.INFO):
        sender.start()
        clock.sleep(900.0)
        assert sender.stats.rejected
        sink.down.clear()  # the user fixed the server side: delivery resumes, no restart
        deadline = time.monotonic() + 20
        while box.depth()["rows"] and time.monotonic() < deadline:
            time.sleep(0.05)
        sender.stop(0.5)
    gaps = [b - a for a, b in zip(sink.attempts, sink.attempts[1:])]
    assert all(gap > 200 for gap in gaps), gaps
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "retrying will not fix" in errors[0]
    assert "fix: point the output at an empty db" in errors[0]
    assert [r.time for r in sink.rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert not sender.stats.rejected


def test_backlog_drains_in_bounded_sends_while_new_data_flows(tmp_path: Path) -> None:
    """A backlog of 40 batches drains in sends of <= drain_rows rows, spaced by drain_interval."""
    sink = FlakySink()
    sender, box, clock = _setup(tmp_path, sink, speed=20.0)
    for i in range(0, 200, 5):
        _put(box, i)
    sender.start()
    deadline = time.monotonic() + 20
    while box.depth()["rows"] and time.monotonic() < deadline:
        time.sleep(0.05)
    sender.stop(1.0)
    assert [r.time for r in sink.rows] == [float(t) for t in range(200)]
    assert len(sink.attempts) == 4  # 200 rows in sends of at most 50
    gaps = [b - a for a, b in zip(sink.attempts, sink.attempts[1:])]
    assert all(gap >= 0.45 for gap in gaps)


def test_stop_during_outage_leaves_data_in_the_outbox(tmp_path: Path) -> None:
    """Stopping while the sink is down returns promptly and keeps the rows for the next run."""
    sink = FlakySink()
    sender, box, _clock = _setup(tmp_path, sink, speed=1.0)
    sink.down.set()
    _put(box, 0)
    sender.start()
    time.sleep(0.3)
    began = time.monotonic()
    sender.stop(5.0)
    assert time.monotonic() - began < 2.0
    assert box.depth()["rows"] == 5


class StuckAckOutbox(Outbox):
    """A real outbox whose removals fail while ``full`` is set (a full disk at ack time)."""

    full = True

    def ack(self, ids: object) -> None:
        if self.full:
            raise OutboxError(f"outbox {self.path}: cannot remove sent batches (disk I/O error)")
        super().ack(ids)  # type: ignore[arg-type]


def test_sent_batches_that_cannot_be_removed_are_not_resent_and_removed_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The sender thread survives a failing removal, goes on with newer batches without
    sending any row twice, says so once, and empties the outbox when the disk recovers."""
    sink = FlakySink()
    clock = ScaledClock(SystemClock(), 100.0)
    box = StuckAckOutbox(tmp_path / "o.sqlite", "out")
    box.open()
    sender = Sender("out", sink, box, clock, drain_rows=50, drain_interval=0.5, seed=1)
    _put(box, 0)
    with caplog.at_level(logging.INFO, logger="vemonitor.delivery"):
        sender.start()
        for start in (5, 10, 15):
            time.sleep(0.1)
            _put(box, start)
            sender.notify()
        deadline = time.monotonic() + 5
        while len(sink.rows) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r.time for r in sink.rows] == [float(t) for t in range(20)]
        assert box.depth()["rows"] == 20  # all sent, none removable yet
        assert sender.stats.unremoved == 4
        box.full = False
        _put(box, 20)
        sender.notify()
        deadline = time.monotonic() + 5
        while box.depth()["rows"] and time.monotonic() < deadline:
            time.sleep(0.02)
        sender.stop(2.0)
    assert [r.time for r in sink.rows] == [float(t) for t in range(25)]
    assert box.depth()["rows"] == 0
    assert sender.stats.unremoved == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot remove sent batches" in errors[0]
    box.close()
