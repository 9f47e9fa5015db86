"""Without the expected device: the ports probed, what each showed, the PID wanted, what to try.

Real ptys from hw_sim carry an MPPT while the connector wants a BMV (PID 0x203): the
warning names the port and the device on it, and says it again only every few minutes
(debug logs it after every search).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import vemonitor_integrations.vedirect.source as source_module
from vemonitor_integrations.vedirect import schema as vedirect_schema
from vemonitor_integrations.vedirect.scanner import SHARED_KEY, Scanner
from vemonitor_integrations.vedirect.schema import SerialTest, VedirectConnector
from vemonitor_integrations.vedirect.source import VedirectSource

from hw_sim import Simulator
from vemonitor.api import Context
from vemonitor.clock import SystemClock

BMV_TEST = {"t": {"typeTest": "value", "key": "PID", "value": "0x203"}}


def test_explain_names_each_port_and_what_it_carries(tmp_path: Path) -> None:
    """An MPPT on the only port: the line says PID 0x203 is wanted and what the port has."""
    sim_dir = tmp_path / "sim"
    with Simulator(["mppt"], sim_dir):
        scanner = Scanner(globs=(f"{sim_dir}/ttyVE_*",))
        assert scanner.find("bmv700", BMV_TEST, fresh=True) is None
        line = scanner.explain("bmv700", BMV_TEST)
    assert line.startswith("no device with PID 0x203 found; 1 port(s) probed: ")
    assert f"{sim_dir}/ttyVE_mppt: SmartSolar" in line
    assert "(PID 0xA053), not the device expected" in line
    assert "vemonitor scan" in line and "simulator.devices=[" in line


def test_explain_without_any_port_names_the_patterns(tmp_path: Path) -> None:
    """No port at all: the patterns searched are named (a missing cable, not a wrong device)."""
    scanner = Scanner(globs=(f"{tmp_path}/ttyUSB*",))
    assert scanner.find("bmv700", BMV_TEST, fresh=True) is None
    line = scanner.explain("bmv700", BMV_TEST)
    assert f"no serial port matches {tmp_path}/ttyUSB*" in line


@pytest.mark.timeout(120)
def test_the_warning_repeats_every_few_minutes_not_every_search(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches every 0.2 s; the warning once per GUIDANCE_EVERY, debug lines in between."""
    monkeypatch.setattr(source_module, "GUIDANCE_EVERY", 3.0)
    caplog.set_level(logging.DEBUG, logger="vemonitor_integrations.vedirect.source")
    config = VedirectConnector(serialTest={"t": SerialTest(typeTest=vedirect_schema.TestType.value, key="PID",
                                                           value="0x203")},
                               scan_globs=[f"{tmp_path}/ttyUSB*"], rescan_after=0.2)
    context = Context(clock=SystemClock(), state_dir=str(tmp_path))
    context.shared[SHARED_KEY] = Scanner(globs=(f"{tmp_path}/ttyUSB*",), timeout=0.2)
    source = VedirectSource("bmv700", config, context)
    source.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            if len(warnings) >= 2:
                break
            time.sleep(0.1)
    finally:
        source.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "PID 0x203" in
             r.getMessage()]
    assert len(warnings) >= 2
    assert "no device with PID 0x203 found" in warnings[0].getMessage()
    assert warnings[1].created - warnings[0].created >= 3.0  # not at every search
    assert len(debug) >= 2  # each search in between, at debug


def test_scan_without_ports_points_to_the_simulator(tmp_path: Path) -> None:
    """`vemonitor scan` on a machine with no serial port: the patterns, the cable, the Demo."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           "scan", "--glob", f"{tmp_path}/ttyUSB*"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"no serial ports match {tmp_path}/ttyUSB*")
    assert "'simulator.devices=[bmv700]'" in proc.stdout
