"""Entities from a simulated BMV-700 and MPPT: states, classes, device, unplug/replug, unload."""

from __future__ import annotations

import logging
import threading

import pytest
from homeassistant.components.sensor import ATTR_OPTIONS, ATTR_STATE_CLASS
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from hw_sim import Simulator

from .helpers import DOMAIN, entity_id, wait_for
from .helpers import setup_entry as _setup
from .helpers import the_device as _device


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("serial-")]


@pytest.fixture
async def bmv(hass: HomeAssistant, scan_sim: Simulator):
    entry = await _setup(hass, scan_sim, "bmv700")
    yield entry
    if entry.state is ConfigEntryState.LOADED:
        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def mppt(hass: HomeAssistant, scan_sim: Simulator):
    entry = await _setup(hass, scan_sim, "mppt")
    yield entry
    if entry.state is ConfigEntryState.LOADED:
        assert await hass.config_entries.async_unload(entry.entry_id)


def _numeric(hass: HomeAssistant, eid: str) -> bool:
    state = hass.states.get(eid)
    return state is not None and state.state not in (STATE_UNAVAILABLE, STATE_UNKNOWN)


async def test_bmv700_entities(hass: HomeAssistant, bmv, scan_sim: Simulator) -> None:
    uid = bmv.unique_id
    volt = entity_id(hass, "sensor", uid, "V")
    await wait_for(hass, lambda: _numeric(hass, volt), what="BMV voltage")
    state = hass.states.get(volt)
    assert 10.0 < float(state.state) < 16.0
    assert state.attributes[ATTR_DEVICE_CLASS] == "voltage"
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "V"
    assert state.attributes[ATTR_STATE_CLASS] == "measurement"

    soc = hass.states.get(entity_id(hass, "sensor", uid, "SOC"))
    assert soc.attributes[ATTR_DEVICE_CLASS] == "battery"
    assert soc.attributes[ATTR_UNIT_OF_MEASUREMENT] == "%"
    assert 0.0 <= float(soc.state) <= 100.0
    written = scan_sim.devices["bmv700"].written_fields
    assert abs(float(soc.state) - int(written["SOC"]) / 10) <= 1.0

    for label in ("H17", "H18"):  # energy dashboard candidates
        energy = hass.states.get(entity_id(hass, "sensor", uid, label))
        assert energy.attributes[ATTR_DEVICE_CLASS] == "energy"
        assert energy.attributes[ATTR_UNIT_OF_MEASUREMENT] == "kWh"
        assert energy.attributes[ATTR_STATE_CLASS] == "total_increasing"
        assert float(energy.state) >= 0

    ce = hass.states.get(entity_id(hass, "sensor", uid, "CE"))
    assert ce.attributes[ATTR_UNIT_OF_MEASUREMENT] == "Ah"
    assert ATTR_DEVICE_CLASS not in ce.attributes
    ttg_id = entity_id(hass, "sensor", uid, "TTG")
    ttg = hass.states.get(ttg_id)
    assert ttg.attributes[ATTR_DEVICE_CLASS] == "duration"
    # Names from translation keys: short entity ids, names without the field's notes.
    assert ttg_id == "sensor.bmv_700_time_to_go"
    assert ttg.attributes["friendly_name"] == "BMV-700 Time to go"
    assert entity_id(hass, "sensor", uid, "V") == "sensor.bmv_700_battery_voltage"

    registry = er.async_get(hass)
    # History counters: registered but disabled until the user enables them.
    deepest = registry.async_get(entity_id(hass, "sensor", uid, "H1"))
    assert deepest.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get(deepest.entity_id) is None
    assert registry.async_get(entity_id(hass, "sensor", uid, "H17")).disabled_by is None
    # Alarm reason explains the state: diagnostic.
    assert registry.async_get(entity_id(hass, "sensor", uid, "AR")).entity_category == "diagnostic"
    assert registry.async_get(ttg_id).entity_category is None

    alarm = hass.states.get(entity_id(hass, "binary_sensor", uid, "Alarm"))
    assert alarm.state in (STATE_ON, STATE_OFF)
    assert alarm.attributes[ATTR_DEVICE_CLASS] == "problem"
    assert hass.states.get(entity_id(hass, "binary_sensor", uid, "Relay")).state in (STATE_ON, STATE_OFF)
    ar = hass.states.get(entity_id(hass, "sensor", uid, "AR"))
    assert ar.attributes["code"] == 0 and ar.state == "none"

    # Identity fields are device info, not entities.
    ents = er.async_entries_for_config_entry(er.async_get(hass), bmv.entry_id)
    labels = {e.unique_id.removeprefix(f"{uid}_") for e in ents}
    assert not labels & {"PID", "FW", "BMV", "SER#"}
    device = _device(hass, bmv)
    assert (DOMAIN, uid) in device.identifiers
    assert device.manufacturer == "Victron Energy"
    assert device.model == "BMV-700"
    assert device.model_id == "0x0203"
    assert device.sw_version == "3.08"
    # No SER# in a BMV-700's TEXT: the serial number comes from HEX 0x010A (test_hex.py),
    # or is absent until the device answered.
    assert device.serial_number in (None, scan_sim.devices["bmv700"].hex.serial)
    assert {e.device_id for e in ents} == {device.id}


