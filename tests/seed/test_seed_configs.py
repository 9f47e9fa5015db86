"""The original project's sample configurations: every set loads and validates, and runs
against servers started here on 127.0.0.1 (never the addresses written in the files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw_sim import Simulator
from tests.integrations.emoncms.contract_server import ContractServer
from tests.servers import RedisServer
from tests.shared import SEED_CONFIGS, require_shared
from vemonitor.cli import preflight
from vemonitor.compose import prepare, register_resolvers, register_schema
from vemonitor.errors import ConfigError

# (set, block) -> None when valid, else the precise error the sample earns.
EXPECTED = {
    ("vemonitor_m8", "bmvFakeSerial"):
        "vm_conf.yaml: block.outputs.emoncms[0].columns.rel_monitor: unknown input "
        "'rel_monitor'",
    ("vemonitor_m8/vedirect_to_redis", "bmvFakeSerial"): None,
    ("vemonitor_m8/vedirect_to_emoncms", "BatteryMonitor"): None,
    ("vemonitor_m8/vedirect_to_emoncms", "BatteryAndPannelsMonitor"): None,
    ("emon_worker_m8", "BatteryMonitor"): None,
    ("emon_worker_m8", "BatteryAndPannelsMonitor"): None,
}
SEED_KEY = "My_EmonCms_ApiKey"  # the samples' placeholder key, accepted by the test server


@pytest.mark.parametrize(("folder", "block"), sorted(EXPECTED))
def test_seed_set_loads_and_validates(folder: str, block: str) -> None:
    """Each legacy set validates, or fails with one precise message naming file and key."""
    directory = require_shared(SEED_CONFIGS / folder)
    register_resolvers()
    register_schema()
    expected = EXPECTED[(folder, block)]
    prepared = prepare([f"config_dir={directory}", f"block={block}"])
    if expected is None:
        preflight(prepared)
    else:
        with pytest.raises(ConfigError) as err:
            preflight(prepared)
        assert expected in str(err.value)


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           *args], env=env, capture_output=True, text=True, timeout=120)


def test_vedirect_to_redis_sample_runs_against_local_redis(tmp_path: Path) -> None:
    """The seed's BMV -> Redis sample: HmapTimeSeries hashes in the seed's db 3, under the
    device's column names (a legacy output does not apply ref_cols, as the seed)."""
    folder = require_shared(SEED_CONFIGS / "vemonitor_m8" / "vedirect_to_redis")
    sim_dir = tmp_path / "sim"
    with RedisServer(workdir=tmp_path / "redis") as redis_server, \
            Simulator(["bmv700"], sim_dir):
        proc = _run([f"config_dir={folder}", "block=bmvFakeSerial", "duration=6",
                     f"state_dir={tmp_path / 'state'}",
                     f"appConnectors.redis.local.port={redis_server.port}",
                     f"appConnectors.serial.bmv700.serialPort={sim_dir}/ttyVE_bmv700"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        import redis
        client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=3)
        members = {m.decode() for m in client.smembers("bmv700")}
        hashes = client.hgetall("bmv700_bmv700")
    assert members == {"bmv700_bmv700"}
    assert len(hashes) >= 3
    row = json.loads(next(iter(hashes.values())))
    assert {"V", "I", "P", "SOC", "H17"} <= set(row)
    assert not {"bat_voltage", "bat_current", "bat_power"} & set(row)
    summary = json.loads((tmp_path / "state" / "summary.json").read_text())
    assert summary["outputs"]["redis"]["errors"] == 0


def test_emon_worker_sample_runs_against_local_emoncms(tmp_path: Path) -> None:
    """The seed's BMV + MPPT -> EmonCms sample delivers its nodes to the contract server."""
    folder = require_shared(SEED_CONFIGS / "emon_worker_m8")
    sim_dir = tmp_path / "sim"
    server = ContractServer(apikeys=[SEED_KEY]).start()
    try:
        with RedisServer(workdir=tmp_path / "redis") as redis_server, \
                Simulator(["bmv700", "mppt"], sim_dir):
            proc = _run([f"config_dir={folder}", "block=BatteryAndPannelsMonitor",
                         "duration=12", f"state_dir={tmp_path / 'state'}",
                         f"appConnectors.redis.local.port={redis_server.port}",
                         f"appConnectors.emoncms.local.addr={server.url}",
                         f"appConnectors.serial.bmv700.serialPort={sim_dir}/ttyVE_bmv700",
                         f"appConnectors.serial.blueSolar.serialPort={sim_dir}/ttyVE_mppt",
                         "block.outputs.emoncms.0.cache_interval=1"], tmp_path)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    nodes = {point.node for point in server.deliveries}
    assert "bmv700" in nodes
    assert SEED_KEY not in proc.stdout + proc.stderr
