"""The daemon's side: Context.controls from the serial connector's keys, a write through it,
and the metrics endpoint (issue 23 points 1 and 3)."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.engine.helpers import Recorder, block_config, registry_with_recorders, running
from tests.servers import free_port
from tests.shared import wait_until
from vemonitor.api import ConfigError, ControlResult, Controls
from vemonitor.config.build import build_run
from vemonitor.metrics import serve
from vemonitor.registry import Registry


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _config(tmp_path: Path, controls: dict[str, object]) -> dict[str, object]:
    inputs = {"solar": {"source": "mppt", "time_interval": 1, "columns": ["V", "LOAD"]}}
    outputs = {"record": {"out": {"time_interval": 1, "cache_interval": 2}}}
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
    config["appConnectors"]["serial"]["mppt"]["controls"] = controls  # type: ignore[index]
    return config


def test_context_controls_write_through_the_daemon_and_show_in_metrics(tmp_path: Path) -> None:
    """A connector with load_output enabled: Context.controls holds it under the input's name
    (the key rows use), a request writes the simulator, results and the NV count are metrics."""
    recorders: dict[str, Recorder] = {}
    config = _config(tmp_path, {"load_output": {"enabled": True, "dry_run": False}})
    port = free_port()
    with running(config, recorders, ["mppt"], tmp_path / "sim") as (engine, sim):
        controls = engine.context.controls
        assert isinstance(controls, Controls)
        server = serve(engine, port)
        runner = threading.Thread(target=engine.run, args=(60,), daemon=True)
        runner.start()
        try:
            assert wait_until(lambda: controls.views()[0].unavailable is None, 20.0)
            view = controls.views()[0]
            assert (view.device, view.name, view.dry_run) == ("solar", "load_output", False)
            seen: list[ControlResult] = []
            controls.subscribe(seen.append)
            target = "off" if view.value != "off" else "on"
            result = controls.request("solar", "load_output", target, surface="mqtt",
                                      caller="vemonitor/solar/load_output/set")
            assert result.result == "ok", result.reason
            assert seen == [result]
            hexdev = sim.devices["mppt"].hex
            assert hexdev is not None and hexdev.settings[0xEDAB] == (
                b"\x00" if target == "off" else b"\x04")
            other = controls.request("nope", "load_output", "on", surface="mqtt", caller="x")
            assert other.result == "refused" and other.reason.startswith("device: 'nope'")
            live = _scrape(port)
        finally:
            engine.stop()
            runner.join(30)
            server.shutdown()
    labels = (("control", "load_output"), ("device", "solar"), ("result", "ok"))
    assert live[("vemonitor_control_results_total", labels)] == 1
    assert live[("vemonitor_control_nv_writes_today", (("device", "solar"),))] == 1
    assert live[("vemonitor_control_nv_budget", (("device", "solar"),))] == 20
    wait = live[("vemonitor_control_rate_limit_wait_seconds",
                 (("control", "load_output"), ("device", "solar")))]
    assert 0 < wait <= 60


def test_no_control_enabled_means_no_controls(tmp_path: Path) -> None:
    """Off by default: Context.controls is None."""
    with running(_config(tmp_path, {}), {}, ["mppt"], tmp_path / "sim") as (engine, _sim):
        assert engine.context.controls is None


def test_unknown_control_key_is_a_config_error(tmp_path: Path) -> None:
    """controls.<name> only for the allow-list; nv_writes_per_day at most 20."""
    registry: Registry = registry_with_recorders({})
    for controls, message in (({"relay_invert": {"enabled": True}}, "relay_invert"),
                              ({"nv_writes_per_day": 50}, "nv_writes_per_day must be 0..20")):
        try:
            build_run(_config(tmp_path, controls), registry)
        except ConfigError as err:
            assert message in str(err)
        else:
            raise AssertionError(f"{controls} was accepted")
