"""The hand-off: a healthy output's batches skip the outbox; nothing reported stored is lost.

The guarantee (DESIGN.md, "Delivery guarantees"): a row an acknowledging input was told
is stored survives a ``kill -9``. A batch handed over in memory is reported stored only
once the sink accepted it or it is in the outbox.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from vemonitor.clock import ScaledClock, SystemClock
from vemonitor.delivery import MEMORY_BATCHES, RetryPolicy, Sender
from vemonitor.model import Batch, Row
from vemonitor.outbox import Outbox

ROOT = Path(__file__).resolve().parents[2]


class GateSink:
    """Accepts while ``open_`` is set; fails while ``down`` is set; else waits for the gate."""

    def __init__(self) -> None:
        self.open_ = threading.Event()
        self.open_.set()
        self.down = threading.Event()
        self.rows: list[Row] = []
        self.writing = threading.Event()  # set while a write waits at the gate

    def start(self) -> None:
        pass

    def write(self, batch: Batch) -> None:
        if self.down.is_set():
            raise ConnectionError("server unreachable")
        self.writing.set()
        self.open_.wait(30)
        self.writing.clear()
        self.rows.extend(batch.rows)

    def close(self) -> None:
        pass


def _batch(start: int, n: int = 3) -> Batch:
    return Batch("out", tuple(Row(float(t), "n", {"V": t}) for t in range(start, start + n)))


def _sender(tmp_path: Path, sink: GateSink) -> tuple[Sender, Outbox, list[int]]:
    box = Outbox(tmp_path / "o.sqlite", "out")
    box.open()
    sender = Sender("out", sink, box, ScaledClock(SystemClock(), 100.0),
                    RetryPolicy(initial=1.0, cap=2.0, auth=2.0), drain_interval=0.1, seed=1)
    durable: list[int] = []
    sender.on_durable = durable.append
    return sender, box, durable


def _wait(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    assert predicate(), "condition not reached"  # type: ignore[operator]


def _go_direct(sender: Sender) -> None:
    """Start the sender and wait until it found the outbox empty (hand-off allowed)."""
    sender.start()
    _wait(lambda: sender._direct)


def test_a_healthy_sink_gets_every_batch_in_order_without_an_outbox_transaction(
        tmp_path: Path) -> None:
    sink = GateSink()
    sender, box, durable = _sender(tmp_path, sink)
    _go_direct(sender)
    for i in range(20):
        sender.take(_batch(3 * i), 0.0, i)
        _wait(lambda i=i: len(durable) == i + 1)  # reported stored once the sink has it
        assert len(sink.rows) == 3 * (i + 1)
    sender.stop(2.0)
    assert [r.time for r in sink.rows] == [float(t) for t in range(60)]
    assert durable == list(range(20))
    assert box.commits == 0  # not one transaction, hence not one sync, for 20 batches
    assert box.depth()["rows"] == 0


def test_a_failing_sink_sends_the_batch_and_those_behind_it_to_the_outbox_in_order(
        tmp_path: Path) -> None:
    sink = GateSink()
    sender, box, durable = _sender(tmp_path, sink)
    _go_direct(sender)
    sink.down.set()
    for i in range(6):
        sender.take(_batch(3 * i), 0.0, i)
    _wait(lambda: len(durable) == 6)  # all in the outbox
    assert sink.rows == []
    assert box.depth()["rows"] == 18
    sink.down.clear()
    _wait(lambda: len(sink.rows) == 18 and box.depth()["rows"] == 0)
    for i in range(6, 9):  # healthy again: handed over in memory once more
        sender.take(_batch(3 * i), 0.0, i)
    _wait(lambda: len(sink.rows) == 27)
    sender.stop(2.0)
    assert [r.time for r in sink.rows] == [float(t) for t in range(27)]  # once, in order
    assert durable == list(range(9))


def test_a_slow_send_spills_what_waits_and_the_batch_being_written_is_not_sent_twice(
        tmp_path: Path) -> None:
    sink = GateSink()
    sender, box, durable = _sender(tmp_path, sink)
    _go_direct(sender)
    sink.open_.clear()
    sender.take(_batch(0), 0.0, 0)
    _wait(sink.writing.is_set)  # batch 0 is being written, and hangs
    for i in range(1, MEMORY_BATCHES + 2):  # one more than may wait in memory
        sender.take(_batch(3 * i), 0.0, i)
    assert durable == list(range(MEMORY_BATCHES + 2))  # all in the outbox, 0 included
    assert box.depth()["batches"] == MEMORY_BATCHES + 2
    sink.open_.set()
    _wait(lambda: box.depth()["rows"] == 0)
    sender.stop(2.0)
    count = 3 * (MEMORY_BATCHES + 2)
    assert [r.time for r in sink.rows] == [float(t) for t in range(count)]


def test_stop_puts_what_was_not_sent_in_the_outbox(tmp_path: Path) -> None:
    sink = GateSink()
    sender, box, durable = _sender(tmp_path, sink)
    _go_direct(sender)
    sink.open_.clear()
    sender.take(_batch(0), 0.0, 0)
    _wait(sink.writing.is_set)
    sender.take(_batch(3), 0.0, 1)
    sender.stop(0.2)
    assert durable == [0, 1]
    assert box.depth()["rows"] == 6
    sink.open_.set()


CHILD = textwrap.dedent("""
    import sys, threading, time
    from pathlib import Path
    from vemonitor.clock import SystemClock
    from vemonitor.delivery import Sender
    from vemonitor.model import Batch, Row
    from vemonitor.outbox import Outbox

    class Sink:
        # Accepts batches below 10, then hangs (a write in progress when killed).
        def __init__(self):
            self.hang = threading.Event()
        def start(self): pass
        def close(self): pass
        def write(self, batch):
            if batch.rows[0].values["b"] >= 10:
                self.hang.wait()

    box = Outbox(Path(sys.argv[1]), "out")
    box.open()
    sender = Sender("out", Sink(), box, SystemClock())
    def durable(token):
        print(token, flush=True)
    sender.on_durable = durable
    sender.start()
    while not sender._direct:
        time.sleep(0.01)
    for b in range(16):
        sender.take(Batch("out", (Row(float(b), "n", {"b": b}),)), 0.0, b)
        time.sleep(0.05)
    print("done", flush=True)
    time.sleep(60)
