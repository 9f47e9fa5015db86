"""The installed `vemonitor` script, run as a user would: demo, SIGTERM, sweeps, scan, --cfg."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw_sim import Simulator


def _env(tmp_path: Path) -> dict[str, str]:
    """Return an environment isolated from the user's own config and state."""
    env = dict(os.environ)
    env.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"),
               PYTHONUNBUFFERED="1")
    return env


def _vemonitor(*args: str) -> list[str]:
    return [sys.executable, "-c", "from vemonitor.cli import main; main()", *args]


def test_demo_runs_with_no_hardware_and_stores_rows(tmp_path: Path) -> None:
    """`vemonitor duration=5`: simulator, live lines, sqlite store, summary.json, exit 0."""
    state = tmp_path / "state"
    proc = subprocess.run(_vemonitor("duration=5", f"state_dir={state}"), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "summary of block Demo" in proc.stdout
    summary = json.loads((state / "summary.json").read_text())
    assert summary["inputs"]["bmv700"]["rows"] >= 3
    assert summary["devices"]["bmv700"]["frames_ok"] > 0
    assert summary["outputs"]["store"]["points"] > 0
    with sqlite3.connect(state / "store.sqlite") as db:
        sources = {row[0] for row in db.execute("select source from rows")}
    assert sources == {"bmv700", "solar"}


def test_sigterm_flushes_and_exits_zero_with_summary(tmp_path: Path) -> None:
    """SIGTERM stops inputs, flushes the gathered rows, prints the summary and exits 0."""
    state = tmp_path / "state"
    never_full = "block.outputs.sqlite.store.cache_interval=1000"
    proc = subprocess.Popen(_vemonitor(f"state_dir={state}", never_full),
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    # Wait for rows on the screen (lines mode: stdout is a pipe), not a fixed time: a
    # loaded machine can take longer than any sleep to start the Demo.
    assert proc.stdout is not None
    rows_seen = 0
    deadline = time.monotonic() + 90
    while rows_seen < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        rows_seen += " bmv700 " in line
    assert rows_seen >= 3, "the Demo showed no rows"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "summary of block Demo" in out
    summary = json.loads((state / "summary.json").read_text())
    # cache_interval 1000 never fills: every point stored came from the shutdown flush.
    assert summary["outputs"]["store"]["batches"] == 1
    assert summary["outputs"]["store"]["rows"] == (summary["inputs"]["bmv700"]["rows"]
                                                   + summary["inputs"]["solar"]["rows"])


def test_multirun_sweep_runs_each_job_and_writes_its_summary(tmp_path: Path) -> None:
    """-m with cache_interval=1,4 runs two jobs to their end; write rates follow the setting."""
    state = tmp_path / "state"
    proc = subprocess.run(
        _vemonitor("-m", "block=BatteryMonitor", "simulator.devices=[bmv700]", "duration=6",
                   f"state_dir={state}", "block.outputs.sqlite.store.cache_interval=1,4"),
        env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("summary of block BatteryMonitor") == 2
    summaries = sorted(state.glob("multirun/*/*/summary.json"))
    assert len(summaries) == 2
    first, second = (json.loads(p.read_text())["outputs"]["store"] for p in summaries)
    assert first["batches"] > second["batches"] > 0


def test_scan_lists_each_simulated_device(tmp_path: Path) -> None:
    """`vemonitor scan` shows product, serial number and firmware of each device found."""
    with Simulator(["bmv700", "mppt", "mppt_fwe"], tmp_path / "sim"):
        proc = subprocess.run(_vemonitor("scan", "--glob", str(tmp_path / "none*"),
                                         "--sim-dir", str(tmp_path / "sim"), "--json"),
                              env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = {Path(d["path"]).name: d for d in map(json.loads, proc.stdout.splitlines())}
    assert found["ttyVE_bmv700"]["product"] == "BMV-700"
    assert found["ttyVE_bmv700"]["firmware"] == "3.08"
    assert found["ttyVE_mppt"]["product"] == "SmartSolar MPPT 75/15"
    assert found["ttyVE_mppt"]["serial"].startswith("HQ")
    assert found["ttyVE_mppt_fwe"]["product"] == "SmartSolar MPPT 150/70 rev2"
    assert found["ttyVE_mppt_fwe"]["firmware"] == "3.16"


def test_scan_explains_why_nothing_was_found(tmp_path: Path) -> None:
    """A port with no VE.Direct device is listed with the reason, and the exit status is 1."""
    with Simulator(["bmv700"], tmp_path / "sim") as sim:
        sim.stall("bmv700", 30)
        proc = subprocess.run(_vemonitor("scan", "--glob", str(tmp_path / "sim" / "ttyVE_*"),
                                         "--timeout", "1.5"),
                              env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "nothing found: no data" in proc.stdout


def test_cfg_job_prints_config_with_secrets_redacted(tmp_path: Path) -> None:
    """--cfg job prints the composed config; a password never appears, even from the env."""
    env = _env(tmp_path)
    env["VM_TEST_SECRET"] = "hunter2-very-secret"
    proc = subprocess.run(_vemonitor("--cfg", "job", "--resolve",
                                     "+appConnectors.redis.local.password=${oc.env:VM_TEST_SECRET}",
                                     "+appConnectors.redis.local.host=127.0.0.1"),
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr
    assert "password: '***'" in proc.stdout
    assert "name: Demo" in proc.stdout


def test_help_and_integrations_list(tmp_path: Path) -> None:
    """--help works; `vemonitor integrations` lists the built-in integrations."""
    assert subprocess.run(_vemonitor("--help"), env=_env(tmp_path), capture_output=True,
                          timeout=60).returncode == 0
    proc = subprocess.run(_vemonitor("integrations", "--json"), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    listed = {row["domain"]: row for row in json.loads(proc.stdout)}
    for domain in ("vedirect", "console", "sqlite"):
        assert listed[domain]["error"] is None
        assert listed[domain]["version"]


@pytest.mark.parametrize("style", ["seed flags", "hydra override"])
def test_legacy_config_dir_runs_its_block(tmp_path: Path, style: str) -> None:
    """A vm_conf.yaml + Imports directory runs with `--block X --debug` or `block=X config_dir=D`."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    sim_dir = tmp_path / "sim"
    (legacy / "vm_conf.yaml").write_text("""
Imports: ["vm-connectors.yml"]
appBlocks:
  - name: "bmv-monitor"
    app: "batSerialMonitor"
    inputs:
      serial:
        - name: "bmv700"
          source: "bmv700"
          time_interval: 1
          columns: ['V', 'I', 'SOC']
    outputs:
      sqlite:
        - name: store
          time_interval: 1
          cache_interval: 2
""")
    (legacy / "vm-connectors.yml").write_text(f"""
appConnectors:
  serial:
    bmv700:
      serialPort: "{sim_dir}/ttyVE_bmv700"
""")
    state = tmp_path / "state"
    args = (["--block", "bmv-monitor", "--debug"] if style == "seed flags"
            else ["block=bmv-monitor"])
    with Simulator(["bmv700"], sim_dir):
        proc = subprocess.run(_vemonitor(*args, f"config_dir={legacy}", "duration=4",
                                         f"state_dir={state}"),
                              env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((state / "summary.json").read_text())
    assert summary["block"] == "bmv-monitor"
    assert summary["inputs"]["bmv700"]["rows"] >= 2
    if style == "seed flags":
        assert "DEBUG" in proc.stderr


def test_user_config_dirs_come_before_packaged_blocks(tmp_path: Path) -> None:
    """~/.vemonitor: a legacy vm_conf.yaml block named like a shipped one wins with the seed's
    `--block X --debug`; a Hydra block file there is found by name."""
    home = tmp_path / "home" / ".vemonitor"
    (home / "block").mkdir(parents=True)
    sim_dir = tmp_path / "sim"
    (home / "vm_conf.yaml").write_text(f"""
appConnectors:
  serial:
    bmv700: {{serialPort: "{sim_dir}/ttyVE_bmv700"}}
appBlocks:
  - name: BatteryMonitor
    inputs:
      serial: [{{name: mine, source: bmv700, time_interval: 1, columns: [V]}}]
    outputs:
      sqlite: [{{name: store, cache_interval: 1}}]
""")
    (home / "block" / "Mine.yaml").write_text("""
name: Mine
inputs:
  serial:
    house: {source: bmv700, columns: [SOC]}
outputs:
  sqlite:
    store: {cache_interval: 1}
""")
    with Simulator(["bmv700"], sim_dir):
        legacy = subprocess.run(_vemonitor("--block", "BatteryMonitor", "--debug", "duration=3",
                                           f"state_dir={tmp_path / 's1'}"),
                                env=_env(tmp_path), capture_output=True, text=True, timeout=60)
        mine = subprocess.run(_vemonitor("block=Mine", "duration=3", f"state_dir={tmp_path / 's2'}",
                                         f"+appConnectors.serial.bmv700.serialPort={sim_dir}/ttyVE_bmv700"),
                              env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert legacy.returncode == 0, legacy.stderr
    assert list(json.loads((tmp_path / "s1" / "summary.json").read_text())["inputs"]) == ["mine"]
    assert mine.returncode == 0, mine.stderr
    assert list(json.loads((tmp_path / "s2" / "summary.json").read_text())["inputs"]) == ["house"]
