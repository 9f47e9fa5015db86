"""Serial connectors with serialTest find their devices by scanning, among several devices."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from vemonitor_integrations.vedirect import source as vedirect_source
from vemonitor_integrations.vedirect.scanner import Scanner
from vemonitor_integrations.vedirect.source import VedirectSource

from hw_sim import FaultConfig, Simulator
from tests.engine.helpers import Recorder, registry_with_recorders
from tests.shared import wait_until
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine
from vemonitor.scan import candidate_ports, probe


def _scan_config(tmp_path: Path, glob: str) -> dict[str, object]:
    pid_test = {"typeTest": "value", "key": "PID"}
    return {
        "block": {"name": "Scan", "inputs": {"serial": {
            "house": {"source": "house", "columns": ["V", "SOC"]},
            "solar": {"source": "solar", "columns": ["PPV", "CS"]},
            "solar2": {"source": "solar2", "columns": ["PPV", "CS"]},
        }}, "outputs": {"record": {"out": {"cache_interval": 1}}}},
        "appConnectors": {"serial": {
            "house": {"serialTest": {"t": {**pid_test, "value": "0x0203"}}, "scan_globs": [glob],
                      "rescan_after": 2},
            "solar": {"serialTest": {"t": {**pid_test, "value": "0xA053"}}, "scan_globs": [glob]},
            "solar2": {"serialTest": {"s": {"typeTest": "columns", "columns": ["VPV", "FWE"]}},
                       "scan_globs": [glob]},
        }},
        "state_dir": str(tmp_path / "state"),
    }


def test_each_connector_claims_the_device_that_passes_its_tests(tmp_path: Path) -> None:
    """Three devices, three connectors (value and columns tests): each gets its own port."""
    sim_dir = tmp_path / "sim"
    recorders: dict[str, Recorder] = {}
    registry = registry_with_recorders(recorders)
    spec = build_run(_scan_config(tmp_path, f"{sim_dir}/ttyVE_*"), registry)
    with Simulator(["bmv700", "mppt", "mppt_fwe"], sim_dir):
        engine = Engine(spec, registry, SystemClock())
        engine.run(4)
    ports = {name: source.stats()["port"] for name, source in engine.sources.items()}
    assert ports == {"vedirect:house": f"{sim_dir}/ttyVE_bmv700",
                     "vedirect:solar": f"{sim_dir}/ttyVE_mppt",
                     "vedirect:solar2": f"{sim_dir}/ttyVE_mppt_fwe"}
    rows = recorders["out"].rows()
    assert {row.input for row in rows} == {"house", "solar", "solar2"}


def test_a_device_that_moves_to_another_port_is_found_again(tmp_path: Path) -> None:
    """The BMV disappears from one port and shows up on another: the connector follows it."""
    sim_dir = tmp_path / "sim"
    with _house_on_usb0(tmp_path, sim_dir) as (source, first):
        assert source.stats()["port"] == f"{sim_dir}/ttyVE_usb0"
        first.__exit__(None, None, None)
        with Simulator(["bmv700:usb1"], sim_dir):
            assert wait_until(lambda: source.stats()["port"] == f"{sim_dir}/ttyVE_usb1"
                         and source.stats()["available"], 30)


@contextmanager
def _house_on_usb0(tmp_path: Path, sim_dir: Path) -> Iterator[tuple[VedirectSource, Simulator]]:
    """Yield the started 'house' connector (serialTest: a BMV-700) and the BMV on usb0.

    The caller stops that simulator when it wants the device gone; the engine stops here.
    """
    recorders: dict[str, Recorder] = {}
    registry = registry_with_recorders(recorders)
    config = _scan_config(tmp_path, f"{sim_dir}/ttyVE_*")
    block = config["block"]
    assert isinstance(block, dict)
    block["inputs"] = {"serial": {"house": {"source": "house", "columns": ["V"]}}}
    spec = build_run(config, registry)
    first = Simulator(["bmv700:usb0"], sim_dir)
    first.__enter__()
    engine = Engine(spec, registry, SystemClock())
    engine.start()
    source = engine.sources["vedirect:house"]
    assert isinstance(source, VedirectSource)
    try:
        yield source, first
    finally:
        engine.shutdown()
        first.__exit__(None, None, None)


def test_corrupted_blocks_while_probing_do_not_fail_the_scan(tmp_path: Path) -> None:
    """With 30 % corrupted blocks and HEX noise a probe still identifies the device."""
    faults = FaultConfig(corrupt=0.3, hex=0.5, noise=0.1, seed=5)
    with Simulator(["bmv700"], tmp_path / "sim", faults=faults):
        result = probe(str(tmp_path / "sim" / "ttyVE_bmv700"), timeout=6)
    assert result.found and result.snapshot is not None
    assert result.snapshot.product == "BMV-700"
    assert result.rejected >= 0


def test_a_claimed_port_is_not_given_to_another_connector(tmp_path: Path) -> None:
    """Two connectors with the same test: the second finds nothing rather than sharing a port."""
    with Simulator(["bmv700"], tmp_path / "sim") as _sim:
        scanner = Scanner(globs=(f"{tmp_path}/sim/ttyVE_*",))
        tests = {"t": {"typeTest": "value", "key": "PID", "value": "0x203"}}
        assert scanner.find("a", tests) is not None
        assert scanner.find("b", tests) is None
        assert candidate_ports((f"{tmp_path}/sim/ttyVE_*",)) == [f"{tmp_path}/sim/ttyVE_bmv700"]


def test_another_device_on_the_port_is_noticed_from_its_first_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The BMV's port now carries an MPPT: its first snapshot wakes the supervisor.

    The supervisor looks at a healthy device only every HEALTHY_LOOK_S (issue 24: a look
    a second was a tenth of the daemon's CPU); here every look is an hour away once the
    BMV is read, so only the wake-up from the failing snapshot can detach the port.
    """
    sim_dir = tmp_path / "sim"
    with _house_on_usb0(tmp_path, sim_dir) as (source, first):
        assert wait_until(lambda: source.stats()["available"], 30)
        monkeypatch.setattr(vedirect_source, "HEALTHY_LOOK_S", 3600.0)
        monkeypatch.setattr(vedirect_source, "SICK_LOOK_S", 3600.0)
        time.sleep(1.5)  # the look due within a second (before the patch) goes by first
        first.__exit__(None, None, None)
        caplog.set_level(logging.WARNING, logger=vedirect_source.__name__)
        with Simulator(["mppt:usb0"], sim_dir):
            assert wait_until(lambda: "no longer passes serialTest" in caplog.text, 30)
            assert source.stats()["port"] != f"{sim_dir}/ttyVE_usb0" or not \
                source.stats()["available"]
