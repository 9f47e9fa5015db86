"""Config flow: scan + pick, typed path, no device, duplicate, renumbering, reconfigure, usb, options."""

from __future__ import annotations

import os
from unittest.mock import patch

import pytest
from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.usb import UsbServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from hw_sim import Simulator

from .helpers import DOMAIN

SETUP = "custom_components.vemonitor.async_setup_entry"


def _mppt_serial(sim: Simulator) -> str:
    return sim.devices["mppt"].serial if hasattr(sim.devices["mppt"], "serial") else \
        sim.devices["mppt"].written_fields["SER#"]


async def test_user_flow_scan_and_pick(hass: HomeAssistant, scan_sim: Simulator) -> None:
    """The scan lists both simulated devices with product, SER# and firmware; picking creates the entry."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    selector = result["data_schema"].schema["port"]
    labels = {o["value"]: o["label"] for o in selector.config["options"]}
    mppt_path, bmv_path = str(scan_sim.path("mppt")), str(scan_sim.path("bmv700"))
    assert set(labels) == {mppt_path, bmv_path}
    serial = scan_sim.devices["mppt"].written_fields["SER#"]
    assert labels[mppt_path].startswith(f"SmartSolar MPPT 75/15 - SER# {serial} - FW 1.59")
    assert labels[bmv_path].startswith("BMV-700 - SER# n/a - FW 3.08")

    with patch(SETUP, return_value=True) as setup:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": mppt_path})
        await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "SmartSolar MPPT 75/15"
    assert result["result"].unique_id == serial
    data = result["data"]
    assert data["port"] == mppt_path
    assert data["pid"] == "0xA053"
    assert data["serial"] == serial
    assert data["firmware"] == "1.59"
    assert {"V", "CS", "H19", "LOAD"} <= set(data["labels"])
    assert len(setup.mock_calls) == 1


async def test_user_flow_bmv_without_serial(hass: HomeAssistant, scan_sim: Simulator) -> None:
    """A BMV-700 sends no SER#: the unique_id falls back to the PID (no by-id cable serial here)."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    with patch(SETUP, return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": str(scan_sim.path("bmv700"))})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == "PID-0x0203"
    assert result["data"]["serial"] is None
    assert result["title"] == "BMV-700"


