"""HEX in the native component (issue 22), against the simulator through ptys.

Identity in the device registry, HEX sensors with values and classes, the MPPT's day
record as "yesterday", a device that ignores HEX, another device on a renumbered port.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from homeassistant import config_entries
from homeassistant.components.sensor import ATTR_STATE_CLASS
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from hw_sim import Simulator

from .helpers import DOMAIN, entity_id, wait_for
from .helpers import setup_entry as _setup
from .helpers import the_device as _device


def _has_value(hass: HomeAssistant, eid: str) -> bool:
    state = hass.states.get(eid)
    return state is not None and state.state not in (STATE_UNAVAILABLE, STATE_UNKNOWN)


async def _enable(hass: HomeAssistant, entry: config_entries.ConfigEntry, *eids: str) -> None:
    """Enable disabled-by-default entities, as a user does, and reload the entry."""
    registry = er.async_get(hass)
    for eid in eids:
        assert registry.async_get(eid).disabled_by is er.RegistryEntryDisabler.INTEGRATION
        registry.async_update_entity(eid, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
async def unload(hass: HomeAssistant):
    """Unload the entries a test set up (the reader threads stop)."""
    entries: list[config_entries.ConfigEntry] = []
    yield entries.append
    for entry in entries:
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)


async def test_identity_fills_the_device_registry(hass: HomeAssistant, scan_sim: Simulator,
                                                  unload) -> None:
    """Model name (0x010B), serial (0x010A) and firmware (0x0102) read at connect."""
    mppt = await _setup(hass, scan_sim, "mppt")
    bmv = await _setup(hass, scan_sim, "bmv700")
    unload(mppt)
    unload(bmv)
    sim_mppt, sim_bmv = scan_sim.devices["mppt"].hex, scan_sim.devices["bmv700"].hex
    await wait_for(hass, lambda: _device(hass, mppt).model == "SmartSolar Charger MPPT 75/15"
                   and _device(hass, bmv).model == "BMV-700", what="HEX model names")
    device = _device(hass, mppt)
    assert device.serial_number == sim_mppt.serial
    assert device.sw_version == "1.59"
    assert device.model_id == "0xA053"
    # The BMV-700 sends no SER# in TEXT: its serial number comes from HEX only, and is
    # kept in the entry to recognise the device after a renumbering.
    await wait_for(hass, lambda: _device(hass, bmv).serial_number == sim_bmv.serial
                   and "model" in bmv.data, what="BMV-700 serial number and model over HEX")
    assert bmv.data["hex_serial"] == sim_bmv.serial
    assert bmv.data["model"] == "BMV-700"
    assert _device(hass, bmv).sw_version == "3.08"


async def test_hex_sensors_have_values_and_classes(hass: HomeAssistant, scan_sim: Simulator,
                                                   unload) -> None:
    """Registers and the last closed day's record, with the register table's classes."""
    entry = await _setup(hass, scan_sim, "mppt")
    unload(entry)
    uid = entry.unique_id
    registry = er.async_get(hass)
    # Carried by TEXT too (H20, H21, IL, H22): registered, disabled by default.
    twins = [entity_id(hass, "sensor", uid, key) for key in
             ("yield_today", "max_power_today", "load_current", "day_yield_kwh")]
    assert all(registry.async_get(eid).disabled_by for eid in twins)
    await _enable(hass, entry, *twins)
    yield_today, max_power, load_current, yesterday = twins
    bulk = entity_id(hass, "sensor", uid, "day_bulk_min")
    temperature = entity_id(hass, "sensor", uid, "battery_temperature")
    assert registry.async_get(bulk).disabled_by is None  # TEXT has no such value
    await wait_for(hass, lambda: all(_has_value(hass, eid) for eid in (*twins, bulk)),
                   what="HEX sensor values")

    state = hass.states.get(yield_today)
    assert state.attributes[ATTR_DEVICE_CLASS] == "energy"
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "kWh"
    assert state.attributes[ATTR_STATE_CLASS] == "total_increasing"
    assert state.attributes["register"] == "0xEDD3"
    written = scan_sim.devices["mppt"].written_fields
    assert abs(float(state.state) - int(written["H20"]) / 100) <= 0.02  # HEX agrees with TEXT
    state = hass.states.get(load_current)
    assert (state.attributes[ATTR_DEVICE_CLASS], state.attributes[ATTR_UNIT_OF_MEASUREMENT],
            state.attributes[ATTR_STATE_CLASS]) == ("current", "A", "measurement")
    assert 0.0 <= float(state.state) <= 15.0
    state = hass.states.get(max_power)
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "W"
    assert abs(float(state.state) - int(written["H21"])) <= 5

    # Yesterday from the device's own day record (0x1051): the simulator's archived day.
    state = hass.states.get(yesterday)
    assert state.attributes[ATTR_DEVICE_CLASS] == "energy"
    assert ATTR_STATE_CLASS not in state.attributes  # steps once a day
    assert state.attributes["register"] == "0x1051"
    assert float(state.state) == pytest.approx(int(written["H22"]) / 100, abs=0.011)
    state = hass.states.get(bulk)
    assert (state.attributes[ATTR_DEVICE_CLASS], state.attributes[ATTR_UNIT_OF_MEASUREMENT]) == (
        "duration", "min")
    assert int(float(state.state)) >= 0
    for key, unit in (("day_battery_v_max", "V"), ("day_battery_v_min", "V"),
                      ("day_pv_v_max", "V"), ("day_float_min", "min")):
        state = hass.states.get(entity_id(hass, "sensor", uid, key))
        assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == unit
        assert float(state.state) >= 0
    # The MPPT has no battery temperature sensor: the device says "not available"
    # (0xFFFF), which is unknown, never 382.2 °C (HEX.md Q6).
    state = hass.states.get(temperature)
    assert state.attributes[ATTR_DEVICE_CLASS] == "temperature"
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "°C"
    assert state.state == STATE_UNKNOWN
    # The names: translated, distinct from the TEXT entities' names.
    assert yesterday == "sensor.smartsolar_mppt_75_15_yield_yesterday_history"


async def test_monitor_capacity_and_no_charger_sensors(hass: HomeAssistant, scan_sim: Simulator,
                                                       unload) -> None:
    """A BMV-700: the battery capacity setting (0x1000); no MPPT register is offered."""
    entry = await _setup(hass, scan_sim, "bmv700")
    unload(entry)
    uid = entry.unique_id
    capacity = entity_id(hass, "sensor", uid, "capacity")
    await wait_for(hass, lambda: _has_value(hass, capacity), what="capacity")
    state = hass.states.get(capacity)
    assert float(state.state) == 200  # the simulator's 0x1000 setting
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "Ah"
    registry = er.async_get(hass)
    for key in ("yield_today", "load_current", "day_yield_kwh"):
        assert registry.async_get_entity_id("sensor", DOMAIN, f"{uid}_{key}") is None


async def test_a_device_ignoring_hex_keeps_its_text_entities(hass: HomeAssistant,
                                                             scan_sim: Simulator,
                                                             unload) -> None:
    """RX used for remote on/off (HEX.md Q4): TEXT as before, HEX entities unavailable."""
    scan_sim.devices["mppt"].hex.ignore_hex = True
    entry = await _setup(hass, scan_sim, "mppt")
    unload(entry)
    uid = entry.unique_id
    volt = entity_id(hass, "sensor", uid, "V")
    bulk = entity_id(hass, "sensor", uid, "day_bulk_min")
    reader = entry.runtime_data.reader
    await wait_for(hass, lambda: reader.hex is not None and reader.hex.unresponsive,
                   timeout=30, what="the session to give up on HEX")
    await wait_for(hass, lambda: _has_value(hass, volt), what="TEXT voltage")
    assert hass.states.get(bulk).state == STATE_UNAVAILABLE
    assert scan_sim.devices["mppt"].hex.counters.ignored >= 3
    device = _device(hass, entry)
    assert device.model == "SmartSolar MPPT 75/15"  # the PID's name, from TEXT
    assert device.serial_number == entry.data["serial"]
    assert "model" not in entry.data and "hex_serial" not in entry.data
    assert reader.stats.frames_ok > 0 and not reader.stats.rejected


async def test_another_device_on_the_port_raises_a_repair_issue(hass: HomeAssistant,
                                                                tmp_path: Path,
                                                                unload) -> None:
    """A renumbered port now carries another MPPT: a repair issue, entities unavailable;
    the configured device back on the port clears it."""
    with Simulator(["mppt", "mppt_fwe"], directory=tmp_path / "two", speed=1.0) as sim:
        for device in sim:
            device.wait_blocks(2, timeout=10.0)
        entry = await _setup(hass, sim, "mppt")
        unload(entry)
        volt = entity_id(hass, "sensor", entry.unique_id, "V")
        await wait_for(hass, lambda: _has_value(hass, volt), what="voltage")
        assert await hass.config_entries.async_unload(entry.entry_id)
        # The port's name now leads to the other device (ttyUSB0 <-> ttyUSB1).
        hass.config_entries.async_update_entry(
            entry, data={**entry.data, "port": str(sim.path("mppt_fwe"))})
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        issue_id = f"wrong_device_{entry.entry_id}"
        issues = ir.async_get(hass)
        await wait_for(hass, lambda: issues.async_get_issue(DOMAIN, issue_id) is not None,
                       what="the repair issue")
        issue = issues.async_get_issue(DOMAIN, issue_id)
        assert issue.severity is ir.IssueSeverity.ERROR
        assert issue.translation_key == "wrong_device"
        reason = issue.translation_placeholders["reason"]
        assert reason.startswith("serial number") and entry.data["serial"] in reason
        await hass.async_block_till_done()
        assert hass.states.get(volt).state == STATE_UNAVAILABLE
        assert _device(hass, entry).serial_number == entry.data["serial"]  # not the stranger's

        # The configured device is back on the port: the issue goes, the values return.
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert issues.async_get_issue(DOMAIN, issue_id) is None
        hass.config_entries.async_update_entry(
            entry, data={**entry.data, "port": str(sim.path("mppt"))})
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_for(hass, lambda: _has_value(hass, volt), what="voltage again")
        assert issues.async_get_issue(DOMAIN, issue_id) is None
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_day_roll_reads_the_day_record_again(hass: HomeAssistant, scan_sim: Simulator,
                                                     unload) -> None:
    """When TEXT's HSDS moves on (the device's day rolled), yesterday is read again."""
    entry = await _setup(hass, scan_sim, "mppt")
    unload(entry)
    device = entry.runtime_data
    bulk = entity_id(hass, "sensor", entry.unique_id, "day_bulk_min")
    await wait_for(hass, lambda: _has_value(hass, bulk), what="the day record")
    asked: list[object] = []
    real = device.reader.request_hex
    device.reader.request_hex = lambda request: (asked.append(request), real(request))[1]
    device._day_seq = "364"  # as if the last block had shown another device day
    await wait_for(hass, lambda: any(getattr(r, "register", None) == 0x1051 for r in asked),
                   what="the day record asked again")
    device.reader.request_hex = real
