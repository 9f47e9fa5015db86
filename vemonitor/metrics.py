"""Prometheus metrics, read from the engine's own counters at scrape time.

Nothing is counted twice: a custom collector turns the counters the engine,
readers and senders already keep into metric families when Prometheus scrapes,
so an idle scrape costs nothing between scrapes. The endpoint binds to
``metrics.host`` (127.0.0.1 by default) and ``metrics.port``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import CollectorRegistry

from vemonitor.api import KeepsStats

if TYPE_CHECKING:
    from vemonitor.engine import Engine


class EngineCollector:
    """Expose one engine's counters as Prometheus metric families."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family (called at each scrape)."""
        yield from self._devices()
        yield from self._inputs()
        yield from self._outputs()
        yield from self._integration_stats()
        yield from self._controls()
        yield from self._threads()
        yield from self._clock()

    def _clock(self) -> Iterator[Metric]:
        steps = CounterMetricFamily("vemonitor_clock_steps",
                                    "Wall clock steps the schedule followed (NTP step, date -s)",
                                    labels=["direction"])
        summary = self.engine.clock_steps()
        for direction, count in summary.items():
            steps.add_metric([direction], count)
        yield steps

    def _threads(self) -> Iterator[Metric]:
        from vemonitor import supervise

        restarts = CounterMetricFamily("vemonitor_thread_restarts",
                                       "Supervised thread restarts after an unexpected error",
                                       labels=["thread"])
        for name, count in supervise.restarts().items():
            restarts.add_metric([name], count)
        yield restarts

    def _devices(self) -> Iterator[Metric]:
        frames = CounterMetricFamily("vemonitor_frames", "VE.Direct blocks by result",
                                     labels=["device", "result"])
        hexes = CounterMetricFamily("vemonitor_hex_messages", "HEX lines by validity",
                                    labels=["device", "valid"])
        reconnects = CounterMetricFamily("vemonitor_reconnects", "Port reopenings",
                                         labels=["device"])
        available = GaugeMetricFamily("vemonitor_device_available",
                                      "1 while valid blocks keep arriving", labels=["device"])
        age = GaugeMetricFamily("vemonitor_device_last_frame_age_seconds",
                                "Seconds since the last valid block", labels=["device"])
        fields = CounterMetricFamily("vemonitor_device_fields_dropped",
                                     "Fields left out of valid blocks, by reason and label",
                                     labels=["device", "reason", "label"])
        now = self.engine.clock.now()
        for name, stats in self._device_stats().items():
            frames.add_metric([name, "ok"], stats.get("frames_ok", 0))
            for reason, count in (stats.get("rejected") or {}).items():
                frames.add_metric([name, reason], count)
            hexes.add_metric([name, "true"], stats.get("hex_ok", 0))
            hexes.add_metric([name, "false"], stats.get("hex_invalid", 0))
            reconnects.add_metric([name], stats.get("reconnects", 0))
            available.add_metric([name], 1.0 if stats.get("available") else 0.0)
            last = stats.get("last_frame_at")
            if last is not None:
                age.add_metric([name], max(now - last, 0.0))
            for reason, labels in (stats.get("fields_dropped") or {}).items():
                for label, count in labels.items():
                    fields.add_metric([name, reason, label], count)
        yield from (frames, hexes, reconnects, available, age, fields)

    def _device_stats(self) -> dict[str, dict[str, Any]]:
        return {key.split(":", 1)[1]: source.stats()
                for key, source in self.engine.sources.items()}

    def _inputs(self) -> Iterator[Metric]:
        rows = CounterMetricFamily("vemonitor_rows", "Rows made by input", labels=["input"])
        missed = CounterMetricFamily("vemonitor_rows_missed",
                                     "Ticks without a row (device unavailable)", labels=["input"])
        dropped = CounterMetricFamily("vemonitor_rows_dropped", "Rows dropped by reason",
                                      labels=["input", "reason"])
        fields = CounterMetricFamily("vemonitor_input_fields_dropped",
                                     "Fields left out of kept rows, by reason and label",
                                     labels=["input", "reason", "label"])
        for worker in self.engine.inputs:
            name = worker.spec.name
            rows.add_metric([name], worker.stats.rows)
            missed.add_metric([name], worker.stats.missed)
            for reason, count in worker.stats.dropped.items():
                dropped.add_metric([name, reason], count)
            for (reason, label), count in worker.stats.fields.counts.items():
                fields.add_metric([name, reason, label], count)
        yield from (rows, missed, dropped, fields)

    def _outputs(self) -> Iterator[Metric]:
        labels = ["output"]
        families = {
            "batches": CounterMetricFamily("vemonitor_output_batches", "Batches sent", labels=labels),
            "points": CounterMetricFamily("vemonitor_output_points", "Points sent", labels=labels),
            "errors": CounterMetricFamily("vemonitor_output_errors", "Failed sends", labels=labels),
            "outages": CounterMetricFamily("vemonitor_output_outages", "Times the sink went down",
                                           labels=labels),
        }
        depth = GaugeMetricFamily("vemonitor_outbox_rows", "Rows waiting in the outbox",
                                  labels=labels)
        oldest = GaugeMetricFamily("vemonitor_outbox_oldest_age_seconds",
                                   "Age of the oldest batch waiting", labels=labels)
        dropped = CounterMetricFamily("vemonitor_outbox_dropped_rows",
                                      "Rows dropped by the outbox bounds", labels=labels)
        dead = CounterMetricFamily("vemonitor_output_dead_letters",
                                   "Batches moved to the outbox's dead-letter table",
                                   labels=labels)
        moved = CounterMetricFamily("vemonitor_outbox_moved_aside",
                                    "Unusable outbox files moved aside", labels=labels)
        latency = SummaryMetricFamily("vemonitor_write_latency_seconds",
                                      "Time a sink took to accept a batch", labels=labels)
        now = self.engine.clock.now()
        for output in self.engine.outputs:
            name = output.spec.name
            stats = output.sender.stats
            for key, family in families.items():
                family.add_metric([name], getattr(stats, key))
            latency.add_metric([name], stats.batches, stats.write_seconds)
            dropped.add_metric([name], output.outbox.dropped_rows)
            dead.add_metric([name], output.outbox.dead_batches)
            moved.add_metric([name], len(output.outbox.moved_aside))
            if output.outbox.is_open:
                waiting = output.outbox.depth()
                depth.add_metric([name], waiting["rows"])
                if waiting["oldest"] is not None:
                    oldest.add_metric([name], max(now - waiting["oldest"], 0.0))
        yield from (*families.values(), depth, oldest, dropped, dead, moved, latency)


    def _controls(self) -> Iterator[Metric]:
        """Yield the device controls' numbers (issue 23): results, NV budget, rate limits,
        lease. The budget and rate-limit times are the persisted ones (state dir)."""
        from vemonitor.control import ControlHub

        hub = self.engine.context.controls
        if not isinstance(hub, ControlHub):
            return
        results = CounterMetricFamily("vemonitor_control_results",
                                      "Control requests by result (all surfaces)",
                                      labels=["device", "control", "result"])
        nv_used = GaugeMetricFamily("vemonitor_control_nv_writes_today",
                                    "Non-volatile writes sent today (UTC), persisted",
                                    labels=["device"])
        nv_budget = GaugeMetricFamily("vemonitor_control_nv_budget",
                                      "Non-volatile writes allowed per day", labels=["device"])
        wait = GaugeMetricFamily("vemonitor_control_rate_limit_wait_seconds",
                                 "Seconds until the rate limit allows the next write",
                                 labels=["device", "control"])
        lease = GaugeMetricFamily("vemonitor_control_lease_remaining_seconds",
                                  "Seconds left of the charge-current lease (0: none)",
                                  labels=["device"])
        for device, stats in hub.stats().items():
            for (control, result), count in stats["results"].items():
                results.add_metric([device, control, result], count)
            nv_used.add_metric([device], stats["nv_writes_today"])
            nv_budget.add_metric([device], stats["nv_budget"])
            for control, seconds in stats["rate_limit_wait_s"].items():
                wait.add_metric([device, control], seconds)
            lease.add_metric([device], stats["lease_remaining_s"])
        yield from (results, nv_used, nv_budget, wait, lease)

    def _integration_stats(self) -> Iterator[Metric]:
        """Yield the counters integrations keep themselves (sink and source ``stats``).

        E.g. an influxDb2 output's requests, bytes and values left out, an MQTT input's
        messages, rows waiting and PUBACKs sent, a Redis output's trimmed fields.
        """
        family = GaugeMetricFamily("vemonitor_integration_stat",
                                   "A counter an integration keeps (sink or source stats)",
                                   labels=["kind", "name", "stat"])
        for output in self.engine.outputs:
            sink = output.sender.sink
            if isinstance(sink, KeepsStats):  # optional for sinks (vemonitor.api)
                for stat, value in _numbers(sink.stats()):
                    family.add_metric(["output", output.spec.name, stat], value)
        for key, source in self.engine.sources.items():
            for stat, value in _numbers(source.stats()):
                family.add_metric(["source", key.split(":", 1)[-1], stat], value)
        yield family


def _numbers(stats: Any) -> list[tuple[str, float]]:
    """Return the numeric entries of what a stats() method returned."""
    if not isinstance(stats, dict):
        return []
    return [(str(k), float(v)) for k, v in stats.items()
            if isinstance(v, int | float) and not isinstance(v, bool)]


def serve(engine: Engine, port: int, host: str = "127.0.0.1") -> Any:
    """Start the metrics endpoint for ``engine``; return the server (shutdown() to stop)."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=True)
    registry.register(EngineCollector(engine))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
