"""The run's counts: printed at exit, written to summary.json and served as metrics."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vemonitor.delivery import dead_letter_summary
from vemonitor.engine.wiring import Wiring
from vemonitor.engine.workers import InputStats, OutputWorker
from vemonitor.outbox import Outbox


def summarise(block: str, wiring: Wiring, elapsed: float, skipped_ticks: int) -> dict[str, Any]:
    """Return the counts of a run that lasted ``elapsed`` clock seconds."""
    elapsed = max(elapsed, 1e-9)
    return {
        "block": block,
        "seconds": round(elapsed, 3),
        "inputs": {w.spec.name: input_summary(w.stats) for w in wiring.inputs},
        "devices": {name.split(":", 1)[1]: source.stats()
                    for name, source in wiring.sources.items()},
        "outputs": {o.spec.name: output_summary(o, elapsed) for o in wiring.outputs},
        "cache_dropped": wiring.cache.dropped,
        "skipped_ticks": skipped_ticks,
    }


def input_summary(stats: InputStats) -> dict[str, Any]:
    """Return an input's counts and the age of the device data behind its rows."""
    mean = stats.age_total / stats.rows if stats.rows else 0.0
    return {"rows": stats.rows, "missed": stats.missed, "dropped": dict(stats.dropped),
            "fields_dropped": stats.fields.as_dict(),
            "age_mean": round(mean, 3), "age_max": round(stats.age_max, 3)}


@runtime_checkable
class LocalFile(Protocol):
    """A sink writing a file on this machine (the sqlite store): the summary says where."""

    path: Path


def output_summary(output: OutputWorker, elapsed: float) -> Mapping[str, Any]:
    """Return an output's delivery counts, its write rate, what waits and where its files are."""
    stats = output.sender.stats
    waiting = (output.outbox.depth()["rows"] if output.outbox.is_open
               else output.waiting_at_stop)
    outbox = output.outbox.path if isinstance(output.outbox, Outbox) else None
    sink = output.sender.sink
    store = sink.path if isinstance(sink, LocalFile) else None
    return {"batches": stats.batches, "rows": stats.rows, "points": stats.points,
            "errors": stats.errors, "attempts": stats.attempts, "outages": stats.outages,
            "outbox_rows": waiting, "dropped_rows": output.outbox.dropped_rows,
            **dead_letter_summary(output.outbox),
            "outbox": str(outbox) if outbox else None, "file": str(store) if store else None,
            "down": output.sender.down, "rejected": stats.rejected,
            "writes_per_hour": round(stats.batches * 3600.0 / elapsed, 1)}
