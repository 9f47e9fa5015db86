"""Deliver an output's batches from its durable outbox to its sink, never hammering it.

One sender thread per output:

* takes the oldest batches (several at once while a backlog drains, up to
  ``drain_rows`` rows per send, at most one send per ``drain_interval`` seconds),
  sends them as one batch, and removes them from the outbox only once the sink
  accepted them; sends are in order;
* on a failure keeps everything, logs ONE line when the sink goes down and one
  when it recovers, and waits with exponential backoff and jitter
  (``retry_initial`` doubling up to ``retry_max``); an authentication failure
  (:class:`~vemonitor.errors.SinkAuthFailed`) waits ``auth_retry`` instead, and so
  does a :class:`~vemonitor.errors.SinkRejected` (a refusal retrying will not fix:
  said once as such, with its fix, data kept): whatever the failure, there is no
  request storm. The kind comes from the error's class (``vemonitor.errors``);
* connects the sink lazily, so a server down at start-up is just an outage;
* a batch that can never be accepted (its payload does not decode, or the sink
  raises :class:`~vemonitor.errors.BatchRejected`) goes to the outbox's
  dead-letter table with one ERROR line, and delivery goes on with the next
  one. When a merged send is refused that way, the batches behind it are sent
  one by one, so only the guilty one is set aside;
* an outbox that cannot be read is said once and retried with backoff; the
  thread itself is supervised (:mod:`vemonitor.supervise`): a bug restarts it,
  never kills it;
* when sent batches cannot be removed from the outbox (disk full, read-only
  state directory), keeps sending what follows them and retries the removal
  before every send; one error line says so. Until the removal succeeds a
  restart would send those batches again (sinks key rows by time, so a
  duplicate overwrites itself) - never lose them.

A healthy output's batches never touch the disk (the hand-off, see :meth:`Sender.take`):
while the sink accepts and the outbox is empty, the engine hands each new batch to the
sender in memory and the sender writes it at once; only a batch the sink did not accept
(a failure, a refusal, a stop, or more than ``MEMORY_BATCHES`` waiting behind a slow
send) goes to the outbox, in order, with everything queued behind it, in one
transaction. Until the sink accepted it or it is in the outbox, such a batch is like the
rows still gathering in the cache: a ``kill -9`` or a power cut loses it, and for the
same reason nothing was promised for it: an acknowledging input is told its rows are
stored only once they are in the sink or in the outbox (the ``on_durable`` token).
See docs/performance.md ("The outbox's syncs") for the numbers and the reasoning.

Waits use the engine's clock, so an accelerated run sees the same number of
attempts per (device) minute as a real one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vemonitor import supervise
from vemonitor.api import Sink
from vemonitor.clock import Clock
from vemonitor.errors import (
    BatchRejected,
    SinkAuthFailed,
    SinkError,
    is_auth_failure,
    is_permanent,
)
from vemonitor.model import Batch
from vemonitor.outbox import MemoryOutbox, Outbox, OutboxError

log = logging.getLogger(__name__)

# Batches handed over in memory that may wait behind a send in progress; one more and
# they all go to the outbox (a slow sink must not keep minutes of rows in memory only).
MEMORY_BATCHES = 2
# Real seconds between outbox checks when nothing notifies. Every new batch notifies and
# the wake flag is cleared before each look, so this is only a safety net: at 5 s it was
# half the idle sender's wake-ups on the sample (issue 24).
IDLE_WAIT = 60.0


SinkAuthError = SinkAuthFailed  # the name third-party sinks of 0.1 raise


def is_auth_error(err: BaseException) -> bool:
    """Return True for failures that wait the slow pace (credentials, permanent refusals)."""
    return is_auth_failure(err) or is_permanent(err)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; a slower fixed wait after auth failures."""

    initial: float = 1.0
    cap: float = 300.0
    auth: float = 900.0
    jitter: float = 0.25

    def delay(self, attempt: int, auth: bool, rng: random.Random) -> float:
        """Return the wait before retry number ``attempt`` (0-based)."""
        base = self.auth if auth else min(self.cap, self.initial * 2 ** min(attempt, 30))
        return base * (1 + self.jitter * (2 * rng.random() - 1))


@dataclass
class DeliveryStats:
    """What an output's sender did."""

    batches: int = 0
    rows: int = 0
    points: int = 0
    errors: int = 0
    attempts: int = 0
    outages: int = 0
    write_seconds: float = 0.0  # total time sinks took to accept batches
    unremoved: int = 0  # sent batches the outbox could not remove yet (disk full)
    rejected: bool = False  # the sink refuses the data for a reason retrying will not fix
    outbox_errors: int = 0  # times the outbox could not be read
    last_error: str = ""


