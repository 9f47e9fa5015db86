"""Column labels neither in the field table nor sent by the device are named once at
start, with the nearest known label (vemonitor_m8 dropped them silently)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from hw_sim import Simulator


def test_unknown_columns_named_once_with_nearest_label(tmp_path: Path) -> None:
    """A simulated BMV-700 read with typos 'SOCC' and 'Relais' and the seed's 't_bat'
    (ARDMONITOR, not a VE.Direct field): one warning names the three, with hints; the
    known columns still arrive and the run ends normally."""
    sim_dir = tmp_path / "sim"
    block = {"name": "Typos", "app": "batSerialMonitor",
             "inputs": {"serial": [{"name": "bmv", "source": "bmv", "time_interval": 1,
                                    "device": "BMV",
                                    "columns": ["V", "SOCC", "Relais", "t_bat", "time_ref"]}]},
             "outputs": {}}
    connectors = {"serial": {"bmv": {"serialPort": f"{sim_dir}/ttyVE_bmv700"}}}
    (tmp_path / "vm_conf.yaml").write_text(yaml.safe_dump(
        {"appBlocks": [block], "appConnectors": connectors}))
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    with Simulator(["bmv700"], sim_dir):
        proc = subprocess.run(
            [sys.executable, "-c", "from vemonitor.cli import main; main()",
             f"config_dir={tmp_path}", "block=Typos", "duration=4",
             f"state_dir={tmp_path / 'state'}"],
            env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "neither VE.Direct fields" in line]
    assert len(warnings) == 1, proc.stderr
    line = warnings[0]
    assert "'SOCC' (nearest known label: 'SOC')" in line
    assert "'Relais' (nearest known label: 'Relay')" in line
    assert "'t_bat'" in line
    assert "time_ref" not in line and "'V'" not in line
    assert "input  bmv: " in proc.stdout and " 0 rows" not in proc.stdout
