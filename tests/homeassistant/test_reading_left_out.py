"""Issue 21: a reading left out (outside its range) is shown as not available, never as a
stale value: on the native component's entity and on the MQTT discovery entity.

The device stream is built with the project's encoder from a real SmartShunt 500A/50mV
layout (PID 0xA389): first cycles with the aux input unconnected (VS -14 mV, a real
reading), then cycles whose VS is impossible (999.999 V, left out by the decoder).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from homeassistant import config_entries
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import async_fire_mqtt_message

from hw_sim import Simulator
from hw_sim.records import SMARTSHUNT_HISTORY, SMARTSHUNT_MAIN
from vemonitor.vedirect.encoder import encode_block

from .helpers import DOMAIN, entity_id, wait_for
from .test_mqtt_discovery_schema import LAYOUT, ha

MAIN = SMARTSHUNT_MAIN
HISTORY = SMARTSHUNT_HISTORY


def _state(hass: HomeAssistant, eid: str) -> str:
    state = hass.states.get(eid)
    return state.state if state is not None else "missing"


async def test_native_entity_of_a_reading_left_out_is_unknown(
        hass: HomeAssistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """VS shows -0.014 V, then, once the device sends an impossible VS, unknown (not the
    old -0.014 shown as current); V and SOC of the same blocks keep showing."""
    from custom_components.vemonitor import config_flow

    good = encode_block(MAIN) + encode_block(HISTORY)
    bad = encode_block([(k, "999999" if k == "VS" else v) for k, v in MAIN]) + \
        encode_block(HISTORY)
    capture = tmp_path / "shunt.dump"
    capture.write_bytes(good * 6 + bad * 60)  # one cycle a second
    monkeypatch.setattr(config_flow, "SCAN_GLOBS", (str(tmp_path / "ttyVE_*"),))
    with Simulator([], directory=tmp_path, replays={"shunt": capture}, speed=1.0) as sim:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": str(sim.path("shunt"))})
        assert result["type"] == "create_entry", result
        entry = result["result"]
        await hass.async_block_till_done()
        aux = entity_id(hass, "sensor", entry.unique_id, "VS")
        volt = entity_id(hass, "sensor", entry.unique_id, "V")
        await wait_for(hass, lambda: _state(hass, aux) == "-0.014", what="VS -0.014 V")
        await wait_for(hass, lambda: _state(hass, aux) == STATE_UNKNOWN, timeout=30,
                       what="VS unknown once left out")
        assert _state(hass, volt) == "13.259"
        soc = entity_id(hass, "sensor", entry.unique_id, "SOC")
        assert _state(hass, soc) == "99.0"
        assert await hass.config_entries.async_unload(entry.entry_id)


# The mocked MQTT client never disconnects, so the MQTT integration's "misc" timer (paho's
# housekeeping, started on connect) outlives the test: the plugin's documented opt-out.
@pytest.mark.parametrize("expected_lingering_timers", [True])
async def test_mqtt_entity_of_a_reading_left_out_is_unknown(
        hass: HomeAssistant, mqtt_mock_entry, tmp_path: Path) -> None:
    """vemonitor's discovery config read by Home Assistant's MQTT integration: a state
    message without VS (the row left it out) makes the VS entity unknown, not stale."""
    # The MQTT integration reads configuration.yaml at setup: give it an empty one.
    (tmp_path / "configuration.yaml").write_text("{}\n")
    hass.config.config_dir = str(tmp_path)
    await mqtt_mock_entry()
    device = ha.identify({"available": True, "pid": "0xA389", "serial": "HQ2211ABCDE",
                          "product": "SmartShunt 500A/50mV", "firmware": "4.05"},
                         None, "Block_shunt", "shunt")
    components = dict(ha.component_config("shunt", label, label, device, LAYOUT)
                      for label in ("V", "VS"))
    topic, payload = ha.device_config(device, components, LAYOUT)
    async_fire_mqtt_message(hass, topic, ha.encode(payload))
    await hass.async_block_till_done()
    for availability in (LAYOUT.bridge_availability, LAYOUT.availability("shunt")):
        async_fire_mqtt_message(hass, availability, ha.ONLINE)
    registry = er.async_get(hass)
    ids = {label: registry.async_get_entity_id("sensor", "mqtt", components[label]["unique_id"])
           for label in ("V", "VS")}
    assert all(ids.values()), ids
    state_topic = LAYOUT.state("shunt")
    async_fire_mqtt_message(hass, state_topic, json.dumps({"time": 1, "V": 13.259,
                                                           "VS": -0.014}))
    await hass.async_block_till_done()
    assert [_state(hass, ids[k]) for k in ("V", "VS")] == ["13.259", "-0.014"]
    async_fire_mqtt_message(hass, state_topic, json.dumps({"time": 2, "V": 13.26}))
    await hass.async_block_till_done()
    assert _state(hass, ids["V"]) == "13.26"
    assert _state(hass, ids["VS"]) in (STATE_UNKNOWN, STATE_UNAVAILABLE)
    assert _state(hass, ids["VS"]) != "-0.014"
