"""The engine: sources -> inputs (ticks) -> middlewares -> cache -> outputs (batches) -> sinks.

The package: :mod:`~vemonitor.engine.wiring` builds a run from a RunSpec (also
used by validation), :mod:`~vemonitor.engine.schedule` decides which ticks fire
(pure), :mod:`~vemonitor.engine.workers` makes rows and batches,
:mod:`~vemonitor.engine.summary` counts; :class:`Engine` (in
:mod:`~vemonitor.engine.core`) starts, runs and stops them.

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
  have used at its end. An output's tick (gathering, or sending a batch) fires
  early the same way once every input's slots before it have closed, in the same
  wake: a batch goes at the moment its last row is made. Rows, times and batches
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

from vemonitor.engine.core import Engine

__all__ = ["Engine"]
