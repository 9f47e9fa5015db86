"""Prometheus metrics from a running block, scraped over HTTP on 127.0.0.1."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hw_sim import FaultConfig
from tests.engine.helpers import Recorder, block_config, running
from tests.servers import free_port
from vemonitor.metrics import serve


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_expose_frames_rows_outputs_and_outbox(tmp_path: Path) -> None:
    """Frames by result, availability, rows per input, batches and outbox depth per output."""
    recorders: dict[str, Recorder] = {}
    inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "I"]}}
    outputs = {"record": {"out": {"time_interval": 1, "cache_interval": 2}}}
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
    port = free_port()
    faults = FaultConfig(corrupt=0.3, seed=2)
    with running(config, recorders, ["bmv700"], tmp_path / "sim", speed=5, faults=faults) as (
            engine, _sim):
        server = serve(engine, port)
        runner = threading.Thread(target=engine.run, args=(40,), daemon=True)
        runner.start()
        time.sleep(5)
        live = _scrape(port)
        runner.join(30)
        server.shutdown()
    frames_ok = live[("vemonitor_frames_total", (("device", "bmv700"), ("result", "ok")))]
    corrupted = live[("vemonitor_frames_total", (("device", "bmv700"), ("result", "checksum")))]
    assert frames_ok > 5 and corrupted > 0
    assert live[("vemonitor_device_available", (("device", "bmv700"),))] == 1.0
    assert live[("vemonitor_rows_total", (("input", "bmv"),))] > 3
    assert live[("vemonitor_output_batches_total", (("output", "out"),))] >= 1
    assert ("vemonitor_outbox_rows", (("output", "out"),)) in live
    assert ("vemonitor_write_latency_seconds_count", (("output", "out"),)) in live
    assert live[("vemonitor_device_last_frame_age_seconds", (("device", "bmv700"),))] < 10