class Sender:
    """Moves batches from an outbox to a sink (see the module doc)."""

    def __init__(self, name: str, sink: Sink, outbox: Outbox | MemoryOutbox, clock: Clock,
                 policy: RetryPolicy | None = None, drain_rows: int = 1000,
                 drain_interval: float = 1.0, seed: int | None = None) -> None:
        self.name = name
        self.sink = sink
        self.outbox = outbox
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.drain_rows = drain_rows
        self.drain_interval = drain_interval
        self.stats = DeliveryStats()
        self._rng = random.Random(seed)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._connected = False
        self._down_since: float | None = None
        self._attempt = 0
        self._auth = False
        self._sent_upto = 0  # id of the newest batch the sink accepted
        self._unremoved: list[int] = []  # accepted, but the outbox could not remove them yet
        self._single_until = 0  # send batches one by one up to this id (a merged send was refused)
        self._outbox_down = False
        # The hand-off (see the module doc), all under _handoff:
        self._handoff = threading.Lock()
        self._direct = False  # the engine may hand batches over in memory
        self._memory: deque[tuple[Batch, Any]] = deque()  # handed over, not sent yet
        self._inflight: tuple[Batch, Any] | None = None  # taken from _memory, being written
        self._inflight_id: int | None = None  # its outbox id once it was spilled there
        self.on_durable: Callable[[Any], None] = lambda token: None
        self._thread = threading.Thread(
            target=supervise.supervised(f"sender-{name}", self._run, self._stop,
                                        lambda: f"output {name}, after batch {self._sent_upto}"),
            name=f"sender-{name}", daemon=True)

    def start(self) -> None:
        """Start the sender thread (batches left by a previous run go first)."""
        self._thread.start()

    def notify(self) -> None:
        """Tell the sender a new batch is in the outbox."""
        self._wake.set()

    def take(self, batch: Batch, now: float, token: Any = None) -> None:
        """Take a new batch: in memory while the output is healthy, else into the outbox.

        ``on_durable(token)`` is called, in batch order, once the batch is in the sink or
        in the outbox. Raises OutboxError when it should go to the outbox and cannot
        (the batch is then not taken).
        """
        with self._handoff:
            if self._direct and len(self._memory) < MEMORY_BATCHES:
                self._memory.append((batch, token))
            elif self._direct:  # a slow send: everything waiting goes to the outbox
                self._spill_locked([(batch, token)], now)
            else:
                self.outbox.put(batch, now)
                self.on_durable(token)
        self._wake.set()

    def mark(self, token: Any) -> None:
        """Call ``on_durable(token)`` unless batches handed over are still held in memory.

        (Their own tokens, called once they are sent or in the outbox, come later.)
        """
        with self._handoff:
            if not self._memory and (self._inflight is None or self._inflight_id is not None):
                self.on_durable(token)

    def stop(self, timeout: float) -> None:
        """Send what is waiting for up to ``timeout`` s, then stop; the rest stays on disk."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout + 1.0)
        with self._handoff:  # what was not sent stays on disk for the next run
            self._direct = False
            if self._memory or (self._inflight is not None and self._inflight_id is None):
                try:
                    self._spill_locked([], self.clock.now())
                except OutboxError as err:
                    log.error("output %s: %s; %d batches not sent are lost", self.name, err,
                              len(self._memory))

    @property
    def down(self) -> bool:
        """Return True while the sink is failing."""
        return self._down_since is not None

    # ------------------------------------------------------------------ internals
    def _run(self) -> None:
        self._recover_handoff()
        # Connect at once so problems (a wrong password, names the server would drop) show
        # at start-up; a sink that is down is just an outage, retried when data waits.
        try:
            self.sink.start()
            self._connected = True
        except Exception as err:  # any sink failure here is an outage like a failed write
            self._failed(err)
        while True:
            stopping = self._stop.is_set()
            if stopping and time.monotonic() > self._deadline:
                return
            self._wake.clear()  # before looking: a batch handed over after the look wakes us
            self._remove_sent()
            if self._send_memory():
                continue
            items = self._peek_or_go_direct()
            if items is None:
                if stopping:
                    return
                self.clock.sleep(self.policy.delay(min(self.stats.outbox_errors, 8), False,
                                                   self._rng), self._stop)
                continue
            if not items:
                if stopping:
                    return
                self._wake.wait(IDLE_WAIT)
                continue
            if not self._send(items):
                if stopping:
                    return  # keep the rest on disk for the next run
                self.clock.sleep(self.policy.delay(self._attempt - 1, self._auth, self._rng),
                                 self._stop)
                continue
            if len(items) > 1 or self._peek():
                # A backlog drains at a bounded rate while new data keeps arriving.
                self.clock.sleep(self.drain_interval, self._stop)

    def _recover_handoff(self) -> None:
        """After a restart of this thread (a bug, see vemonitor.supervise): what was held
        in memory, the batch that was being written included, goes to the outbox first."""
        with self._handoff:
            if self._memory or (self._inflight is not None and self._inflight_id is None):
                try:
                    self._spill_locked([], self.clock.now())
                except OutboxError as err:
                    log.error("output %s: %s; %d batches not sent are lost", self.name, err,
                              len(self._memory) + 1)
            self._inflight = self._inflight_id = None
            self._direct = False

    def _peek_or_go_direct(self) -> list[tuple[int, Batch]] | None:
        """Return the next batches of the outbox; when there are none and the sink is
        healthy, let the engine hand batches over in memory from now on."""
        with self._handoff:  # no batch may enter the outbox between the look and the switch
            items = self._peek()
            # A batch put into the outbox by someone else (Outbox.put, then notify) ends
            # the hand-off until the outbox is empty again.
            self._direct = items == [] and not self._unremoved and self._connected \
                and not self.down and not self._stop.is_set()
            return items

    def _send_memory(self) -> bool:
        """Write the oldest batch handed over in memory; return False when there is none.

        Not accepted: it and every batch behind it go to the outbox (in order), and the
        outbox path takes over (backoff, dead letters).
        """
        with self._handoff:
            if not self._memory:
                return False
            self._inflight = self._memory.popleft()
            self._inflight_id = None
        batch, token = self._inflight
        self.stats.attempts += 1
        error: BaseException | None = None
        try:
            began = time.monotonic()
            self.sink.write(batch)
            self.stats.write_seconds += time.monotonic() - began
        except Exception as err:  # kept on disk; the outbox path decides what it was
            error = err
        with self._handoff:
            spilled, self._inflight, self._inflight_id = self._inflight_id, None, None
            if error is None and spilled is None:
                self.on_durable(token)
            elif error is None and spilled is not None:  # spilled while written: remove it
                self._sent_upto = max(self._sent_upto, spilled)
                self._unremoved.append(spilled)
            elif spilled is None:
                self._direct = False
                try:
                    self._spill_locked([(batch, token)], self.clock.now(), first=True)
                except OutboxError as out_err:
                    log.error("output %s: %s; %d rows lost", self.name, out_err, len(batch))
        if error is None:
            self._succeeded(batch)
        elif not isinstance(error, BatchRejected):
            self._failed(error)  # the outbox path retries it after the backoff
            if not self._stop.is_set():
                self.clock.sleep(self.policy.delay(self._attempt - 1, self._auth, self._rng),
                                 self._stop)
        return True

    def _spill_locked(self, more: list[tuple[Batch, Any]], now: float,
                      first: bool = False) -> None:
        """Write what is held in memory, then ``more``, to the outbox in one transaction.

        ``first``: ``more`` is the batch that was being written, so it goes first. The
        batch being written at this moment (if any) goes first too, and when its write
        succeeds the sender removes it again (see _send_memory).
        """
        head = list(more) if first else []
        inflight = self._inflight is not None and self._inflight_id is None and not first
        if inflight:
            assert self._inflight is not None
            head = [self._inflight]
        items = head + list(self._memory) + ([] if first else list(more))
        ids = self.outbox.put_many([b for b, _ in items], now)
        if inflight:
            self._inflight_id = ids[0]
        self._memory.clear()
        self._direct = False
        for _, token in items:
            self.on_durable(token)

    def _peek(self) -> list[tuple[int, Batch]] | None:
        """Return the next batches to send, or None when the outbox cannot be read (said once)."""
        single = self._single_until > self._sent_upto
        try:
            items = self.outbox.peek(0 if single else self.drain_rows, after=self._sent_upto)
        except OutboxError as err:
            self.stats.outbox_errors += 1
            if not self._outbox_down:
                log.error("output %s: %s; retrying with backoff", self.name, err)
            self._outbox_down = True
            return None
        if self._outbox_down:
            log.info("output %s: outbox readable again", self.name)
            self._outbox_down = False
        return items[:1] if single else items

    def _send(self, items: list[tuple[int, Batch]]) -> bool:
        """Send the batches as one; return True when the sink accepted them (or set one aside)."""
        rows = tuple(sorted((r for _, b in items for r in b.rows), key=lambda r: (r.time, r.input)))
        batch = Batch(self.name, rows)
        self.stats.attempts += 1
        try:
            if not self._connected:
                self.sink.start()
                self._connected = True
            began = time.monotonic()
            self.sink.write(batch)
            self.stats.write_seconds += time.monotonic() - began
        except BatchRejected as err:
            return self._reject(items, err)
        except Exception as err:  # any sink failure keeps the data; the type sets the wait
            self._failed(err)
            return False
        self._sent_upto = items[-1][0]
        self._unremoved += [batch_id for batch_id, _ in items]
        self._remove_sent()
        self._succeeded(batch)
        return True

    def _reject(self, items: list[tuple[int, Batch]], err: BatchRejected) -> bool:
        """Dead-letter the one refused batch; a refused merge is retried batch by batch."""
        if len(items) > 1:
            self._single_until = items[-1][0]
            log.info("output %s: a merged send of %d batches was refused by content; sending "
                     "them one by one", self.name, len(items))
            return True
        try:
            self.outbox.dead_letter([items[0][0]], f"{_describe(err)}{_hint(err)}")
        except OutboxError as out_err:
            self._failed(out_err)
            return False
        return True

    def _remove_sent(self) -> None:
        """Remove the batches the sink accepted from the outbox (retried while that fails)."""
        if not self._unremoved:
            return
        try:
            self.outbox.ack(self._unremoved)
        except OutboxError as err:
            if not self.stats.unremoved:
                log.error("output %s: %s; sending goes on, they may be sent again after a "
                          "restart", self.name, err)
            self.stats.unremoved = len(self._unremoved)
            return
        if self.stats.unremoved:
            log.info("output %s: sent batches removed from the outbox again", self.name)
        self.stats.unremoved = 0
        self._unremoved = []

    def _failed(self, err: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = _describe(err)
        self._attempt += 1
        self._auth = is_auth_error(err)
        if self._down_since is None:
            self._down_since = self.clock.now()
            self.stats.outages += 1
            if is_permanent(err):
                self.stats.rejected = True
                log.error("output %s: sink refuses the data and retrying will not fix it (%s)%s;"
                          " keeping every row in the outbox, trying again every %.0f s",
                          self.name, self.stats.last_error, _hint(err), self.policy.auth)
                return
            kind = "refused our credentials" if self._auth else "is unavailable"
            log.warning("output %s: sink %s (%s)%s; keeping data, retrying with backoff",
                        self.name, kind, self.stats.last_error, _hint(err))

    def _succeeded(self, batch: Batch) -> None:
        self.stats.batches += 1
        self.stats.rows += len(batch.rows)
        self.stats.points += batch.points
        log.debug("output %s: sent %d rows (%d points)", self.name, len(batch.rows),
                  batch.points)
        if self._down_since is not None:
            waiting = self.outbox.depth()["rows"]
            log.info("output %s: sink recovered after %.0f s; %d rows still waiting", self.name,
                     self.clock.now() - self._down_since, waiting)
            self._down_since = None
        self._attempt = 0
        self._auth = False
        self.stats.rejected = False


def _hint(err: BaseException) -> str:
    """Return '; fix: ...' for an error that carries a fix, else ''."""
    hint = err.hint if isinstance(err, SinkError) else ""
    return f"; fix: {hint}" if hint else ""


def _describe(err: BaseException) -> str:
    """Return a one-line description of a sink failure (never a traceback)."""
    text = str(err).splitlines()[0] if str(err) else ""
    prefix = "auth: " if is_auth_failure(err) else "rejected: " if is_permanent(err) else ""
    return f"{prefix}{type(err).__name__}: {text}" if text else f"{prefix}{type(err).__name__}"


def as_dict(stats: DeliveryStats) -> dict[str, Any]:
    """Return the stats as plain data."""
    return dict(stats.__dict__)


def dead_letter_summary(outbox: Outbox | MemoryOutbox) -> dict[str, Any]:
    """Return an outbox's dead-letter and moved-aside counts for summary.json."""
    return {"dead_letter_batches": outbox.dead_batches, "dead_letter_rows": outbox.dead_rows,
            "outbox_moved_aside": [str(p) for p in outbox.moved_aside]}
