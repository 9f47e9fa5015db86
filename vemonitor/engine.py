"""The engine: sources -> inputs (ticks) -> middlewares -> cache -> outputs (batches) -> sinks.

Threads: each source runs its own reader (one per serial port, shared by every
input naming that connector); each output has a sender thread so a slow sink
never delays a tick; the scheduler (the thread calling :meth:`Engine.run`)
fires input and output ticks.

Semantics (the seed's, made to hold for any pair of intervals):

* An input's time is cut into slots [t, t + time_interval) at wall-clock
  multiples of its interval. The row of a slot is stamped ``t`` (the second the
  data came in, as a logger stamps a reading; never a time in the future) and
  holds the device's latest snapshot at the slot's end (never a backlog). The
  slot closes at its end (the input's tick); a snapshot older than
  ``stale_after`` seconds then means the device is unavailable: no row is made
  (counted as ``missed``).
* Early rows (decided for latency: a frame should reach the sink in
  milliseconds, not wait up to one interval for the tick). A source that pushes
  (``notify_on_update``) wakes the scheduler on each new snapshot. When that
  snapshot is in the open slot and the device's next one is not expected before
  the slot ends (VE.Direct sends once a second; the period is learned), no later
  data can change the slot's row: the slot closes now, with the snapshot it would
  have used at its end. An output whose next tick sends a batch fires early the
  same way once every input's slots before it have closed. Rows, times and batches
  stay the same; only the wait goes. A wrong guess (the device was early) only
  means the row used the previous snapshot.
* An output ticks at multiples of its own ``time_interval`` and takes every row
  of the slots that closed since its previous tick (rows stamped before the
  tick); after ``cache_interval`` ticks it sends them as one batch. With 1 s
  inputs a batch so holds ``time_interval * cache_interval`` points per input,
  as the seed documents.
* A scheduler that falls behind by less than two real seconds catches up tick
  by tick; one further behind (suspend, clock jump) skips to the latest due tick
  rather than bursting, counting the skipped ticks.
* On stop (signal or ``duration``) inputs stop first, then every output sends
  what it gathered, then sinks close.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vemonitor.clock import Clock
from vemonitor.config.build import InputSpec, OutputSpec, RunSpec
from vemonitor.config.errors import ConfigError
from vemonitor.delivery import RetryPolicy, Sender
from vemonitor.middlewares import Step, bank_step, bounds, chain, project
from vemonitor.model import Batch, DropRow, Row
from vemonitor.outbox import MemoryOutbox, Outbox, OutboxError, OutboxLimits, outbox_path
from vemonitor.registry import (
    Cache,
    Context,
    InputInfo,
    IntegrationError,
    Registry,
    Sink,
    Source,
)
from vemonitor.scan import Scanner
from vemonitor.vedirect.fields import jsonable

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # seconds given to senders to flush at shutdown
CATCH_UP_REAL_SECONDS = 2.0  # a scheduler later than this skips ticks instead of catching up
DEVICE_PERIOD = 1.0  # VE.Direct text frames come once a second: the period assumed until learned


class DataCache:
    """Rows per input, bounded (``max_data_points`` per input), oldest dropped first.

    Each row gets an arrival number, so outputs take rows in arrival order: a row
    forwarded late with an old time (from another vemonitor) is still sent.
    """

    def __init__(self, max_points: int) -> None:
        self._rows: dict[str, deque[tuple[int, Row]]] = {}
        self._max = max_points
        self._lock = threading.Lock()
        self.seq = 0  # arrival number of the last row added
        self.dropped = 0

    def add(self, row: Row) -> None:
        """Store a row."""
        with self._lock:
            rows = self._rows.setdefault(row.source, deque(maxlen=self._max))
            if len(rows) == self._max:
                self.dropped += 1
            self.seq += 1
            rows.append((self.seq, row))

    def between(self, source: str, after: float, upto: float) -> list[Row]:
        """Return the rows of ``source`` with after < time <= upto, oldest first."""
        with self._lock:
            return [row for _, row in self._rows.get(source, ()) if after < row.time <= upto]

    def arrived_after(self, source: str, seq: int) -> list[tuple[int, Row]]:
        """Return (arrival number, row) of the rows of ``source`` added after ``seq``."""
        with self._lock:
            return [(n, row) for n, row in self._rows.get(source, ()) if n > seq]


@dataclass
class InputStats:
    """What one input made: rows, ticks without a row, drops, and the data age behind rows."""

    rows: int = 0
    missed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    age_total: float = 0.0
    age_max: float = 0.0


@dataclass
class _Timer:
    interval: float
    due: float
    fire: Callable[[float], Any]
    ready: Callable[[float], bool] = lambda _due: False  # may the tick at ``due`` fire now?


def first_tick(now: float, interval: float) -> float:
    """Return the first multiple of ``interval`` strictly after ``now``."""
    return (math.floor(now / interval) + 1) * interval


class InputWorker:
    """Makes one row per slot from its source's latest snapshot (see the module doc)."""

    def __init__(self, spec: InputSpec, source: Source, steps: Step, cache: Cache,
                 stale_after: float, clock: Clock) -> None:
        self.spec = spec
        self.clock = clock
        self.source = source
        self.steps = steps
        self.cache = cache
        self.stale_after = stale_after
        self.stats = InputStats()
        self._cursor = -math.inf
        self.pushes = callable(getattr(source, "notify_on_update", None))
        self._period = DEVICE_PERIOD  # learned time between two snapshots
        self._seen_at: float | None = None  # receive time of the newest snapshot seen
        self._used_at: float | None = None  # receive time of the snapshot of the last row

    def tick(self, at: float) -> Row | None:
        """Close the slot ending at ``at``: cache its row (stamped at the slot's start).

        Return the row, or None when the device is unavailable.
        """
        if self.forwards:
            return self._forward(at)
        latest = self.source.latest()
        if latest is None or at - latest[1] > self.stale_after:
            self.stats.missed += 1
            return None
        values, received = latest
        self._observe(received)
        self._used_at = received
        # The age of the data when its row is made (early or at the tick).
        return self._store(at - self.spec.time_interval, values,
                           max(self.clock.now() - received, 0.0))

    def ready(self, due: float) -> bool:
        """Return True when the slot ending at ``due`` can close now.

        That is when the newest snapshot is unused, falls in the slot
        [due - interval, due), and the next one is not expected before ``due``.
        """
        if not self.pushes:
            return False  # polled sources (Redis) are read at ticks only
        latest = self.source.latest()
        if latest is None:
            return False
        received = latest[1]
        self._observe(received)
        return (received != self._used_at and received >= due - self.spec.time_interval
                and received + self._period > due)

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
        return hasattr(self.source, "rows_since")

    def _forward(self, at: float) -> Row | None:
        """Pass on the rows written since the last one seen (the source applies ``since``)."""
        rows = self.source.rows_since(self._cursor, self.spec.name)  # type: ignore[attr-defined]
        last = None
        for row in rows:
            if row.time <= at:
                last = self._store(row.time, row.values, max(at - row.time, 0.0)) or last
                self._cursor = max(self._cursor, row.time)
        return last

    def _store(self, at: float, values: Mapping[str, Any], age: float) -> Row | None:
        """Select, check and rename the values, then cache them as a row at ``at``."""
        try:
            row_values = self.steps(project(values, self.spec.columns))
        except DropRow as drop:
            self.stats.dropped[drop.reason] += 1
            return None
        row = Row(at, self.spec.name, {k: jsonable(v) for k, v in row_values.items()}, age=age)
        self.cache.add(row)
        self.stats.rows += 1
        self.stats.age_total += age
        self.stats.age_max = max(self.stats.age_max, age)
        return row