async def test_mppt_entities(hass: HomeAssistant, mppt, scan_sim: Simulator) -> None:
    uid = mppt.unique_id
    serial = scan_sim.devices["mppt"].written_fields["SER#"]
    assert uid == serial
    cs_id = entity_id(hass, "sensor", uid, "CS")
    await wait_for(hass, lambda: _numeric(hass, cs_id), what="MPPT charge state")
    cs = hass.states.get(cs_id)
    assert cs.attributes[ATTR_DEVICE_CLASS] == "enum"
    assert {"Off", "Bulk", "Absorption", "Float"} <= set(cs.attributes[ATTR_OPTIONS])
    assert cs.state in cs.attributes[ATTR_OPTIONS]
    assert isinstance(cs.attributes["code"], int)
    err = hass.states.get(entity_id(hass, "sensor", uid, "ERR"))
    assert err.state == "No error" and err.attributes[ATTR_DEVICE_CLASS] == "enum"
    tracker = hass.states.get(entity_id(hass, "sensor", uid, "MPPT"))
    assert tracker.state in tracker.attributes[ATTR_OPTIONS]

    for label in ("H19", "H20"):
        energy = hass.states.get(entity_id(hass, "sensor", uid, label))
        assert energy.attributes[ATTR_DEVICE_CLASS] == "energy"
        assert energy.attributes[ATTR_UNIT_OF_MEASUREMENT] == "kWh"
        assert energy.attributes[ATTR_STATE_CLASS] == "total_increasing"
    # Yesterday's yield jumps once a day: no state class (the Energy dashboard must not
    # count it), still an energy sensor in kWh.
    yesterday = hass.states.get(entity_id(hass, "sensor", uid, "H22"))
    assert yesterday.attributes[ATTR_DEVICE_CLASS] == "energy"
    assert yesterday.attributes[ATTR_UNIT_OF_MEASUREMENT] == "kWh"
    assert ATTR_STATE_CLASS not in yesterday.attributes
    for label in ("PPV", "H21", "H23"):
        power = hass.states.get(entity_id(hass, "sensor", uid, label))
        assert power.attributes[ATTR_DEVICE_CLASS] == "power"
        assert power.attributes[ATTR_UNIT_OF_MEASUREMENT] == "W"
    vpv = hass.states.get(entity_id(hass, "sensor", uid, "VPV"))
    assert vpv.attributes[ATTR_UNIT_OF_MEASUREMENT] == "V"
    il = hass.states.get(entity_id(hass, "sensor", uid, "IL"))
    assert il.attributes[ATTR_DEVICE_CLASS] == "current"
    load = hass.states.get(entity_id(hass, "binary_sensor", uid, "LOAD"))
    assert load.state in (STATE_ON, STATE_OFF)
    assert load.attributes[ATTR_DEVICE_CLASS] == "power"
    off_reason = hass.states.get(entity_id(hass, "sensor", uid, "OR"))
    assert "code" in off_reason.attributes

    # The registry shows the PID's name (TEXT) until the device's own model name (HEX
    # 0x010B) arrives, then that one (test_hex.py): wait for the final state, whose
    # timing depends on how soon the device answers HEX.
    await wait_for(hass, lambda: _device(hass, mppt).model == "SmartSolar Charger MPPT 75/15",
                   what="the device's own model name")
    device = _device(hass, mppt)
    assert (DOMAIN, uid) in device.identifiers
    assert device.manufacturer == "Victron Energy"
    assert device.sw_version == "1.59"
    assert device.serial_number == serial