async def test_no_device(hass: HomeAssistant, scan_sim: Simulator, tmp_path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing path and a silent port give the no_device error; a good port then succeeds."""
    from custom_components.vemonitor import config_flow

    monkeypatch.setattr(config_flow, "PROBE_TIMEOUT", 0.5)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"port": str(tmp_path / "ttyUSB_missing")})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_device"}
    assert "No such file" in result["description_placeholders"]["reason"]

    master, slave = os.openpty()  # a serial port where nothing talks
    try:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": os.ttyname(slave)})
    finally:
        os.close(master)
        os.close(slave)
    assert result["errors"] == {"base": "no_device"}
    assert result["description_placeholders"]["reason"].startswith("no data")

    monkeypatch.setattr(config_flow, "PROBE_TIMEOUT", 3.0)
    with patch(SETUP, return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": str(scan_sim.path("mppt"))})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_duplicate_aborts(hass: HomeAssistant, scan_sim: Simulator) -> None:
    """The same device again aborts already_configured."""
    serial = scan_sim.devices["mppt"].written_fields["SER#"]
    path = str(scan_sim.path("mppt"))
    MockConfigEntry(domain=DOMAIN, unique_id=serial, data={"port": "/dev/ttyUSB9"}).add_to_hass(hass)
    entry = MockConfigEntry(domain=DOMAIN, unique_id="other", data={"port": "/dev/ttyUSB8"})
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    with patch(SETUP, return_value=True):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"port": path})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_duplicate_on_new_path_updates_port(hass: HomeAssistant, scan_sim: Simulator) -> None:
    """ttyUSB renumbering: the known device on another path updates the stored port."""
    serial = scan_sim.devices["mppt"].written_fields["SER#"]
    entry = MockConfigEntry(domain=DOMAIN, unique_id=serial, data={"port": "/dev/ttyUSB0"})
    entry.add_to_hass(hass)
    path = str(scan_sim.path("mppt"))
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    with patch(SETUP, return_value=True):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"port": path})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data["port"] == path


async def test_same_port_as_configured_entry_aborts(hass: HomeAssistant, scan_sim: Simulator) -> None:
    """A port held by a configured entry is not probed (its reader holds it): abort."""
    path = str(scan_sim.path("bmv700"))
    MockConfigEntry(domain=DOMAIN, unique_id="PID-0x0203", data={"port": path}).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    # The configured port is not offered again.
    options = [o["value"] for o in result["data_schema"].schema["port"].config["options"]]
    assert options == [str(scan_sim.path("mppt"))]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"port": path})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure(hass: HomeAssistant, scan_sim: Simulator) -> None:
    """Reconfigure moves the entry to the new port; another device there is refused."""
    serial = scan_sim.devices["mppt"].written_fields["SER#"]
    entry = MockConfigEntry(domain=DOMAIN, unique_id=serial,
                            data={"port": "/dev/ttyUSB3", "labels": ["V"]})
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"port": str(scan_sim.path("bmv700"))})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_device"
    assert entry.data["port"] == "/dev/ttyUSB3"

    result = await entry.start_reconfigure_flow(hass)
    with patch(SETUP, return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": str(scan_sim.path("mppt"))})
        await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["port"] == str(scan_sim.path("mppt"))
    assert "CS" in entry.data["labels"]


async def test_usb_discovery(hass: HomeAssistant, sim: Simulator) -> None:
    """A discovered VE.Direct cable is probed and offered for confirmation."""
    info = UsbServiceInfo(device=str(sim.path("mppt")), vid="0403", pid="6015",
                          serial_number="HQ2233ABCDE", manufacturer="VictronEnergy BV",
                          description="VE Direct cable")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USB}, data=info)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "usb_confirm"
    assert result["description_placeholders"]["product"] == "SmartSolar MPPT 75/15"
    with patch(SETUP, return_value=True):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == sim.devices["mppt"].written_fields["SER#"]


async def test_usb_discovery_bmv_uses_cable_serial(hass: HomeAssistant, sim: Simulator) -> None:
    """Without SER#, a discovered BMV is identified by PID + the cable's USB serial."""
    info = UsbServiceInfo(device=str(sim.path("bmv700")), vid="0403", pid="6015",
                          serial_number="HQ1234XYZ", manufacturer="VictronEnergy BV",
                          description="VE Direct cable")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USB}, data=info)
    assert result["step_id"] == "usb_confirm"
    with patch(SETUP, return_value=True):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["result"].unique_id == "PID-0x0203-cable-HQ1234XYZ"


async def test_usb_discovery_no_device(hass: HomeAssistant, tmp_path, monkeypatch) -> None:
    """A cable with nothing talking on it aborts quietly."""
    from custom_components.vemonitor import config_flow

    monkeypatch.setattr(config_flow, "PROBE_TIMEOUT", 0.3)
    info = UsbServiceInfo(device=str(tmp_path / "ttyUSB_gone"), vid="0403", pid="6015",
                          serial_number=None, manufacturer=None, description="VE Direct cable")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USB}, data=info)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_device"


async def test_options_flow(hass: HomeAssistant) -> None:
    """Options: stale timeout and the exposed fields."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="X", data={
        "port": "/dev/null", "labels": ["PID", "FW", "SER#", "V", "I", "CS", "LOAD", "H19"]})
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    options = [o["value"] for o in result["data_schema"].schema["fields"].config["options"]]
    assert options == ["V", "I", "LOAD", "H19", "CS"]  # field-table order, no identity fields
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"stale_after": 10, "fields": ["V", "H19"]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # No PID in the data: no control of a known family to offer.
    assert entry.options == {"stale_after": 10.0, "fields": ["V", "H19"], "controls": {}}