""")


def test_kill_9_loses_no_batch_that_was_reported_stored(tmp_path: Path) -> None:
    """Batches 0-9 reach the sink; 10 hangs in its write; 11-15 wait, then spill to the
    outbox. kill -9: every batch reported stored is in the sink or the outbox."""
    path = tmp_path / "o.sqlite"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert child.stdout is not None
        reported: list[int] = []
        for line in child.stdout:
            if line.strip() == "done":
                break
            reported.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    assert reported == list(range(16))  # 0-9 sent; 10-15 spilled (MEMORY_BATCHES exceeded)
    box = Outbox(path, "out")
    box.open()
    kept = [int(r.values["b"]) for _, b in box.peek(1000) for r in b.rows]
    box.close()
    assert kept == list(range(10, 16))  # in the outbox, in order, after the kill


def test_a_restarted_sender_thread_first_puts_what_it_held_in_the_outbox(
        tmp_path: Path) -> None:
    """After a bug restarted the thread (vemonitor.supervise), nothing held in memory is
    left behind: the batch that was being written and those behind it go to the outbox."""
    sink = GateSink()
    sender, box, durable = _sender(tmp_path, sink)
    _go_direct(sender)
    sink.open_.clear()
    sender.take(_batch(0), 0.0, 0)
    _wait(sink.writing.is_set)
    sender.take(_batch(3), 0.0, 1)
    sender._recover_handoff()  # what the restarted thread does first
    assert durable == [0, 1]
    kept = [r.time for _, b in box.peek(1000) for r in b.rows]
    assert kept == [float(t) for t in range(6)]
    sink.open_.set()
    sender.stop(2.0)
