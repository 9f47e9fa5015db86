"""The write budget: hourly sends, rows, local writes, requests and Redis commands per output,
printed at start, in dry_run and in the summary; limits refuse to start unless overridden."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli_run import _env
from tests.engine.helpers import Recorder, block_config, registry_with_recorders
from vemonitor import budget
from vemonitor.api import Context, SendCost
from vemonitor.config.build import build_run
from vemonitor.errors import ConfigError
from vemonitor.registry import Manifest, Registry
from vemonitor.schema import OutputItem

BMV = {"source": "bmv700", "time_interval": 1, "columns": ["V", "SOC"]}
CONNECTORS = {"redis": {"local": {"host": "127.0.0.1", "port": 6399}},
              "emoncms": {"local": {"addr": "http://127.0.0.1:8099", "apikey": "k" * 32}},
              "mqtt": {"local": {"host": "127.0.0.1", "port": 1899}}}


def _spec(tmp_path: Path, outputs: dict[str, Any], registry: Registry,
          inputs: dict[str, Any] | None = None) -> Any:
    config = block_config(tmp_path / "sim", inputs or {"bmv": BMV}, outputs, tmp_path / "state")
    config["appConnectors"].update(CONNECTORS)
    return build_run(config, registry)


# (output domain, item settings) -> sends, rows, local writes, requests, Redis commands per hour
CASES = [
    ("sqlite", {"time_interval": 1, "cache_interval": 5}, (720, 3600, 2160, 0, 0)),
    ("console", {"time_interval": 1, "cache_interval": 1}, (3600, 3600, 0, 0, 0)),
    ("emoncms", {"source": "local", "time_interval": 10, "cache_interval": 6}, (60, 3600, 120, 60, 0)),
    ("mqtt", {"source": "local", "time_interval": 5, "cache_interval": 1}, (720, 3600, 1440, 3600, 0)),
    ("redis", {"source": "local", "redis_node": "n", "time_interval": 1, "cache_interval": 5},
     (720, 3600, 1440, 720, 720 * 8)),
    ("redis", {"source": "local", "stream_prefix": "vm", "structure": "Stream",
               "time_interval": 1, "cache_interval": 5}, (720, 3600, 1440, 720, 720 * 3 + 3600)),
]


@pytest.mark.parametrize(("domain", "item", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_hourly_figures_per_output(tmp_path: Path, domain: str, item: dict[str, Any],
                                   expected: tuple[float, ...]) -> None:
    registry = Registry().discover()
    spec = _spec(tmp_path, {domain: {"out": item}}, registry)
    [cost] = budget.budget(spec, registry)
    assert (cost.sends, cost.rows, cost.local_writes, cost.requests,
            cost.redis_commands) == pytest.approx(expected)


def test_rows_count_every_input_an_output_reads(tmp_path: Path) -> None:
    """Two inputs (1 s and 10 s) into one store: 3600 + 360 rows an hour."""
    registry = Registry().discover()
    inputs = {"fast": BMV, "slow": {**BMV, "time_interval": 10}}
    spec = _spec(tmp_path, {"sqlite": {"out": {"time_interval": 1, "cache_interval": 10}}},
                 registry, inputs)
    [cost] = budget.budget(spec, registry)
    assert (cost.sends, cost.rows) == (360, 3960)


def test_a_third_party_output_declares_its_own_cost(tmp_path: Path) -> None:
    registry = registry_with_recorders({})
    registry.manifests["pricey"] = Manifest("pricey", "Pricey", "1", ("output",))

    def factory(item: OutputItem, connector: Any, ctx: Context) -> Recorder:
        return Recorder()

    registry.register("pricey", output_item=OutputItem, sink_factory=factory,
                      cost=SendCost(local_writes=3, requests="row"))
    spec = _spec(tmp_path, {"pricey": {"p": {"time_interval": 2, "cache_interval": 1}}},
                 registry)
    [cost] = budget.budget(spec, registry)
    assert (cost.sends, cost.local_writes, cost.requests) == (1800, 1800 * 5, 3600)


def test_a_limit_refuses_to_start_unless_overridden(tmp_path: Path) -> None:
    registry = Registry().discover()
    outputs = {"emoncms": {"em": {"source": "local", "time_interval": 1, "cache_interval": 1,
                                  "max_requests_per_hour": 600}},
               "sqlite": {"store": {"time_interval": 1, "cache_interval": 1,
                                    "max_writes_per_hour": 20000}}}
    spec = _spec(tmp_path, outputs, registry)
    with pytest.raises(ConfigError) as err:
        budget.check(spec, registry)
    assert str(err.value) == (
        "budget: output em: 3600 requests_per_hour expected, over its max_requests_per_hour=600 "
        "(raise time_interval or cache_interval, or start anyway with budget_override=true)")
    assert budget.check(spec, registry, override=True) == [
        "output em: 3600 requests_per_hour expected, over its max_requests_per_hour=600"]


def test_sendcost_refuses_an_unknown_request_kind() -> None:
    with pytest.raises(ValueError, match="'send', 'row' or None"):
        SendCost(requests="batch")


def _vemonitor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vemonitor", f"state_dir={tmp_path}/state",
                           *args], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=60)


def test_dry_run_prints_the_plan_and_budget_and_starts_nothing(tmp_path: Path) -> None:
    proc = _vemonitor(tmp_path, "block=BatteryMonitor", "dry_run=true")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "block BatteryMonitor (dry run: nothing started)",
        "  input  bmv700: vedirect:bmv700 every 1 s, columns V, I, P, CE, SOC, Alarm, AR, "
        "Relay, H2, H17, H18",
        "  output store: sqlite every 1 s, batches of 5 ticks",
        "expected per hour:",
        "  output store (sqlite): 720 sends, 3600 rows, 2160 local writes"]
    assert not (tmp_path / "state" / "store.sqlite").exists()
    assert not (tmp_path / "state" / "outbox").exists()


def test_a_limit_on_the_command_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = _vemonitor(tmp_path, "block=BatteryMonitor",
                      "+block.outputs.sqlite.store.max_writes_per_hour=1000")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "vemonitor: config error: budget: output store: 2160 writes_per_hour expected, over its "
        "max_writes_per_hour=1000 (raise time_interval or cache_interval, or start anyway with "
        "budget_override=true)"]


def test_override_runs_with_a_warning_and_the_summary_holds_the_budget(tmp_path: Path) -> None:
    proc = _vemonitor(tmp_path, "+block.outputs.sqlite.store.max_writes_per_hour=1000",
                      "budget_override=true", "speed=5", "duration=10")
    assert proc.returncode == 0, proc.stderr
    assert ("WARNING vemonitor: budget override: output store: 2160 writes_per_hour expected, "
            "over its max_writes_per_hour=1000") in proc.stderr
    assert "expected per hour:" in proc.stderr  # printed at start
    summary = json.loads((tmp_path / "state" / "summary.json").read_text())
    assert summary["budget"]["store"] == {
        "domain": "sqlite", "sends_per_hour": 720.0, "rows_per_hour": 7200.0,
        "local_writes_per_hour": 2160.0, "requests_per_hour": 0.0,
        "redis_commands_per_hour": 0.0}
    assert summary["budget"]["screen"]["local_writes_per_hour"] == 0.0  # in-memory outbox
