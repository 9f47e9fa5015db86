"""One reader thread per serial port: bytes -> decoder -> snapshots, surviving unplugs.

How it reads: it waits in ``epoll`` until the port has data (an idle port costs
no CPU), then reads everything waiting in one ``read`` (up to ``READ_CHUNK``; more
waiting wakes it again at once), so intake is never capped
and data never goes stale in the OS buffer. The buffer is drained at every
(re)open, because what sat there was received while nobody was listening.

How it survives: an I/O error or an unplug closes the port, marks the device
unavailable and retries opening the same path with capped exponential backoff
(a /dev/serial/by-id link or a simulator symlink may come back). No valid block
for ``stale_after`` seconds also makes the device unavailable. Each state change
is logged once. The thread is supervised (:mod:`vemonitor.supervise`): an
unexpected exception is logged once, counted, and the reader restarts.

HEX (issue 22): each connection has a :class:`vemonitor.hex_session.HexSession`. It
writes only what was asked with :meth:`SerialReader.request_hex`, in the gap after a
block, so a reader nobody asks for HEX never writes a byte; ``:A`` lines the device
pushes are decoded either way and handed to HEX subscribers with the outcomes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import serial

from vemonitor import hex_session, supervise
from vemonitor.clock import Clock, SystemClock
from vemonitor.fieldpolicy import FieldDrops
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.events import Block, HexMessage, Rejected
from vemonitor.vedirect.fields import decode_value
from vemonitor.vedirect.hex import Reading
from vemonitor.vedirect.snapshot import Snapshot, SnapshotAssembler

log = logging.getLogger(__name__)

SERIAL_SETTINGS: dict[str, Any] = {
    "baudrate": 19200, "bytesize": serial.EIGHTBITS, "parity": serial.PARITY_NONE,
    "stopbits": serial.STOPBITS_ONE, "xonxoff": False, "rtscts": False, "dsrdtr": False,
}
READ_CHUNK = 4096
POLL_SECONDS = 1.0  # how often a silent port is checked for staleness and stop requests (a
# flowing port wakes the reader itself; fewer idle wake-ups cost less CPU on a Pi)
# A block in two reads, not seven (issue 24, on the wire a user has). At 19200 baud 8N1 a
# block of ~150 to 200 B takes 80 to 105 ms on the line (PROTOCOL.md), and the VE.Direct
# USB cable (an FTDI bridge) hands it on in reads of ~30 B, one per 16 ms latency period
# (hw_sim/wire.py; victronenergy/venus#972's log of a BMV-712 shows its lines 16-17 ms
# apart): 5 to 7 wake-ups a block, each costing more than the block's decoding. So when a
# read ends inside a TEXT block, the reader lets the rest arrive (see settle_time) before
# it looks again. A bare pty or a whole block in one read never waits.
LINE_BYTES_PER_S = 1920.0  # 19200 baud, 10 bits a byte
BRIDGE_LATENCY_S = 0.016  # FTDI's default latency timer: the last chunk's extra delay
SETTLE_MAX_S = 0.15  # a block is at most ~200 B (105 ms on the line): never wait longer


@dataclass
class DeviceStats:
    """What one port's reader has seen (read by the summary and metrics)."""

    bytes: int = 0
    frames_ok: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    hex_ok: int = 0
    hex_invalid: int = 0
    snapshots: int = 0
    reconnects: int = 0
    reads: int = 0  # reads that returned bytes (wake-ups with data)
    settles: int = 0  # waits for the rest of a block (settle_time)
    last_frame_at: float | None = None
    # Fields the decoder left out of valid blocks (out of range), per label.
    fields: FieldDrops = field(default_factory=lambda: FieldDrops("device"))

    def count(self, events: list[Block | HexMessage | Rejected]) -> bool:
        """Add decoder events to the counters; return True when any was not a HEX line."""
        text = False
        for event in events:
            if type(event) is HexMessage:
                if event.valid:
                    self.hex_ok += 1
                else:
                    self.hex_invalid += 1
                continue
            text = True
            if isinstance(event, Rejected):
                self.rejected[event.reason] += 1
            else:
                self.frames_ok += 1
        return text


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff for reopening a port."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Return the wait before reopen attempt number ``attempt`` (0-based)."""
        return float(min(self.cap, self.first * self.factor ** attempt))


SnapshotCallback = Callable[[str, Snapshot], None]
HexCallback = Callable[[str, "hex_session.Outcome | Reading"], None]


