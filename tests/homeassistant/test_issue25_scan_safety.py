"""Issue 25 point 7 in the config flow: a port another program holds (ZHA, zigbee2mqtt) is
neither listed nor opened, and a busy stick keeps its line settings (real ptys)."""

from __future__ import annotations

import os
import subprocess
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from hw_sim import Simulator

from .helpers import DOMAIN


@pytest.fixture
def holder(scan_sim: Simulator) -> Iterator[subprocess.Popen[str]]:
    """Another program holding the BMV's port open."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time; os.open(sys.argv[1], os.O_RDWR | "
         "os.O_NOCTTY); print('open', flush=True); time.sleep(120)",
         str(scan_sim.path("bmv700"))], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    yield proc
    proc.kill()
    proc.wait()


async def test_a_held_port_is_not_listed(hass: HomeAssistant, scan_sim: Simulator,
                                         holder: subprocess.Popen[str]) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    options = result["data_schema"].schema["port"].config["options"]
    assert [o["value"] for o in options] == [str(scan_sim.path("mppt"))]


async def test_a_typed_held_port_says_who_holds_it(hass: HomeAssistant, scan_sim: Simulator,
                                                   holder: subprocess.Popen[str]) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"port": str(scan_sim.path("bmv700"))})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_device"}
    assert f"in use by pid {holder.pid}" in result["description_placeholders"]["reason"]


async def test_a_busy_stick_keeps_its_settings(hass: HomeAssistant, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A free pty where a 'Zigbee stick' talks at 115200: the flow's scan never switches it."""
    from custom_components.vemonitor import config_flow

    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[4] = attrs[5] = termios.B115200
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    before = termios.tcgetattr(slave)
    (tmp_path / "ttyZB0").symlink_to(os.ttyname(slave))
    monkeypatch.setattr(config_flow, "SCAN_GLOBS", (str(tmp_path / "ttyZB*"),))
    stop = threading.Event()
    speeds: set[int] = set()

    def stick() -> None:
        while not stop.wait(0.01):
            os.write(master, bytes.fromhex("1ac038bc7e"))
            speeds.add(termios.tcgetattr(slave)[5])

    thread = threading.Thread(target=stick, daemon=True)
    thread.start()
    try:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER})
    finally:
        stop.set()
        thread.join(2)
        after = termios.tcgetattr(slave)
        os.close(master)
        os.close(slave)
    assert result["data_schema"].schema["port"].config["options"] == []
    assert speeds == {termios.B115200} and after == before
