"""Control from Home Assistant (issue 23), end to end through the simulator's ptys.

The options flow enables controls (with the dry-run choice); switch, select and number
entities write through the core's DeviceControls; every result is an event; an entity
is unavailable while a precondition fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import async_capture_events

from hw_sim import Simulator

from .helpers import setup_entry as _setup
from .helpers import wait_for

EVENT = "vemonitor_control_result"


async def _enable(hass: HomeAssistant, entry: config_entries.ConfigEntry,
                  **modes: str) -> dict:
    """Enable controls through the options flow (the entry reloads); return the form."""
    form = await hass.config_entries.options.async_init(entry.entry_id)
    assert form["type"] == "form"
    result = await hass.config_entries.options.async_configure(
        form["flow_id"], {"stale_after": 3, "fields": entry.options.get(
            "fields", [label for label in entry.data["labels"] if label not in (
                "PID", "FW", "FWE", "SER#", "BMV", "HC#")]), **modes})
    assert result["type"] == "create_entry", result
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return form


def _available(hass: HomeAssistant, eid: str) -> bool:
    state = hass.states.get(eid)
    return state is not None and state.state != STATE_UNAVAILABLE


@pytest.fixture
def state_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A config folder of this test's own: the audit log, rate limits and NV budget
    (<config>/vemonitor) must not carry over from another test."""
    hass.config.config_dir = str(tmp_path / "config")
    return tmp_path / "config" / "vemonitor"


@pytest.fixture
async def entries(hass: HomeAssistant):
    made: list[config_entries.ConfigEntry] = []
    yield made.append
    for entry in made:
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)


async def test_each_control_end_to_end(hass: HomeAssistant, scan_sim: Simulator,
                                       state_dir: Path, entries) -> None:
    """Switch the load, limit the charge current, switch the charger off: each written,
    read back, seen in the simulator's device, and fired as an event."""
    entry = await _setup(hass, scan_sim, "mppt")
    entries(entry)
    form = await _enable(hass, entry, load_output="enabled", charge_current_limit="enabled",
                         charger="enabled")
    # The form offers the MPPT's controls, each off by default.
    keys = {str(key): key.default() for key in form["data_schema"].schema
            if str(key) in ("charger", "charge_current_limit", "load_output", "relay")}
    assert keys == dict.fromkeys(("charger", "charge_current_limit", "load_output", "relay"),
                                 "disabled")
    events = async_capture_events(hass, EVENT)
    load, limit, charger = ("select.smartsolar_mppt_75_15_load_output_mode",
                            "number.smartsolar_mppt_75_15_charge_current_limit",
                            "switch.smartsolar_mppt_75_15_charger")
    # Available once identity and limits are read; the limit itself is unknown (0x2015
    # is "not available" while nobody holds it).
    await wait_for(hass, lambda: all(_available(hass, eid) for eid in (load, limit, charger)),
                   timeout=30, what="the controls to be usable")
    device = scan_sim.devices["mppt"]
    hexdev = device.hex

    # Load output: the select shows the device's mode and writes the other one.
    state = hass.states.get(load)
    assert state.attributes["options"] == ["off", "auto", "on"]
    assert state.attributes["dry_run"] is False
    target = "on" if state.state == "off" else "off"
    await hass.services.async_call("select", "select_option",
                                   {"entity_id": load, "option": target}, blocking=True)
    assert hexdev.settings[0xEDAB] == bytes([{"off": 0, "on": 4}[target]])
    assert hass.states.get(load).state == target
    await wait_for(hass, lambda: device.written_fields.get("LOAD") == target.upper(),
                   what="the simulator's LOAD to follow")

    # Charge current limit: a lease, in 0.1 A, up to the device's own maximum (15 A).
    state = hass.states.get(limit)
    assert (state.attributes["min"], state.attributes["max"], state.attributes["step"],
            state.attributes["unit_of_measurement"]) == (0.0, 15.0, 0.1, "A")
    await hass.services.async_call("number", "set_value", {"entity_id": limit, "value": 5.2},
                                   blocking=True)
    assert hexdev.settings[0x2015] == (52).to_bytes(2, "little")
    state = hass.states.get(limit)
    assert float(state.state) == 5.2
    assert state.attributes["lease_until"] > 0

    # Charger off: the device's mode register and its state of operation follow.
    await hass.services.async_call("switch", "turn_off", {"entity_id": charger}, blocking=True)
    assert hexdev.settings[0x0200] == b"\x04"
    assert hass.states.get(charger).state == "off"
    await wait_for(hass, lambda: device.written_fields.get("CS") == "0",
                   what="the charger to stop")

    await hass.async_block_till_done()
    writes = [e.data for e in events if e.data["event"] == "write"]
    assert [(d["control"], d["result"], d["new"]) for d in writes] == [
        ("load_output", "ok", target), ("charge_current_limit", "ok", 5.2),
        ("charger", "ok", "off")]
    device_id = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)[0].id
    for data in writes:
        assert data["surface"] == "ha" and data["entry_id"] == entry.entry_id
        assert data["device_id"] == device_id and data["frame"].startswith(":8")
        assert data["reply"] and data["readback"] == data["new"]
    assert writes[2]["frame"] == ":80002000447"  # HEX.md §2.3's charger-off frame
    assert writes[1]["caller"] == limit
    assert (state_dir / "control.sqlite").is_file()  # the audit log
    from custom_components.vemonitor.diagnostics import async_get_config_entry_diagnostics

    diag = (await async_get_config_entry_diagnostics(hass, entry))["controls"]
    assert diag["stats"]["results"] == {"load_output/ok": 1, "charge_current_limit/ok": 1,
                                        "charger/ok": 1}
    assert diag["stats"]["nv_writes_today"] == 1  # the load output's mode (NV)
    assert {v["name"] for v in diag["views"]} == {"load_output", "charge_current_limit",
                                                 "charger"}
    assert all(v["device"] == "**REDACTED**" for v in diag["views"])

    # Unloading ends the held lease (the device falls back to its maximum): an event.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    ends = [e.data for e in events if e.data["event"] == "lease_end"]
    assert [(d["control"], d["new"]) for d in ends] == [("charge_current_limit", None)]
    assert "lease ended" in ends[0]["reason"]


