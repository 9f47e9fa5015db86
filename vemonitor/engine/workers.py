"""The workers: an input makes one row per slot, an output gathers rows into batches.

Their semantics are described in :mod:`vemonitor.engine`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from vemonitor.api import (
    AcknowledgesRows,
    Batch,
    Cache,
    DropRow,
    ForwardsRows,
    PushesUpdates,
    Row,
    Sink,
    Source,
)
from vemonitor.clock import Clock
from vemonitor.config.build import InputSpec, OutputSpec
from vemonitor.delivery import RetryPolicy, Sender
from vemonitor.fieldpolicy import LOG_EVERY, FieldDrops, keep_good_fields
from vemonitor.middlewares import Step, project
from vemonitor.outbox import MemoryOutbox, Outbox, OutboxError
from vemonitor.seed_values import seed_values
from vemonitor.vedirect.fields import jsonable

log = logging.getLogger(__name__)

PENDING = -1  # an _inflight cell of a row still waiting in the backlog
DEVICE_PERIOD = 1.0  # VE.Direct text frames come once a second: the period assumed until learned
# How much earlier than the learned period the next snapshot may come and still be taken
# for the next slot's, as a fraction of the period. The learned period is the smallest
# recent gap, so it is a little short of the true one (measured on the simulated BMV-700:
# 0.9980 to 0.9999 s for a 1.000 s cycle; on a loaded host or a USB adapter the gaps
# jitter by tens of ms). Without this margin a snapshot arriving in a slot's first
# milliseconds looked as if another would follow before the slot's end, and its row
# waited a whole period (issue 24g: traced, every row of a run whose device completed
# its cycles 0.2 ms after each second). A tenth of the period is beyond any jitter seen
# and well under half of it, so a device sending twice per slot is still waited for.
PERIOD_MARGIN = 0.1


@dataclass
class InputStats:
    """What one input made: rows, ticks without a row, drops, and the data age behind rows.

    ``dropped`` counts whole rows by reason; ``fields`` the single fields left out of
    rows that were kept (vemonitor.fieldpolicy).
    """

    rows: int = 0
    missed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    waited: int = 0  # ticks at which forwarded rows waited for room in the cache
    fields: FieldDrops = field(default_factory=lambda: FieldDrops("input"))
    age_total: float = 0.0
    age_max: float = 0.0


# How an input types its values (InputItem.value_format): vemonitor's own, or the seed's.
ENCODERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "vemonitor": lambda values: {k: jsonable(v) for k, v in values.items()},
    "vemonitor_m8": lambda values: seed_values(dict(values)),
}


class InputWorker:
    """Makes one row per slot from its source's latest snapshot (see the module doc)."""

    def __init__(self, spec: InputSpec, source: Source, steps: Step, cache: Cache,
                 stale_after: float, clock: Clock, max_points: int | None = None,
                 max_skew: float = 86400.0) -> None:
        self.spec = spec
        self.max_skew = max_skew  # a forwarded row further from the run's clock is refused
        # ... except a source's own past: the MPPT's day records (issue 22) are dated by the
        # device's day count, up to a month back; the source says how far it may reach.
        past_span = getattr(source, "past_span", None)
        self.max_past = max(max_skew, past_span(spec.name)) if callable(past_span) \
            else max_skew
        self._far_logged_at = -math.inf
        # Back-pressure (issue 25): forwarded rows enter the cache only while it has room
        # for them without pushing out a row some output has not taken yet; the others
        # wait in ``_backlog`` (and the source is not read again until it is empty).
        self.max_points = max_points
        self.readers: list[OutputWorker] = []  # the outputs taking this input's rows
        self._backlog: deque[tuple[Row, list[int]]] = deque()
        # Per row handed, in the order handed: [cache arrival number], [0] when there is
        # nothing to wait for (refused, dropped), [PENDING] while it waits in the backlog.
        self._inflight: deque[list[int]] = deque()
        self.clock = clock
        self.source = source
        self.steps = steps
        self.cache = cache
        self.stale_after = stale_after
        self.stats = InputStats(fields=FieldDrops(f"input {spec.name}"))
        self._cursor = -math.inf
        self.pushes = isinstance(source, PushesUpdates)
        self._period = DEVICE_PERIOD  # learned time between two snapshots
        self._seen_at: float | None = None  # receive time of the newest snapshot seen
        self._used_at: float | None = None  # receive time of the snapshot of the last row
        self._judged: tuple[Mapping[str, Any], float] | None = None  # see ready()
        # The two newest snapshots seen (ready() and tick() look at each wake): a tick
        # firing just after its due may find the next slot's snapshot already in, and
        # takes the one before it (see _own).
        self._newest: tuple[Mapping[str, Any], float] | None = None
        self._before: tuple[Mapping[str, Any], float] | None = None
        self._encode = ENCODERS[spec.item.value_format]

    def tick(self, at: float) -> Row | None:
        """Close the slot ending at ``at``: cache its row (stamped at the slot's start).

        Return the row, or None when the device is unavailable.
        """
        if self.forwards:
            return self._forward(at)
        # The snapshot ready() just judged, when this tick fires early (no second look-up;
        # a snapshot arriving in between belongs to the next slot anyway).
        latest, self._judged = self._judged or self._own(at), None
        if latest is None or at - latest[1] > self.stale_after:
            self.stats.missed += 1
            return None
        values, received = latest
        self._used_at = received
        # The age of the data when its row is made (early or at the tick).
        return self._store(at - self.spec.time_interval, values,
                           max(self.clock.now() - received, 0.0))

    def ready(self, due: float) -> bool:
        """Return True when the slot ending at ``due`` can close now.

        That is when the newest snapshot is unused, falls in the slot
        [due - interval, due), and the next one is not expected before ``due`` (less a
        margin for the learned period's error: PERIOD_MARGIN).
        """
        if not self.pushes or self.forwards:
            return False  # polled sources (Redis) and forwarded rows are read at ticks only
        latest = self._see()
        if latest is None:
            return False
        received = latest[1]
        if (received != self._used_at and received >= due - self.spec.time_interval
                and received + self._period * (1.0 + PERIOD_MARGIN) > due):
            self._judged = latest  # the early tick that follows uses this snapshot
            return True
        return False

    def _see(self) -> tuple[Mapping[str, Any], float] | None:
        """Return the source's newest snapshot; note it (and learn the period) if new."""
        latest = self.source.latest()
        if latest is not None and (self._newest is None or latest[1] != self._newest[1]):
            self._before, self._newest = self._newest, latest
            self._observe(latest[1])
        return latest

    def _own(self, at: float) -> tuple[Mapping[str, Any], float] | None:
        """Return the snapshot for the slot ending at ``at``: the newest received before it.

        A pushing source's snapshot received at or after ``at`` (the tick fired a
        moment after its due, the device's next cycle already in) belongs to the next
        slot: putting it here would stamp values a slot before they were measured and
        leave the next slot to wait for a later one. Polled sources are read at the
        tick, their newest snapshot is the slot's. Without a fresh earlier snapshot
        (the run's first; a gap longer than ``stale_after``, which at an accelerated
        speed is a scheduling delay of a few ms) or after a step of the wall clock back
        (snapshots stamped an interval or more ahead), the newest is taken, as before:
        a row of the next cycle's values rather than a missed row.
        """
        latest = self._see()
        if (not self.pushes or latest is None
                or not at <= latest[1] < at + self.spec.time_interval):
            return latest
        before = self._before
        if before is not None and at - self.stale_after <= before[1] < at:
            return before
        return latest

    def _observe(self, received: float) -> None:
        """Learn the device's period from two consecutive snapshots.

        The smaller of the old estimate and the new gap wins at once (a device
        running early makes rows wait for the tick rather than miss a snapshot);
        a longer gap (a skipped cycle, or jitter) moves the estimate slowly.
        """
        previous, self._seen_at = self._seen_at, received
        if previous is None or received <= previous:
            return
        gap = received - previous
        self._period = gap if gap < self._period else 0.9 * self._period + 0.1 * gap

    @property
    def forwards(self) -> bool:
        """Return True for a source of rows (e.g. Redis written by another vemonitor).

        Such rows keep their own times and are passed on one by one, never sampled.
        """
        # A source serving sampled and forwarded inputs (the VE.Direct source: live
        # columns, and the MPPT's day records: issue 22) says which items it forwards.
        forwards_item = getattr(self.source, "forwards_item", None)
        if callable(forwards_item):
            return bool(forwards_item(self.spec.name))
        return isinstance(self.source, ForwardsRows)

    def _forward(self, at: float) -> Row | None:
        """Pass on the rows written since the last one seen (the source applies ``since``).

        Never more than the cache has room for: the rest waits here, in order, and the
        source is read again only once they are all in (so a source's own flow control,
        MQTT's receive maximum for one, holds the sender back).
        """
        assert isinstance(self.source, ForwardsRows)
        self.release()
        if not self._backlog:
            for row in self.source.rows_since(self._cursor, self.spec.name):
                cell = [0 if self._far(row) else PENDING]  # far: refused, never redelivered
                self._inflight.append(cell)
                if cell[0] == PENDING:
                    self._backlog.append((row, cell))
        room = self.room()
        last = None
        while self._backlog and room > 0:
            row, cell = self._backlog[0]
            if row.time > at:  # a later slot's row: a later tick takes it
                break
            self._backlog.popleft()
            seq = self.cache.seq
            last = self._store(row.time, row.values, max(at - row.time, 0.0)) or last
            self._cursor = max(self._cursor, row.time)
            stored = self.cache.seq != seq
            cell[0] = self.cache.seq if stored else 0  # 0: nothing to wait for
            room -= stored
        if self._backlog and self._backlog[0][0].time <= at:
            self.stats.waited += 1
        return last

    def _far(self, row: Row) -> bool:
        """Refuse (count, say once an hour) a row stamped beyond ``max_skew`` ahead of the
        run's clock or ``max_past`` behind it (an edge's wrong clock, ``"time": 0``): it
        would hold every later row back, or be refused by a store for ever. The run's
        clock, not the wall's: the Demo's simulated clock starts at its own moment and
        runs faster."""
        now = self.clock.now()
        if -self.max_past <= row.time - now <= self.max_skew:
            return False
        self.stats.dropped["time_far"] += 1
        if now - self._far_logged_at >= LOG_EVERY:
            self._far_logged_at = now
            log.warning("input %s: a row stamped %.0f s %s the clock is refused (max_time_skew"
                        " %g s; %d so far; said once an hour)", self.spec.name,
                        abs(row.time - now), "ahead of" if row.time > now else "behind",
                        self.max_skew, self.stats.dropped["time_far"])
        return True

    def room(self) -> float:
        """Return how many rows the cache takes now without pushing out an untaken one."""
        if self.max_points is None:
            return math.inf
        taken = min((o.taken(self.spec.name) for o in self.readers), default=self.cache.seq)
        return self.max_points - len(self.cache.arrived_after(self.spec.name, taken))

    def release(self) -> None:
        """Tell an acknowledging source how many of its rows are now in every outbox."""
        durable = min((o.durable(self.spec.name) for o in self.readers),
                      default=self.cache.seq)
        count = 0
        while self._inflight and PENDING < self._inflight[0][0] <= durable:
            self._inflight.popleft()
            count += 1
        if count and isinstance(self.source, AcknowledgesRows):
            self.source.stored(self.spec.name, count)

    def _store(self, at: float, values: Mapping[str, Any], age: float) -> Row | None:
        """Select and check the values, run the steps, then cache them as a row at ``at``.

        A field a rule refuses (vemonitor.fieldpolicy: out of range) is left out and
        counted; the row keeps its other fields. A step may still drop the whole row.
        """
        selected = keep_good_fields(project(values, self.spec.columns), self.stats.fields,
                                    self.clock.now())
        try:
            row_values = self.steps(selected)
        except DropRow as drop:
            self.stats.dropped[drop.reason] += 1
            return None
        row = Row(at, self.spec.name, self._encode(row_values), age=age)
        self.cache.add(row)
        self.stats.rows += 1
        self.stats.age_total += age
        self.stats.age_max = max(self.stats.age_max, age)
        return row


