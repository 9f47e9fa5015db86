"""Issue 25 point 8: one secret policy (sweep labels, startup_nodes) and every security
warning said by a dry run too (influxDb2 ``verify_ssl: false`` included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from vemonitor_integrations.influxdb2.schema import InfluxConnector
from vemonitor_integrations.redis.schema import RedisConnector

from vemonitor.api import load_item as typed

PASSWORD = "Hunter2secret"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"))
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def _files_holding(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()
            and text.encode() in p.read_bytes()]


def test_sweep_summary_labels_never_print_a_command_line_password(tmp_path: Path) -> None:
    """`vemonitor -m ... password=X,Y`: each job's summary is labelled with its overrides,
    the password masked (it was printed in clear)."""
    proc = _run(tmp_path, "-m", "duration=1", f"state_dir={tmp_path / 'state'}",
                "~block.outputs.console", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                f"+appConnectors.redis.x.password={PASSWORD},Other2secret")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("[job ") == 2
    assert "+appConnectors.redis.x.password=***]" in proc.stdout
    for secret in (PASSWORD, "Other2secret"):
        assert secret not in proc.stdout + proc.stderr
        assert not _files_holding(tmp_path, secret)


def test_startup_nodes_with_credentials_are_refused_in_one_line(tmp_path: Path) -> None:
    """`startup_nodes: ["u:PW@host:port"]` passed validation and PW showed in a WARNING;
    now it is a config error (exit 2) that never shows PW."""
    proc = _run(tmp_path, "block=BatteryMonitor", "simulator.devices=[bmv700]",
                f"state_dir={tmp_path / 'state'}",
                f"+appConnectors.redis.local.startup_nodes=[u:{PASSWORD}@127.0.0.1:7000]",
                "+block.outputs.redis.ts.source=local", "+block.outputs.redis.ts.redis_node=s")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "startup_nodes[0] must be host:port" in lines[0], lines
    assert PASSWORD not in proc.stdout + proc.stderr
    assert not _files_holding(tmp_path, PASSWORD)


@pytest.mark.parametrize("node", ["redis://u:pw@h:1", "u:pw@h:1", ":pw@h:1"])
def test_every_credential_form_in_startup_nodes_is_refused(node: str) -> None:
    with pytest.raises(Exception) as caught:
        typed(RedisConnector, {"startup_nodes": ["h:1", node]}, "f.yaml",
              "appConnectors.redis.c")
    assert "startup_nodes[1]" in str(caught.value) and "pw" not in str(caught.value)


def test_influx_verify_ssl_false_is_a_security_risk_on_https_only() -> None:
    off = InfluxConnector(host="https://influx.example:8086", verify_ssl=False)
    assert off.risks() and "verify_ssl=false" in off.risks()[0]
    assert InfluxConnector(host="https://influx.example:8086").risks() == []
    # The seed's own setting on plain http: nothing to verify, nothing to say.
    assert InfluxConnector(host="http://192.168.1.5:8082", verify_ssl=False).risks() == []


def test_dry_run_says_every_security_warning_a_real_start_says(tmp_path: Path) -> None:
    """influxDb2 verify_ssl=false and Redis ssl_cert_reqs=none: the same 'security:' lines
    from `dry_run=true` (it printed none) and from a real start."""
    args = ["block=BatteryMonitor", "simulator.devices=[bmv700]",
            f"state_dir={tmp_path / 'state'}",
            "+appConnectors.influxDb2.ix.host=https://127.0.0.1:9",
            "+appConnectors.influxDb2.ix.verify_ssl=false",
            "+block.outputs.influxDb2.iv.source=ix", "+block.outputs.influxDb2.iv.db=b",
            "+appConnectors.redis.local.host=127.0.0.1", "+appConnectors.redis.local.port=9",
            "+appConnectors.redis.local.ssl=true", "+appConnectors.redis.local.ssl_cert_reqs=none",
            "+block.outputs.redis.ts.source=local", "+block.outputs.redis.ts.redis_node=s"]
    dry = _run(tmp_path, *args, "dry_run=true")
    real = _run(tmp_path, *args, "duration=1")
    assert dry.returncode == 0 and real.returncode == 0, dry.stderr + real.stderr

    def security(text: str) -> list[str]:
        return sorted(line for line in text.splitlines() if "security:" in line)

    assert len(security(real.stderr)) == 2, real.stderr
    assert security(dry.stderr) == security(real.stderr)
    assert any("influxDb2 https://127.0.0.1:9" in line for line in security(dry.stderr))