async def test_dry_run_writes_nothing_and_a_refusal_is_an_error(
        hass: HomeAssistant, scan_sim: Simulator, state_dir: Path, entries) -> None:
    """Dry run: the frame that would be sent, nothing written. A value off the 0.1 A step:
    refused with the check's one line, as an error in HA and an event."""
    entry = await _setup(hass, scan_sim, "mppt")
    entries(entry)
    await _enable(hass, entry, charger="dry_run", charge_current_limit="enabled")
    events = async_capture_events(hass, EVENT)
    charger, limit = ("switch.smartsolar_mppt_75_15_charger",
                      "number.smartsolar_mppt_75_15_charge_current_limit")
    await wait_for(hass, lambda: _available(hass, charger) and _available(hass, limit), timeout=30,
                   what="the controls to be usable")
    assert hass.states.get(charger).attributes["dry_run"] is True
    hexdev = scan_sim.devices["mppt"].hex
    mode_before = hexdev.settings[0x0200]
    await hass.services.async_call("switch", "turn_off", {"entity_id": charger}, blocking=True)
    assert hexdev.settings[0x0200] == mode_before  # nothing written
    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call("number", "set_value",
                                       {"entity_id": limit, "value": 2.05}, blocking=True)
    assert "not a multiple of 0.1 A" in str(raised.value.translation_placeholders)
    await hass.async_block_till_done()
    assert [(e.data["control"], e.data["result"]) for e in events] == [
        ("charger", "dry_run"), ("charge_current_limit", "refused")]
    assert events[0].data["frame"] == ":80002000447"
    assert events[1].data["frame"] == "" and "multiple of 0.1 A" in events[1].data["reason"]


async def test_a_failed_precondition_makes_the_entity_unavailable(
        hass: HomeAssistant, scan_sim: Simulator, state_dir: Path, entries,
        caplog: pytest.LogCaptureFixture) -> None:
    """A BMV-700's relay outside remote mode (0x034F != 2) cannot be written: the switch
    is unavailable, and the reason is logged once."""
    entry = await _setup(hass, scan_sim, "bmv700")
    entries(entry)
    form = await _enable(hass, entry, relay="enabled")
    assert [str(key) for key in form["data_schema"].schema][2:] == ["relay"]  # BMV: relay only
    relay = "switch.bmv_700_relay_control"

    def reasons() -> list[str]:
        return [r.getMessage() for r in caplog.records if "relay unavailable" in r.getMessage()]

    # First "identity: not read on this connection yet", then the relay mode's condition.
    await wait_for(hass, lambda: any("not 2 (remote)" in line for line in reasons()),
                   timeout=30, what="the relay's precondition to be judged and logged")
    assert hass.states.get(relay).state == STATE_UNAVAILABLE
    assert reasons()[-1] == ("BMV-700: relay unavailable: condition: relay mode (0x034F) is 0, "
                             "not 2 (remote)")
    assert len(reasons()) == len(set(reasons()))  # each reason logged once


async def test_the_relay_in_remote_mode_switches(hass: HomeAssistant, scan_sim: Simulator,
                                                 state_dir: Path, entries) -> None:
    """A BMV-700 whose relay mode is remote (0x034F = 2, set on the device's own menu):
    the relay switch writes 0x034E, reads it back, shows it and fires the event
    (HEX.md §8.2: the relay only in remote mode, on a BMV or a charger with a relay)."""
    bmv = scan_sim.devices["bmv700"].hex
    assert bmv is not None
    bmv.settings[0x034F] = b"\x02"
    entry = await _setup(hass, scan_sim, "bmv700")
    entries(entry)
    await _enable(hass, entry, relay="enabled")
    relay = "switch.bmv_700_relay_control"
    events = async_capture_events(hass, EVENT)
    await wait_for(hass, lambda: _available(hass, relay), timeout=30,
                   what="the relay to be usable")
    target = "off" if hass.states.get(relay).state == "on" else "on"
    await hass.services.async_call("switch", f"turn_{target}", {"entity_id": relay},
                                   blocking=True)
    assert bmv.settings[0x034E] == (b"\x01" if target == "on" else b"\x00")
    assert hass.states.get(relay).state == target
    await hass.async_block_till_done()
    writes = [e.data for e in events if e.data["event"] == "write"]
    assert [(d["control"], d["result"], d["new"]) for d in writes] == [("relay", "ok", target)]
    assert writes[0]["readback"] == target and writes[0]["frame"].startswith(":84E03")


async def test_no_control_enabled_means_no_control_entity(hass: HomeAssistant,
                                                          scan_sim: Simulator,
                                                          state_dir: Path, entries) -> None:
    """The default: no controls object, no entity, no state folder."""
    entry = await _setup(hass, scan_sim, "mppt")
    entries(entry)
    assert entry.runtime_data.controls is None
    assert not [s for s in hass.states.async_all() if s.domain in ("switch", "select", "number")]
    assert not state_dir.exists()