@runtime_checkable
class WritesLater(Protocol):
    """A cache that buffers its writes (the Redis cache: one round trip per flush).

    An output flushes it before handing a batch to its sender, so the cache's store holds
    every row an output has sent (integrations/redis/cache.py, issue 24f).
    """

    def flush(self) -> None: ...


class OutputWorker:
    """Gathers rows at its ticks; every cache_interval ticks stores a batch in its outbox.

    A sender thread (vemonitor.delivery) moves batches from the outbox to the sink.
    """

    def __init__(self, spec: OutputSpec, sink: Sink, cache: Cache, inputs: list[str],
                 outbox: Outbox | MemoryOutbox, clock: Clock,
                 input_names: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.spec = spec
        self.cache = cache
        self._cache_flush = cache.flush if isinstance(cache, WritesLater) else None
        self.inputs = list(spec.columns) or inputs
        # Standard names (ref_cols, device column -> standard name): the output's own
        # if it has any, else each input's.
        own = {col: std for std, col in spec.ref_cols}
        self.names = {name: own or dict((input_names or {}).get(name, {})) for name in inputs}
        if not spec.item.apply_ref_cols:  # a legacy output: the seed never renamed
            self.names = {name: {} for name in inputs}
        self.outbox = outbox
        self.clock = clock
        self.ticks = 0
        self.waiting_at_stop: int | None = None
        self._seen: dict[str, int] = {}  # input -> arrival number of the last row taken
        self._before_step = 0  # arrival number of the last row made before a clock step
        self._durable: dict[str, int] = {}  # input -> last row number in the sink or outbox
        self._pending: list[Row] = []
        self._views: dict[str, tuple[list[str], dict[str, str]]] = {}  # input -> _view()
        self._gathered = 0
        delivery = spec.item.delivery
        self.sender = Sender(spec.name, sink, outbox, clock,
                             RetryPolicy(delivery.retry_initial, delivery.retry_max,
                                         delivery.auth_retry),
                             drain_rows=delivery.drain_rows,
                             drain_interval=delivery.drain_interval)
        self.sender.on_durable = self._durable.update

    def start(self) -> None:
        """Open the outbox and start the sender; rows added to the cache from now on are gathered."""
        self._seen = dict.fromkeys(self.inputs, self.cache.seq)
        self._durable.clear()  # the same dict: the sender's on_durable updates it
        self._durable.update(self._seen)
        self.outbox.open()
        self.sender.start()

    def tick(self, at: float) -> None:
        """Take the rows produced since the previous tick; store a batch every cache_interval."""
        for name in self.inputs:
            for row in self._new_rows(name, at):
                self._pending.append(self._select(row))
        self._gathered += 1
        self.ticks += 1
        if self._gathered >= self.spec.cache_interval:
            self.flush()

    def clock_stepped(self) -> None:
        """The wall clock stepped: rows that arrived before are taken whatever their stamp.

        After a step back, rows made just before it are stamped later than this output's
        next ticks (stamped with the new time): without this they, and every row behind
        them, would wait as many seconds as the step (vemonitor.engine.schedule).
        """
        self._before_step = self.cache.seq

    def _new_rows(self, name: str, at: float) -> list[Row]:
        """Return the rows of input ``name`` stamped before ``at`` not taken yet, by arrival."""
        taken: list[Row] = []
        for seq, row in self.cache.arrived_after(name, self._seen.get(name, 0)):
            # A slot this tick does not cover yet (a row of an input tick fired early):
            # the next tick takes it; a row made before a clock step is due now.
            if row.time >= at and seq > self._before_step:
                break
            taken.append(row)
            self._seen[name] = seq
        return taken

    def taken(self, name: str) -> int:
        """Return the arrival number of the last row of input ``name`` this output took."""
        return self._seen.get(name, 0)

    def durable(self, name: str) -> int:
        """Return the arrival number of the last row of input ``name`` in the sink or outbox."""
        return self._durable.get(name, 0)

    def flush(self) -> None:
        """Store what was gathered as one batch in the outbox (nothing when empty).

        Every row taken is then in the sender's hands: :meth:`durable` moves up to
        :meth:`taken` once they are in the sink or in the outbox (an acknowledging input
        may then acknowledge them). When the outbox cannot store a batch, those rows are
        lost with an ERROR, and said so.
        """
        self._gathered = 0
        if not self._pending:
            self.sender.mark(dict(self._seen))
            return
        rows = tuple(sorted(self._pending, key=lambda r: (r.time, r.input)))
        self._pending = []
        if self._cache_flush is not None:  # the cache's store first holds what is sent
            self._cache_flush()
        try:
            # In memory while the sink is healthy, else in the outbox (vemonitor.delivery);
            # the rows count as stored (durable) once in the sink or in the outbox.
            self.sender.take(Batch(self.spec.name, rows), self.clock.now(), dict(self._seen))
        except OutboxError as err:
            # Disk full or read-only: the rows cannot be kept; say so, keep running.
            self.sender.stats.errors += 1
            log.error("output %s: %s; %d rows lost", self.spec.name, err, len(rows))
            return

    def stop(self, timeout: float) -> None:
        """Let the sender deliver what it can within ``timeout``, then close sink and outbox."""
        self.sender.stop(timeout)
        self.sender.sink.close()
        if self.outbox.is_open:  # the summary says what is left for the next run
            self.waiting_at_stop = self.outbox.depth()["rows"]
        self.outbox.close()

    def _select(self, row: Row) -> Row:
        """Return the row with the output's columns, under their standard names."""
        view = self._views.get(row.input)
        if view is None:  # once per input, not per row (issue 24f)
            view = self._views[row.input] = self._view(row.input)
        wanted, names = view
        values = project(row.values, wanted)
        return Row(row.time, row.input, {names.get(k, k): v for k, v in values.items()}, row.age)

    def _view(self, name: str) -> tuple[list[str], dict[str, str]]:
        """Return the device columns the output keeps from input ``name``'s rows (none
        listed: all) and their standard names.

        Rows in the cache keep device column names; a column may be asked for by
        its device name or its standard name. ``time_ref`` (the seed's name for the
        row time) is not a value: every row carries its time.
        """
        names = self.names.get(name, {})
        columns = self.spec.columns.get(name, ())
        if not columns:
            return [], names
        devices = {std: col for col, std in names.items()}
        return [devices.get(c, c) for c in columns if c != "time_ref"], names
