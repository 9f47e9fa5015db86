"""The write budget knows the influxDb2 output; its own counters are Prometheus metrics."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.engine.helpers import Recorder, block_config, running
from tests.integrations.influxdb2.servers import VictoriaMetricsServer
from tests.servers import free_port
from vemonitor import budget
from vemonitor.config.build import build_run
from vemonitor.metrics import serve
from vemonitor.registry import Registry

BMV = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "SOC"]}}


def test_budget_counts_one_request_per_send(tmp_path: Path) -> None:
    """time_interval 1 x cache_interval 10: 360 POSTs and 3600 rows an hour."""
    registry = Registry().discover()
    outputs = {"influxDb2": {"tsdb": {"source": "vm", "db": "b", "time_interval": 1,
                                      "cache_interval": 10}}}
    config = block_config(tmp_path / "sim", BMV, outputs, tmp_path / "state")
    config["appConnectors"]["influxDb2"] = {"vm": {"host": "http://127.0.0.1:9"}}
    [cost] = budget.budget(build_run(config, registry), registry)
    assert (cost.sends, cost.rows, cost.requests, cost.redis_commands) == (360, 3600, 360, 0)


def test_sink_counters_are_exposed(tmp_path: Path, vm: VictoriaMetricsServer) -> None:
    """vemonitor_integration_stat{kind="output",name=...,stat="points"|"bytes"|"requests"}."""
    outputs = {"influxDb2": {"tsdb": {"source": "vm", "db": "b", "cache_interval": 1}}}
    config = block_config(tmp_path / "sim", BMV, outputs, tmp_path / "state")
    config["appConnectors"]["influxDb2"] = {"vm": {"host": vm.url}}
    port = free_port()
    recorders: dict[str, Recorder] = {}
    with running(config, recorders, ["bmv700"], tmp_path / "sim") as (engine, _sim):
        server = serve(engine, port)
        runner = threading.Thread(target=engine.run, args=(6,), daemon=True)
        runner.start()
        time.sleep(4.5)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        runner.join(30)
        server.shutdown()
    stats = {s.labels["stat"]: s.value for family in
             text_string_to_metric_families(text.decode()) for s in family.samples
             if s.name == "vemonitor_integration_stat" and s.labels["name"] == "tsdb"}
    assert stats["points"] >= 2 and stats["requests"] >= 2 and stats["bytes"] > 0
