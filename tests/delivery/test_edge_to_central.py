"""An edge vemonitor writes to Redis; a central one reads those rows and forwards them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.engine.helpers import Recorder, block_config, registry_with_recorders, running
from tests.servers import RedisServer
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine


@pytest.mark.parametrize(("structure", "redis_cache"), [
    ("HmapTimeSeries", False), ("Stream", False), ("HmapTimeSeries", True)])
def test_central_instance_forwards_every_row_with_its_own_time(tmp_path: Path, structure: str,
                                                               redis_cache: bool) -> None:
    """Rows keep their edge timestamps and values; each arrives once at the central output,
    also when the central block keeps its rows in a redis_cache (rows older than the output's
    cursor arrive there too)."""
    with RedisServer(workdir=tmp_path / "redis") as server:
        redis_local = {"local": {"host": "127.0.0.1", "port": server.port}}
        edge_rows: dict[str, Recorder] = {}
        inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "SOC"]}}
        outputs = {"record": {"seen": {"cache_interval": 1}},
                   "redis": {"up": {"source": "local", "structure": structure,
                                    "redis_node": "site", "cache_interval": 2}}}
        edge = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "edge")
        edge["appConnectors"]["redis"] = redis_local
        since = time.time() - 1
        with running(edge, edge_rows, ["bmv700"], tmp_path / "sim") as (engine, _sim):
            engine.run(7)
        central_rows: dict[str, Recorder] = {}
        registry = registry_with_recorders(central_rows)
        central = {
            "block": {"name": "central", "inputs": {"redis": {"bmv": {
                "source": "local", "structure": structure, "redis_node": "site",
                "stream_prefix": "vemonitor:", "since": since, "time_interval": 1}}},
                "outputs": {"record": {"fwd": {"cache_interval": 1}}}},
            "appConnectors": {"redis": redis_local},
            "state_dir": str(tmp_path / "central"),
        }
        if redis_cache:
            central["block"]["redis_cache"] = {"source": "local", "max_data_points": 120}
        spec = build_run(central, registry)
        Engine(spec, registry, SystemClock()).run(4)
    sent = {(r.time, r.values["V"], r.values["SOC"]) for r in edge_rows["seen"].rows()}
    forwarded = [(r.time, r.values["V"], r.values["SOC"]) for r in central_rows["fwd"].rows()]
    assert len(sent) >= 4
    assert len(forwarded) == len(set(forwarded))
    assert set(forwarded) == sent