async def test_unplug_makes_unavailable_then_recovers(
        hass: HomeAssistant, mppt, scan_sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    uid = mppt.unique_id
    volt = entity_id(hass, "sensor", uid, "V")
    load = entity_id(hass, "binary_sensor", uid, "LOAD")
    await wait_for(hass, lambda: _numeric(hass, volt), what="first data")
    caplog.set_level(logging.INFO, logger="custom_components.vemonitor")
    caplog.clear()

    scan_sim.unplug("mppt", seconds=3.0)
    await wait_for(hass, lambda: hass.states.get(volt).state == STATE_UNAVAILABLE,
                   timeout=10, what="unavailable after unplug")
    assert hass.states.get(load).state == STATE_UNAVAILABLE
    await wait_for(hass, lambda: _numeric(hass, volt), timeout=30, what="recovery after replug")
    assert hass.states.get(load).state in (STATE_ON, STATE_OFF)

    ours = [r for r in caplog.records if r.name == "custom_components.vemonitor"]
    # Exactly one line from the integration when it goes, one when it comes back.
    warnings = [r for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in ours]
    assert warnings[0].getMessage().endswith("is unavailable (unplugged or no data for 3 s)")
    assert len([r for r in ours if "available again" in r.getMessage()]) == 1


async def test_unload_stops_reader(hass: HomeAssistant, bmv) -> None:
    uid = bmv.unique_id
    volt = entity_id(hass, "sensor", uid, "V")
    await wait_for(hass, lambda: _numeric(hass, volt), what="first data")
    assert _reader_threads()
    assert await hass.config_entries.async_unload(bmv.entry_id)
    await hass.async_block_till_done()
    assert bmv.state is ConfigEntryState.NOT_LOADED
    assert not _reader_threads()
    assert hass.states.get(volt).state == STATE_UNAVAILABLE


async def test_options_limit_fields(hass: HomeAssistant, mppt) -> None:
    uid = mppt.unique_id
    result = await hass.config_entries.options.async_init(mppt.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"stale_after": 5, "fields": ["V", "H19", "LOAD"]})
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    assert mppt.state is ConfigEntryState.LOADED
    assert mppt.runtime_data.reader.stale_after == 5.0
    assert mppt.runtime_data.labels == ["V", "LOAD", "H19"]
    volt = entity_id(hass, "sensor", uid, "V")
    await wait_for(hass, lambda: _numeric(hass, volt), what="data after reload")
    # Entities of deselected fields are removed from the registry.
    assert er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{uid}_CS") is None
    ents = er.async_entries_for_config_entry(er.async_get(hass), mppt.entry_id)
    # (the option chooses TEXT fields; HEX sensors are enabled or disabled one by one)
    hex_keys = {f"{uid}_{s.key}" for s in mppt.runtime_data.hex_sensors}
    assert sorted(e.unique_id for e in ents if e.unique_id not in hex_keys) == sorted(
        f"{uid}_{x}" for x in ("V", "LOAD", "H19"))


async def test_diagnostics_redacts_serial(hass: HomeAssistant, mppt, scan_sim: Simulator) -> None:
    from custom_components.vemonitor.diagnostics import async_get_config_entry_diagnostics

    uid = mppt.unique_id
    await wait_for(hass, lambda: mppt.runtime_data.snapshot is not None
                   and "firmware" in mppt.runtime_data.hex.identity, what="a snapshot and HEX identity")
    diag = await async_get_config_entry_diagnostics(hass, mppt)
    serial = scan_sim.devices["mppt"].written_fields["SER#"]
    assert serial not in repr(diag)
    assert diag["entry"]["data"]["serial"] == "**REDACTED**"
    assert diag["snapshot"]["raw"]["SER#"] == "**REDACTED**"
    assert diag["snapshot"]["raw"]["PID"] == "0xA053"
    assert diag["available"] is True
    assert diag["stats"]["frames_ok"] > 0
    assert diag["stats"]["fields"] == {}  # no field left out of range
    assert uid == serial
    assert diag["hex"]["identity"]["serial"] == "**REDACTED**"
    assert diag["hex"]["identity"]["model"] == "SmartSolar Charger MPPT 75/15"
    assert diag["hex"]["answered"] is True and diag["hex"]["session"]["sent"] >= 4


async def test_homeassistant_stop_closes_reader(hass: HomeAssistant, bmv,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Home Assistant shutting down stops the reader thread even without an unload."""
    from homeassistant.const import EVENT_HOMEASSISTANT_STOP

    await wait_for(hass, lambda: bool(_reader_threads()), what="reader thread")
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert not _reader_threads()
    assert await hass.config_entries.async_unload(bmv.entry_id)
    assert "Unable to remove unknown" not in caplog.text


def test_diagnostics_port_hides_any_adapters_usb_serial() -> None:
    """Issue 14 item 11: the USB serial inside a /dev/serial/by-id path is redacted for any
    adapter (FTDI, Prolific, Victron's own), not only for Victron cables."""
    from custom_components.vemonitor.diagnostics import _redact_port

    for path, serial in (("/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K5XYZ-if00-port0",
                          "A10K5XYZ"),
                         ("/dev/serial/by-id/usb-VictronEnergy_BV_VE_Direct_cable_VE8XYZ12-"
                          "if00-port0", "VE8XYZ12")):
        assert serial not in _redact_port(path)
    assert _redact_port("/dev/ttyUSB0") == "/dev/ttyUSB0"