class OutputWorker:
    """Gathers rows at its ticks; every cache_interval ticks stores a batch in its outbox.

    A sender thread (vemonitor.delivery) moves batches from the outbox to the sink.
    """

    def __init__(self, spec: OutputSpec, sink: Sink, cache: Cache, inputs: list[str],
                 outbox: Outbox | MemoryOutbox, clock: Clock,
                 input_names: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.spec = spec
        self.cache = cache
        self.inputs = list(spec.columns) or inputs
        # Standard names (ref_cols, device column -> standard name): the output's own
        # if it has any, else each input's.
        own = {col: std for std, col in spec.ref_cols}
        self.names = {name: own or dict((input_names or {}).get(name, {})) for name in inputs}
        self.outbox = outbox
        self.clock = clock
        self.ticks = 0
        self.waiting_at_stop: int | None = None
        self._seen: dict[str, int] = {}  # input -> arrival number of the last row taken
        self._pending: list[Row] = []
        self._gathered = 0
        delivery = spec.item.delivery
        self.sender = Sender(spec.name, sink, outbox, clock,
                             RetryPolicy(delivery.retry_initial, delivery.retry_max,
                                         delivery.auth_retry),
                             drain_rows=delivery.drain_rows,
                             drain_interval=delivery.drain_interval)

    def start(self) -> None:
        """Open the outbox and start the sender; rows added to the cache from now on are gathered."""
        self._seen = dict.fromkeys(self.inputs, self.cache.seq)
        self.outbox.open()
        self.sender.start()

    def tick(self, at: float) -> None:
        """Take the rows produced since the previous tick; store a batch every cache_interval."""
        for name in self.inputs:
            columns = self.spec.columns.get(name, ())
            for row in self._new_rows(name, at):
                self._pending.append(self._select(row, columns))
        self._gathered += 1
        self.ticks += 1
        if self._gathered >= self.spec.cache_interval:
            self.flush()

    @property
    def flushes_next(self) -> bool:
        """Return True when the next tick sends a batch."""
        return self._gathered + 1 >= self.spec.cache_interval

    def _new_rows(self, name: str, at: float) -> list[Row]:
        """Return the rows of input ``name`` stamped before ``at`` not taken yet, by arrival."""
        taken: list[Row] = []
        for seq, row in self.cache.arrived_after(name, self._seen.get(name, 0)):
            if row.time >= at:  # a slot this tick does not cover yet: the next tick takes it
                break
            taken.append(row)
            self._seen[name] = seq
        return taken

    def flush(self) -> None:
        """Store what was gathered as one batch in the outbox (nothing when empty)."""
        self._gathered = 0
        if not self._pending:
            return
        rows = tuple(sorted(self._pending, key=lambda r: (r.time, r.source)))
        self._pending = []
        try:
            self.outbox.put(Batch(self.spec.name, rows), self.clock.now())
        except OutboxError as err:
            # Disk full or read-only: the rows cannot be kept; say so, keep running.
            self.sender.stats.errors += 1
            log.error("output %s: %s; %d rows lost", self.spec.name, err, len(rows))
            return
        self.sender.notify()

    def stop(self, timeout: float) -> None:
        """Let the sender deliver what it can within ``timeout``, then close sink and outbox."""
        self.sender.stop(timeout)
        self.sender.sink.close()
        if self.outbox.is_open:  # the summary says what is left for the next run
            self.waiting_at_stop = self.outbox.depth()["rows"]
        self.outbox.close()

    def _select(self, row: Row, columns: tuple[str, ...]) -> Row:
        """Return the row with the output's columns, under their standard names.

        Rows in the cache keep device column names; a column may be asked for by
        its device name or its standard name. ``time_ref`` (the seed's name for the
        row time) is not a value: every row carries its time.
        """
        names = self.names.get(row.source, {})
        if columns:
            devices = {std: col for col, std in names.items()}
            wanted = [devices.get(c, c) for c in columns if c != "time_ref"]
            values = project(row.values, wanted)
        else:
            values = dict(row.values)
        return Row(row.time, row.source, {names.get(k, k): v for k, v in values.items()}, row.age)


class Engine:
    """Builds workers from a RunSpec and runs them until stopped."""

    def __init__(self, spec: RunSpec, registry: Registry, clock: Clock,
                 sim_dir: str | None = None) -> None:
        self.spec = spec
        self.clock = clock
        self.context = Context(clock=clock, state_dir=str(spec.runtime.state_dir),
                               debug=spec.runtime.debug, stale_after=self.stale_after(spec),
                               sim_dir=sim_dir, scanner=Scanner(sim_dir=sim_dir, clock=clock))
        self.cache: Cache = DataCache(spec.max_data_points)
        self.sources: dict[str, Source] = {}
        self.inputs: list[InputWorker] = []
        self.outputs: list[OutputWorker] = []
        self.stop_event = threading.Event()
        self._wake = threading.Event()  # set by stop() and by sources with a new snapshot
        self.started_at = 0.0
        self.stopped_at = 0.0
        self.skipped_ticks = 0
        self._build(registry)

    def _build(self, registry: Registry) -> None:
        """Build cache, sources, inputs and outputs (no I/O: their start() connects)."""
        if self.spec.redis_cache is not None:
            self.cache = self._redis_cache(registry)
        self._build_sources(registry)
        self._build_inputs()
        self._build_outputs(registry)

    def _build_sources(self, registry: Registry) -> None:
        """One source per connector that inputs read (one reader per serial port)."""
        for (domain, name), connector in self.spec.connectors.items():
            reg = registry.get(domain)
            used = any(i.domain == domain and i.source == name for i in self.spec.inputs)
            if reg.source_factory is not None and used:
                source = reg.source_factory(name, connector.config, self.context)
                notify = getattr(source, "notify_on_update", None)
                if callable(notify):  # wake the scheduler on each new snapshot
                    notify(self._wake.set)
                self.sources[f"{domain}:{name}"] = source

    def _build_inputs(self) -> None:
        """One worker per input item; sinks later see them through context.inputs."""
        self.context.block = self.spec.block
        for spec in self.spec.inputs:
            steps: list[Step] = [bounds()]
            if self.spec.bank is not None:
                steps.append(bank_step(self.spec.bank, spec.columns))
            source = self.sources[f"{spec.domain}:{spec.source}"]
            subscribe = getattr(source, "subscribe", None)
            if subscribe is not None:  # a source serving several inputs learns each item
                subscribe(spec.item)
            self.inputs.append(InputWorker(spec, source, chain(steps), self.cache,
                                           self.context.stale_after, self.clock))
            self.context.inputs[spec.name] = InputInfo(
                spec.name, spec.domain, spec.source, spec.columns,
                {col: std for std, col in spec.ref_cols}, source)

    def _build_outputs(self, registry: Registry) -> None:
        """One worker per output item, each with its sink and its durable outbox."""
        names = [i.spec.name for i in self.inputs]
        standard = {name: info.standard_names for name, info in self.context.inputs.items()}
        for out in self.spec.outputs:
            reg = registry.get(out.domain)
            assert reg.sink_factory is not None
            connector = self.spec.connectors.get((out.domain, out.source or ""))
            try:
                sink = reg.sink_factory(out.item, connector.config if connector else None,
                                        self.context)
            except (ConfigError, IntegrationError):
                raise
            except Exception as err:  # an integration's own bug, named, not a traceback
                raise IntegrationError(f"output {out.name}: integration '{out.domain}' failed "
                                       f"to build its sink: {type(err).__name__}: {err}") from err
            delivery = out.item.delivery
            limits = OutboxLimits(delivery.max_rows, delivery.max_bytes, delivery.max_age)
            outbox: Outbox | MemoryOutbox = (
                Outbox(outbox_path(self.spec.runtime.state_dir, out.name), out.name, limits,
                       delivery.synchronous) if reg.durable else MemoryOutbox(out.name, limits))
            self.outputs.append(OutputWorker(out, sink, self.cache, names, outbox, self.clock,
                                             standard))

    @staticmethod
    def stale_after(spec: RunSpec) -> float:
        """Return the staleness limit in clock seconds.

        Thread and pty latency is real time, so an accelerated clock cannot judge
        staleness finer than about half a real second: the limit grows with speed.
        """
        return max(spec.runtime.stale_after, 0.5 * spec.runtime.speed)

    def _redis_cache(self, registry: Registry) -> Cache:
        """Return the block's redis_cache (the seed's: a Redis connector holds the rows)."""
        assert self.spec.redis_cache is not None
        reg = registry.get("redis")
        if reg.cache_factory is None:
            raise IntegrationError("integration 'redis' provides no cache backend")
        connector = self.spec.connectors[("redis", str(self.spec.redis_cache["source"]))]
        return reg.cache_factory(connector.config,
                                 int(self.spec.redis_cache.get("max_data_points", 120)),
                                 self.context)

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Start sources and sinks."""
        self.started_at = self.clock.now()
        _call_if_present(self.cache, "start")
        for source in self.sources.values():
            source.start()
        for output in self.outputs:
            output.start()

    def run(self, duration: float | None = None) -> None:
        """Run ticks until ``stop()`` is called or ``duration`` seconds of clock time pass."""
        self.start()
        end = self.started_at + duration if duration else math.inf
        timers = self._schedule(self.started_at)
        try:
            while not self.stop_event.is_set():
                due = min(min(t.due for t in timers), end)
                self.clock.sleep(due - self.clock.now(), self._wake)
                # Cleared before looking, so a snapshot arriving meanwhile wakes us again.
                self._wake.clear()
                if self.stop_event.is_set():
                    break
                now = self.clock.now()
                if now >= end and due == end:
                    break
                self._fire_due(timers, now)
                self._fire_early(timers, now, end)
        finally:
            self.shutdown()

    def stop(self) -> None:
        """Ask the run loop to end (safe from a signal handler or another thread)."""
        self.stop_event.set()
        self._wake.set()

    def shutdown(self) -> None:
        """Stop inputs, flush outputs, close sinks (idempotent)."""
        if self.stopped_at:
            return
        self.stopped_at = self.clock.now()
        for source in self.sources.values():
            source.close()
        deadline = time.monotonic() + STOP_TIMEOUT
        for output in self.outputs:
            output.tick(self.stopped_at)
            output.flush()
        for output in self.outputs:
            output.stop(max(deadline - time.monotonic(), 0.1))
        _call_if_present(self.cache, "close")

    def _schedule(self, now: float) -> list[_Timer]:
        """Return a timer per worker, inputs first so outputs see the rows of the same tick."""
        by_input = {w.spec.name: _Timer(w.spec.time_interval, first_tick(now, w.spec.time_interval),
                                        w.tick, w.ready) for w in self.inputs}
        outputs = [_Timer(o.spec.time_interval, first_tick(now, o.spec.time_interval), o.tick,
                          functools.partial(_output_ready, o, by_input)) for o in self.outputs]
        return [*by_input.values(), *outputs]

    @staticmethod
    def _fire_early(timers: list[_Timer], now: float, end: float) -> None:
        """Fire the next tick of each worker whose row or batch is already complete.

        Inputs come first, so an output sees the early rows it waits for. A tick
        at or after ``end`` would never fire, so it does not fire early either.
        """
        for timer in timers:
            if now < timer.due < end and timer.ready(timer.due):
                timer.fire(timer.due)
                timer.due += timer.interval

    def _fire_due(self, timers: list[_Timer], now: float) -> None:
        """Run every tick due at ``now``.

        A short delay (thread scheduling, a busy moment) is caught up tick by tick,
        so an accelerated run gives the same rows as a real-time one; after a long
        one (suspend, clock jump) the missed ticks are skipped and counted instead
        of being fired in a burst.
        """
        for timer in timers:
            if timer.due > now:
                continue
            late_real = (now - timer.due) / self.spec.runtime.speed
            if late_real > CATCH_UP_REAL_SECONDS:
                behind = math.floor((now - timer.due) / timer.interval)
                self.skipped_ticks += behind
                timer.due += behind * timer.interval
            while timer.due <= now:
                timer.fire(timer.due)
                timer.due += timer.interval

    # ------------------------------------------------------------------ reporting
    def summary(self) -> dict[str, Any]:
        """Return the run's counts (printed at exit and written to summary.json)."""
        elapsed = max((self.stopped_at or self.clock.now()) - self.started_at, 1e-9)
        return {
            "block": self.spec.block,
            "seconds": round(elapsed, 3),
            "inputs": {w.spec.name: _input_summary(w.stats) for w in self.inputs},
            "devices": {name.split(":", 1)[1]: source.stats()
                        for name, source in self.sources.items()},
            "outputs": {o.spec.name: _output_summary(o, elapsed) for o in self.outputs},
            "cache_dropped": self.cache.dropped,
            "skipped_ticks": self.skipped_ticks,
        }


def _output_ready(output: OutputWorker, inputs: Mapping[str, _Timer], due: float) -> bool:
    """Return True when the output's tick at ``due`` sends a batch all of whose rows exist.

    Its inputs' ticks up to ``due`` have all fired (early or not), so the batch
    can hold nothing more.
    """
    return output.flushes_next and all(
        name in inputs and inputs[name].due > due for name in output.inputs)


def _call_if_present(obj: object, method: str) -> None:
    """Call an optional lifecycle method (a Redis cache connects and closes; memory does not)."""
    func = getattr(obj, method, None)
    if callable(func):
        func()


def _input_summary(stats: InputStats) -> dict[str, Any]:
    """Return an input's counts and the age of the device data behind its rows."""
    mean = stats.age_total / stats.rows if stats.rows else 0.0
    return {"rows": stats.rows, "missed": stats.missed, "dropped": dict(stats.dropped),
            "age_mean": round(mean, 3), "age_max": round(stats.age_max, 3)}


@runtime_checkable
class LocalFile(Protocol):
    """A sink writing a file on this machine (the sqlite store): the summary says where."""

    path: Path


def _output_summary(output: OutputWorker, elapsed: float) -> Mapping[str, Any]:
    stats = output.sender.stats
    waiting = (output.outbox.depth()["rows"] if output.outbox.is_open
               else output.waiting_at_stop)
    outbox = output.outbox.path if isinstance(output.outbox, Outbox) else None
    sink = output.sender.sink
    store = sink.path if isinstance(sink, LocalFile) else None
    return {"batches": stats.batches, "rows": stats.rows, "points": stats.points,
            "errors": stats.errors, "attempts": stats.attempts, "outages": stats.outages,
            "outbox_rows": waiting, "dropped_rows": output.outbox.dropped_rows,
            "outbox": str(outbox) if outbox else None, "file": str(store) if store else None,
            "down": output.sender.down, "rejected": stats.rejected,
            "writes_per_hour": round(stats.batches * 3600.0 / elapsed, 1)}
