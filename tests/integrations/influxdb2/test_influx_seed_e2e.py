"""The seed's vedirect_to_redis set with an influxDb2 output (the seed's keys), run as a user would.

The seed's own ``influxDb2.local`` connector is pointed at a loopback server on the
command line; the output added to ``vm_conf.yaml`` uses only the seed's block keys.
The server is stopped and restarted mid-run: every row the redis output stored is
queryable back from the TSDB, each once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from hw_sim import Simulator
from tests.integrations.influxdb2.servers import InfluxDB1Server, VictoriaMetricsServer
from tests.servers import RedisServer, ServerProcess
from tests.shared import SEED_CONFIGS, require_shared

OUTPUT = """
            influxDb2:
              - source: "local"
                db: "vemonitor"
                measurement: "bmv"
                time_interval: 1
                cache_interval: 2
                ref_cols:  [
                    ['bat_voltage', 'V'],
                    ['bat_current', 'I']
                ]
                columns:
                    bmv700: ['V', 'I', 'SOC', 'H17']
"""
RUN = 14.0  # seconds the daemon runs
OUTAGE = (4.0, 8.0)  # seconds after start the server is down (from the first rows on)


def _seed_copy(tmp_path: Path) -> Path:
    folder = require_shared(SEED_CONFIGS / "vemonitor_m8" / "vedirect_to_redis")
    copy = tmp_path / "conf"
    shutil.copytree(folder, copy)
    conf = copy / "vm_conf.yaml"
    conf.write_text(conf.read_text().rstrip() + "\n" + OUTPUT)
    return copy


def _outage(server: ServerProcess, kill: bool, redis_port: int) -> threading.Thread:
    """Take the server down for the OUTAGE's length, once the daemon has stored rows.

    Timed from the daemon's first rows in Redis, not from the command: on a loaded
    machine (parallel test workers) the start-up alone may outlast a fixed delay.
    """
    def run() -> None:
        client = redis.Redis(host="127.0.0.1", port=redis_port, db=3)
        deadline = time.monotonic() + 60
        while client.hlen("bmv700_bmv700") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        server.kill() if kill else server.stop()
        time.sleep(OUTAGE[1] - OUTAGE[0])
        server.start()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _run_seed(tmp_path: Path, server: ServerProcess, url: str, kill: bool,
              extra: list[str]) -> list[float]:
    """Run the seed set for RUN seconds with an outage; return the row times redis stored."""
    sim_dir = tmp_path / "sim"
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    with RedisServer(workdir=tmp_path / "redis") as redis_server, \
            Simulator(["bmv700"], sim_dir):
        outage = _outage(server, kill, redis_server.port)
        proc = subprocess.run(
            [sys.executable, "-c", "from vemonitor.cli import main; main()",
             f"config_dir={_seed_copy(tmp_path)}", "block=bmvFakeSerial", f"duration={RUN}",
             f"state_dir={tmp_path / 'state'}",
             f"appConnectors.redis.local.port={redis_server.port}",
             f"appConnectors.influxDb2.local.host={url}",
             f"appConnectors.serial.bmv700.serialPort={sim_dir}/ttyVE_bmv700", *extra],
            env=env, capture_output=True, text=True, timeout=120)
        outage.join(30)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # A legacy connector without ``db`` writes the seed's db 3 (vemonitor.config.seed).
        client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=3)
        stamps = sorted(float(k) for k in client.hkeys("bmv700_bmv700"))
    summary = json.loads((tmp_path / "state" / "summary.json").read_text())
    assert "My_InfluxDb2_AuthKey" not in proc.stderr + proc.stdout
    out = summary["outputs"]["influxdb2"]
    assert out["errors"] >= 1 and out["outages"] >= 1 and out["dropped_rows"] == 0  # saw it
    assert len(stamps) >= RUN - 4
    return stamps


def test_seed_set_writes_every_row_to_victoriametrics_across_a_restart(tmp_path: Path) -> None:
    """v2 API into VictoriaMetrics, stopped and restarted mid-run: each row once, own time."""
    with VictoriaMetricsServer(workdir=tmp_path / "vm") as vm:
        stamps = _run_seed(tmp_path, vm, vm.url, kill=False, extra=[])
        # A legacy output keeps the device's labels (the seed never applied ref_cols).
        samples = vm.samples("bmv_V")
        other = vm.samples("bmv_SOC")
    times = sorted(t for _, t, _ in samples)
    assert times == stamps  # every row, once (dedup by time + tags)
    assert {labels["site"] for labels, _, _ in samples} == {"bmvFakeSerial"}
    assert {labels["node"] for labels, _, _ in samples} == {"bmv700"}
    assert sorted(t for _, t, _ in other) == stamps
    assert all(10 < v < 16 for _, _, v in samples)


def test_seed_set_writes_every_row_to_influxdb1_across_a_kill(tmp_path: Path) -> None:
    """The 1.x /write API (``api: v1``) into influxd SIGKILLed mid-run: each row once."""
    with InfluxDB1Server(workdir=tmp_path / "influx") as server:
        server.influxql("CREATE DATABASE vemonitor", post=True)
        stamps = _run_seed(tmp_path, server, server.url, kill=True,
                           extra=["+appConnectors.influxDb2.local.api=v1"])
        points = server.points("vemonitor", "bmv")
    assert sorted(p["time"] for p in points) == stamps
    assert all(p["node"] == "bmv700" and isinstance(p["SOC"], (int, float))
               and 10 < p["V"] < 16 for p in points), points[:2]


pytestmark = pytest.mark.timeout(180)
