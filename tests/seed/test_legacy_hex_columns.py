"""A legacy vm_conf.yaml block may name HEX registers among its columns (issue 22 point 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from hw_sim import Simulator


def _run(tmp_path: Path, columns: list[str], sim_dir: Path) -> subprocess.CompletedProcess[str]:
    block = {"name": "Hex", "app": "batSerialMonitor",
             "inputs": {"serial": [{"name": "mppt", "source": "mppt", "time_interval": 1,
                                    "columns": columns}]},
             "outputs": {"sqlite": [{"name": "store", "time_interval": 1,
                                     "cache_interval": 1}]}}
    connectors = {"serial": {"mppt": {"serialPort": f"{sim_dir}/ttyVE_mppt"}}}
    (tmp_path / "vm_conf.yaml").write_text(yaml.safe_dump(
        {"appBlocks": [block], "appConnectors": connectors}))
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    return subprocess.run(
        [sys.executable, "-c", "from vemonitor.cli import main; main()",
         f"config_dir={tmp_path}", "block=Hex", "duration=6",
         f"state_dir={tmp_path / 'state'}"],
        env=env, capture_output=True, text=True, timeout=120)


def test_legacy_block_with_an_unknown_register_exits_2_in_one_line(tmp_path: Path) -> None:
    """No traceback: one line naming the input, the column and the valid names."""
    proc = _run(tmp_path, ["V", "laod_current"], tmp_path / "sim")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "'laod_current'" in lines[0] and "nearest: 'load_current'" in lines[0]
    assert "yield_today" in lines[0] and "Traceback" not in proc.stderr


def test_legacy_block_with_hex_columns_stores_them(tmp_path: Path) -> None:
    """The seed's file shape with yield_today: the run ends normally, rows carry it."""
    import json
    import sqlite3

    sim_dir = tmp_path / "sim"
    with Simulator(["mppt"], sim_dir):
        proc = _run(tmp_path, ["V", "H20", "yield_today"], sim_dir)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(tmp_path / "state" / "store.sqlite") as db:
        rows = [json.loads(v) for (v,) in db.execute('SELECT "values" FROM rows')]
    assert any("yield_today" in r for r in rows), rows
