"""The Engine: start the wired run, run its schedule until stopped, stop it in order."""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

from vemonitor import supervise
from vemonitor.api import (
    Cache,
    Context,
    IntegrationError,
    Lifecycle,
    SinkAuthFailed,
    SinkRejected,
    Source,
)
from vemonitor.clock import Clock
from vemonitor.config.build import RunSpec
from vemonitor.engine.schedule import Schedule, Timer, first_tick
from vemonitor.engine.summary import summarise
from vemonitor.engine.wiring import wire
from vemonitor.engine.workers import InputWorker, OutputWorker
from vemonitor.registry import Registry

STOP_TIMEOUT = 10.0  # seconds given to senders to flush at shutdown
# Reading the wall and monotonic clocks "together": within this many real seconds (a
# tenth of Schedule's STEP_REAL), else read again, at most READ_TRIES times.
READ_TOGETHER = 0.05
READ_TRIES = 5
log = logging.getLogger(__name__)


class Engine:
    """Runs the workers wired from a RunSpec until stopped (see :mod:`vemonitor.engine`).

    The thread calling :meth:`run` is the scheduler; :meth:`stop` is safe from another
    thread (signals reach it through :mod:`vemonitor.stopsignals`).
    """

    def __init__(self, spec: RunSpec, registry: Registry, clock: Clock, *,
                 port_globs: tuple[str, ...] = ()) -> None:
        self.spec = spec
        self.clock = clock
        self.stop_event = threading.Event()
        self._wake = threading.Event()  # set by stop() and by sources with a new snapshot
        self.wiring = wire(spec, registry, clock, port_globs, self._wake.set)
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._started_mono = 0.0  # the monotonic clock at start and stop: the run's length
        self._stopped_mono = 0.0
        self._schedule = Schedule([], speed=spec.runtime.speed)

    @property
    def context(self) -> Context:
        """Return what the workers were given."""
        return self.wiring.context

    @property
    def cache(self) -> Cache:
        """Return the run's cache."""
        return self.wiring.cache

    @property
    def sources(self) -> dict[str, Source]:
        """Return the sources by ``domain:connector``."""
        return self.wiring.sources

    @property
    def inputs(self) -> list[InputWorker]:
        """Return the input workers."""
        return self.wiring.inputs

    @property
    def outputs(self) -> list[OutputWorker]:
        """Return the output workers."""
        return self.wiring.outputs

    @property
    def skipped_ticks(self) -> int:
        """Return the ticks skipped after long delays of the scheduler (a stalled machine)."""
        return self._schedule.skipped

    def clock_steps(self) -> dict[str, int]:
        """Return the wall clock's steps the schedule followed, by direction."""
        return {"back": self._schedule.stepped_back, "forward": self._schedule.stepped_forward}

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Start the cache, sources and sinks."""
        self.started_at = self.clock.now()
        self._started_mono = self.clock.monotonic()
        self._start_cache()
        for source in self.sources.values():
            source.start()
        for output in self.outputs:
            output.start()

    def _start_cache(self) -> None:
        """Start the cache; a backend it may not use is a configuration mistake (one line,
        exit 2): without its cache the block cannot run, and silently falling back to
        memory would drop the persistence the user asked for."""
        if not isinstance(self.cache, Lifecycle):  # the memory cache has nothing to connect
            return
        try:
            self.cache.start()
        except (SinkRejected, SinkAuthFailed) as err:
            spec = self.spec.cache
            section, where = (spec.key, f"{spec.domain}.{spec.connector}") if spec else ("cache", "?")
            fix = (f" (appConnectors.{where}.{err.setting})"
                   if isinstance(err, SinkRejected) and err.setting else "")
            raise IntegrationError(f"{section}: {err}{fix}") from err

    def run(self, duration: float | None = None) -> None:
        """Run ticks until ``stop()`` is called or ``duration`` seconds of clock time pass.

        Ticks are scheduled on the clock's monotonic reading and stamped with its wall
        reading (:mod:`vemonitor.engine.schedule`): a step of the wall clock moves the
        stamps, never the rate, and is said once and counted.
        """
        self.start()
        end = self.started_at + duration if duration else math.inf
        self._schedule = Schedule(self._timers(self.started_at), end, self.spec.runtime.speed)
        self._schedule.anchor(self.started_at, self._started_mono)
        try:
            while not self.stop_event.is_set():
                due = self._schedule.next_due()
                self.clock.sleep(self._schedule.wake_at(due) - self.clock.monotonic(),
                                 self._wake)
                # Cleared before looking, so a snapshot arriving meanwhile wakes us again.
                self._wake.clear()
                if self.stop_event.is_set() or supervise.FATAL.is_set():  # never run on with
                    break  # a thread that ended for good (vemonitor.supervise)
                now, monotonic = self._readings()
                step = self._schedule.observe(now, monotonic)
                if step:
                    self._stepped(step)
                if self._schedule.ended(now, due):
                    break
                self._schedule.fire_due(now)
                self._schedule.fire_early(now)
        finally:
            self.shutdown()

    def _readings(self) -> tuple[float, float]:
        """Return the wall and monotonic clocks read together.

        A pair whose monotonic brackets lie more than READ_TOGETHER real seconds apart
        (the thread was preempted between the readings, on a loaded machine) is read again,
        so a preemption is never taken for a step of the wall clock.
        """
        limit = READ_TOGETHER * self.spec.runtime.speed
        for _ in range(READ_TRIES):
            before = self.clock.monotonic()
            wall = self.clock.now()
            after = self.clock.monotonic()
            if after - before <= limit:
                break
        return wall, (before + after) / 2

    def _stepped(self, seconds: float) -> None:
        """Say a step of the wall clock, once (the schedule has followed and counted it);
        the outputs take the rows made before it at their next tick."""
        for output in self.outputs:
            output.clock_stepped()
        schedule = self._schedule
        way, count = (("back", schedule.stepped_back) if seconds < 0
                      else ("forward", schedule.stepped_forward))
        log.warning("the wall clock stepped %s %.1f s (an NTP step, date -s, an RTC fix, a "
                    "resume?): ticks keep their rate, rows are stamped with the new time "
                    "(%d step(s) %s so far)", way, abs(seconds), count, way)

    def stop(self) -> None:
        """Ask the run loop to end (from another thread; never from a signal handler, which
        would deadlock on the events' locks: vemonitor.stopsignals)."""
        self.stop_event.set()
        self._wake.set()

    def shutdown(self) -> None:
        """Stop inputs, flush outputs, close sinks (idempotent)."""
        if self.stopped_at:
            return
        self.stopped_at = self.clock.now()
        self._stopped_mono = self.clock.monotonic()
        deadline = time.monotonic() + STOP_TIMEOUT
        for output in self.outputs:
            output.tick(self.stopped_at)
            output.flush()
        for worker in self.inputs:  # rows now in every outbox: an MQTT input acks them
            worker.release()
        for source in self.sources.values():
            source.close()
        for output in self.outputs:
            output.stop(max(deadline - time.monotonic(), 0.1))
        if isinstance(self.cache, Lifecycle):
            self.cache.close()

    def _timers(self, now: float) -> list[Timer]:
        """Return a timer per worker, inputs first so outputs see the rows of the same tick."""
        by_input = {w.spec.name: Timer(w.spec.time_interval, first_tick(now, w.spec.time_interval),
                                       w.tick, w.ready) for w in self.inputs}
        outputs = [Timer(o.spec.time_interval, first_tick(now, o.spec.time_interval), o.tick,
                         functools.partial(output_ready, o, by_input)) for o in self.outputs]
        return [*by_input.values(), *outputs]

    # ------------------------------------------------------------------ reporting
    def summary(self) -> dict[str, Any]:
        """Return the run's counts (printed at exit and written to summary.json)."""
        # On the monotonic clock: wall clock steps during the run do not change its length.
        elapsed = (self._stopped_mono or self.clock.monotonic()) - self._started_mono
        summary = summarise(self.spec.block, self.wiring, elapsed, self.skipped_ticks)
        steps = self.clock_steps()
        summary["clock_steps_back"], summary["clock_steps_forward"] = steps["back"], steps["forward"]
        return summary


def output_ready(output: OutputWorker, inputs: Mapping[str, Timer], due: float) -> bool:
    """Return True when every row the output's tick at ``due`` takes exists.

    Its inputs' ticks up to ``due`` have all fired (early or not), so the tick can
    take nothing more. Every tick, not only a batch's last (issue 24f): a tick that
    only gathers fires in the same wake as its inputs' early ticks, so the engine no
    longer wakes a second time each interval to gather rows it already has.
    """
    return all(name in inputs and inputs[name].due > due for name in output.inputs)