class SerialReader:
    """Read one port in a thread and publish snapshots to subscribers."""

    def __init__(self, name: str, port: str, *, clock: Clock | None = None,
                 stale_after: float = 3.0, backoff: Backoff | None = None,
                 open_port: Callable[[str], serial.Serial] | None = None,
                 initial: Snapshot | None = None) -> None:
        self.name = name
        self.port = port
        self.clock = clock or SystemClock()
        self.stale_after = stale_after
        self.backoff = backoff or Backoff()
        self.stats = DeviceStats(fields=FieldDrops(f"device {name}"))
        # The newest complete snapshot; a scan's snapshot of this port may seed it,
        # so rows can start before the reader's own first full cycle.
        self.latest: Snapshot | None = initial
        self._open_port = open_port or _open_serial
        self._subscribers: list[SnapshotCallback] = []
        self._stop = threading.Event()
        # close() writes a byte here so a select() waiting on a silent port returns at once.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # a full pipe already wakes the thread
        self._wake_lock = threading.Lock()  # no write to a wake fd once close() closed it
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None  # the reader thread's ident, once it runs
        self._lock = threading.Lock()
        self._available = False
        self._last_valid = 0.0  # monotonic time of the last valid block
        self._last_block: float | None = None  # the same, None until a block arrived
        # HEX: requests from any thread, handled by the reader thread (one session per open).
        self._hex_requests: queue.SimpleQueue[hex_session.Request] = queue.SimpleQueue()
        self._hex_cancels: queue.SimpleQueue[hex_session.Request] = queue.SimpleQueue()
        self._hex_waiting: queue.SimpleQueue[hex_session.Request] = queue.SimpleQueue()
        self._hex_subscribers: list[HexCallback] = []
        self.hex: hex_session.HexSession | None = None

    # ------------------------------------------------------------------ public API
    def subscribe(self, callback: SnapshotCallback) -> None:
        """Call ``callback(name, snapshot)`` for every new snapshot."""
        self._subscribers.append(callback)

    def subscribe_hex(self, callback: HexCallback) -> None:
        """Call ``callback(name, outcome_or_reading)`` for HEX outcomes and async readings."""
        self._hex_subscribers.append(callback)

    def request_hex(self, request: hex_session.Request, *, after_block: bool = False) -> None:
        """Ask for one HEX request (thread-safe); its outcome goes to HEX subscribers.

        ``after_block``: hold it until the next TEXT block has arrived, and send it in
        that block's gap (a poll asked at the end of a two-block cycle goes out in the
        middle of the next one, away from the row the engine makes at the cycle's end).

        The reader thread is woken, so a request made right after a reply goes out in
        that reply's gap, not a block later (a control's transaction is several requests).
        A request made on the reader thread itself (a poll asked from a snapshot callback,
        a day asked from a reply) needs no wake-up: the thread takes its queue before it
        writes (``_hex_step``), so it would only poll once more for nothing.
        """
        if after_block:
            self._hex_waiting.put(request)
            return  # the reader takes it with the next block: no wake-up now
        self._hex_requests.put(request)
        if threading.get_ident() == self._thread_id:
            return
        with self._wake_lock:
            if not self._stop.is_set():
                with contextlib.suppress(OSError):  # full: the thread wakes anyway
                    os.write(self._wake_w, b"r")

    def cancel_hex(self, request: hex_session.Request) -> None:
        """Drop ``request`` if it was not sent yet (thread-safe; see HexSession.cancel)."""
        self._hex_cancels.put(request)

    def block_age(self) -> float | None:
        """Return the seconds since the last valid TEXT block (None: none yet)."""
        last = self._last_block
        return None if last is None else time.monotonic() - last

    @property
    def available(self) -> bool:
        """Return True while valid blocks keep arriving."""
        return self._available

    def start(self) -> None:
        """Start the reader thread."""
        target = supervise.supervised(f"serial-{self.name}", self._run, self._stop,
                                      lambda: f"port {self.port}")
        self._thread = threading.Thread(target=target, name=f"serial-{self.name}", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and close the port (idempotent)."""
        with self._wake_lock:
            if self._stop.is_set():
                return
            self._stop.set()
            with contextlib.suppress(BlockingIOError):  # full: the thread wakes anyway
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            for fd in (self._wake_r, self._wake_w):  # the thread no longer selects on them
                os.close(fd)

    # ------------------------------------------------------------------ internals
    def _run(self) -> None:
        """Open, read until an error, back off, repeat until stopped."""
        self._thread_id = threading.get_ident()
        attempt = 0
        opened_before = False
        while not self._stop.is_set():
            try:
                port = self._open_port(self.port)
            except (OSError, serial.SerialException) as err:
                if attempt == 0 and not opened_before:  # a lost port was logged already
                    log.warning("%s: cannot open %s (%s); retrying", self.name, self.port,
                                _reason(err))
                self._set_available(False, "port closed", quiet=True)
                self._stop.wait(self.backoff.delay(attempt))
                attempt += 1
                continue
            if opened_before:
                self.stats.reconnects += 1
            opened_before = True
            log.info("%s: reading %s", self.name, self.port)
            attempt = 0
            try:
                self._read_port(port)
            except (OSError, serial.SerialException) as err:
                # One line for the whole episode: lost, unavailable, reopening.
                log.warning("%s: %s lost (%s); unavailable, reopening with backoff", self.name,
                            self.port, _reason(err))
                self._set_available(False, "port lost", quiet=True)
            finally:
                _close_quietly(port)
            # A lost port usually needs a moment to come back (USB re-enumeration).
            self._stop.wait(self.backoff.first)

    def _read_port(self, port: serial.Serial) -> None:
        """Read chunks until stopped or an I/O error is raised."""
        decoder = Decoder()
        assembler = SnapshotAssembler()
        self.hex = session = hex_session.HexSession()  # a reopened port may be another device
        port.reset_input_buffer()
        fd = port.fileno()
        wake_r = self._wake_r
        waiter, timeout = _waiter(fd, wake_r)
        sizes = [0, 0]  # the byte sizes of the last two valid blocks (a BMV alternates two)
        try:
            self._last_valid = time.monotonic()
            while not self._stop.is_set():
                ready = waiter.poll(timeout)
                mono = time.monotonic()
                if self._stop.is_set():
                    return
                data = b""
                for ready_fd, _mask in ready:
                    if ready_fd == fd:
                        data = _read_available(fd)
                        self.stats.bytes += len(data)
                        self.stats.reads += 1
                    else:  # a HEX request from another thread: send it while the gap is open
                        os.read(wake_r, 512)
                events = decoder.feed(data, now=mono)
                if events and self.stats.count(events):  # TEXT: a block, or a rejected one
                    self._release_waiting()
                    self._handle(events, assembler, mono)
                self._hex_step(session, port, fd, events, mono, idle=decoder.pending == 0)
                if mono - self._last_valid > self.stale_after:
                    self._set_available(False, f"no valid block for {self.stale_after:g} s")
                if data:
                    self._settle(events, sizes, decoder.text_pending)
        finally:
            if hasattr(waiter, "close"):
                waiter.close()

    def _settle(self, events: list[Block | HexMessage | Rejected], sizes: list[int],
                pending: int) -> None:
        """Learn the blocks' sizes; inside a block, wait for its rest (``settle_time``)."""
        for event in events:
            if type(event) is Block:
                sizes[0], sizes[1] = sizes[1], event.end - event.start
        wait = settle_time(pending, max(sizes))
        if wait:
            self.stats.settles += 1
            self._stop.wait(wait)

    def _handle(self, events: list[Block | HexMessage | Rejected], assembler: SnapshotAssembler,
                mono: float) -> None:
        """Assemble snapshots from TEXT events (already counted) and publish them."""
        for event in events:
            if isinstance(event, Block) and event.out_of_range:
                for label, raw in event.out_of_range:
                    self.stats.fields.add("out_of_range", label, _shown(label, raw), mono)
        if log.isEnabledFor(logging.DEBUG):
            for event in events:
                if isinstance(event, Rejected):
                    log.debug("%s: rejected block (%s) at bytes %d-%d %s", self.name,
                              event.reason, event.start, event.end, event.detail)
        if any(isinstance(event, Block) for event in events):
            self._last_valid = self._last_block = mono
            self.stats.last_frame_at = self.clock.now()
            self._set_available(True, "")
        for snapshot in assembler.feed(events, now=self.clock.now()):
            self.stats.snapshots += 1
            # Rows come from complete cycles only: an incomplete one lacks fields.
            if snapshot.complete:
                self.latest = snapshot
            for callback in self._subscribers:
                callback(self.name, snapshot)

    def _hex_step(self, session: hex_session.HexSession, port: serial.Serial, fd: int,
                  events: list[Block | HexMessage | Rejected], mono: float, idle: bool) -> None:
        """Feed the HEX session, write its request in a block gap, publish what it settled.

        What settled is published before the next request is written: a subscriber
        may ask for more while it is told (the history total asks for its days, a
        control reads back what it set), and those requests, queued on this thread
        without a wake-up (``request_hex``), are taken and offered this same gap. The
        write comes last: on a pty it wakes a kernel worker that may preempt this
        thread there, and nothing of the step is left to run after it.
        """
        self._take_requests(session, mono)
        session.on_events(events, mono, idle=idle)
        for _round in range(3):
            if session.settled:
                settled: list[hex_session.Outcome | Reading] = [*session.take_outcomes(),
                                                                 *session.take_async()]
                for item in settled:
                    for callback in self._hex_subscribers:
                        callback(self.name, item)
                self._take_requests(session, mono)
            line = session.outgoing(mono)
            if line is not None:
                _write_line(port, fd, line)
            if not session.settled:  # requests skipped or timed out: publish them too
                return

    def _release_waiting(self) -> None:
        """A block arrived: the requests that waited for one may go out in its gap."""
        while not self._hex_waiting.empty():
            self._hex_requests.put(self._hex_waiting.get_nowait())

    def _take_requests(self, session: hex_session.HexSession, mono: float) -> None:
        """Hand the session what other threads (or callbacks) asked for or gave up."""
        while not self._hex_requests.empty():
            session.submit(self._hex_requests.get_nowait(), mono)
        while not self._hex_cancels.empty():
            session.cancel(self._hex_cancels.get_nowait())

    def _set_available(self, available: bool, why: str, quiet: bool = False) -> None:
        """Record availability and log each change once (``quiet``: already logged)."""
        with self._lock:
            if available == self._available:
                return
            self._available = available
        if quiet:
            return
        if available:
            log.info("%s: available", self.name)
        else:
            log.warning("%s: unavailable (%s)", self.name, why)


def _shown(label: str, raw: str) -> str:
    """Return a wire value as a log line shows it: in user units, with the wire text."""
    value = decode_value(label, raw)
    return raw if str(value) == raw else f"{value} (wire {raw})"


def _waiter(*fds: int) -> tuple[Any, float]:
    """Return a readiness waiter on ``fds`` and its timeout for ``POLL_SECONDS``.

    One epoll set for the connection where the OS has it (Linux: the Pi, Home Assistant
    OS): each wake-up is one ``epoll_wait``, where ``poll`` registers every descriptor
    again at each call, and a HEX reply is a wake-up of its own (four a second when four
    registers are polled). Elsewhere ``poll``, whose timeout is in milliseconds.
    """
    if hasattr(select, "epoll"):
        waiter: Any = select.epoll(len(fds))
        for fd in fds:
            waiter.register(fd, select.EPOLLIN)
        return waiter, POLL_SECONDS
    waiter = select.poll()
    for fd in fds:
        waiter.register(fd, select.POLLIN)
    return waiter, POLL_SECONDS * 1000


def settle_time(pending: int, expected: int) -> float:
    """Return how long to let the rest of a TEXT block arrive before reading again.

    ``pending``: bytes of the unfinished block already read; ``expected``: the longest
    of the device's last blocks (0 before the first). The rest's line time plus one
    latency period, at most SETTLE_MAX_S; 0 when no block is open or the block is
    already as long as expected (then the next read may end it: wait for data as usual).
    """
    remaining = expected - pending
    if pending <= 0 or remaining <= 0:
        return 0.0
    return min(remaining / LINE_BYTES_PER_S + BRIDGE_LATENCY_S, SETTLE_MAX_S)


def _read_available(fd: int) -> bytes:
    """Return what the port holds (poll() said it is readable), in one ``read``.

    Straight on the descriptor pyserial opened non-blocking, not through
    ``Serial.read``: that costs an ioctl (``in_waiting``), a ``select`` and a timeout
    object per wake-up, and a HEX reply is one wake-up of ~19 bytes (docs/hex.md
    "Numbers"). End of file (the pty or USB adapter went away) raises like pyserial.
    """
    try:
        data = os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return b""  # a spurious wake-up: nothing to read after all
    if not data:
        raise serial.SerialException("device disconnected")
    return data


def _write_line(port: serial.Serial, fd: int, line: bytes) -> None:
    """Write one HEX request line: one ``write`` on the descriptor, pyserial for the rest.

    A request is 11 to ~20 bytes and the output buffer is empty between requests (one
    at a time), so one ``write`` takes it all; only if the driver takes part of it
    (a full buffer) does pyserial's blocking write wait for room and send the rest.
    """
    try:
        done = os.write(fd, line)
    except BlockingIOError:
        done = 0
    if done < len(line):
        port.write(line[done:])


def _open_serial(path: str) -> serial.Serial:
    """Open ``path`` at 19200 8N1 with no flow control."""
    return serial.Serial(path, timeout=0, exclusive=True, **SERIAL_SETTINGS)


def _close_quietly(port: serial.Serial) -> None:
    """Close a port that may already be broken."""
    with contextlib.suppress(OSError, serial.SerialException):
        port.close()


def _reason(err: BaseException) -> str:
    """Return a short reason for an I/O error."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__
