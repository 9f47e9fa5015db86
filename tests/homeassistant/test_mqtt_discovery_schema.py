"""vemonitor's MQTT discovery payloads, read by the MQTT integration of the Home Assistant
installed here (its own abbreviation expansion, device discovery schema, shared-option
merge and per-platform discovery schemas, as components/mqtt/discovery.py applies them)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from homeassistant.components.mqtt import binary_sensor as mqtt_binary_sensor
from homeassistant.components.mqtt import discovery as mqtt_discovery
from homeassistant.components.mqtt import number as mqtt_number
from homeassistant.components.mqtt import schemas as mqtt_schemas
from homeassistant.components.mqtt import select as mqtt_select
from homeassistant.components.mqtt import sensor as mqtt_sensor
from homeassistant.components.mqtt import switch as mqtt_switch
from homeassistant.components.mqtt.const import PAYLOAD_NONE
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vemonitor.vedirect.fields import FIELD_BY_LABEL


def _discovery_module() -> ModuleType:
    """Load integrations/mqtt/discovery.py alone (the package needs the daemon's deps)."""
    path = Path(__file__).resolve().parents[2] / "integrations" / "mqtt" / "discovery.py"
    spec = importlib.util.spec_from_file_location("vemonitor_mqtt_discovery", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ha = _discovery_module()

LAYOUT = ha.Layout("vemonitor", "homeassistant", "vemonitor-pi-Block-mqtt", "Block", "0.1.0", 1)
MPPT = ha.identify({"available": True, "pid": "0xA053", "serial": "HQ2211ABCDE",
                    "product": "SmartSolar MPPT 75/15", "firmware": "1.59", "hardware": "2"},
                   None, "Block_mppt", "mppt")
BMV = ha.identify({"available": True, "pid": "0x203", "serial": None, "product": "BMV-700",
                   "firmware": "3.08"}, None, "Block_bmv", "bmv")
PLATFORM_SCHEMAS = {"sensor": mqtt_sensor.DISCOVERY_SCHEMA,
                    "binary_sensor": mqtt_binary_sensor.DISCOVERY_SCHEMA,
                    "switch": mqtt_switch.DISCOVERY_SCHEMA,
                    "select": mqtt_select.DISCOVERY_SCHEMA,
                    "number": mqtt_number.DISCOVERY_SCHEMA}


def ha_reads(text: str) -> dict[str, dict[str, Any]]:
    """Return component id -> validated entity config, as Home Assistant reads a device config."""
    payload = mqtt_discovery.MQTTDiscoveryPayload(json.loads(text))
    mqtt_discovery._replace_all_abbreviations(payload)
    mqtt_schemas.DEVICE_DISCOVERY_SCHEMA(payload)  # raises Invalid, as HA would log it
    entities = {}
    for key, component in payload["components"].items():
        config = dict(component)
        platform = config.pop("platform")
        if not config:  # only the platform: HA removes this component
            continue
        merged = mqtt_discovery.MQTTDiscoveryPayload(config)
        merged["device"] = payload["device"]
        merged["origin"] = payload["origin"]
        mqtt_discovery._merge_common_device_options(merged, payload)
        entities[key] = PLATFORM_SCHEMAS[platform](dict(merged))
    return entities


def every_field(device: Any) -> str:
    assert device is not None
    labels = sorted(set(FIELD_BY_LABEL) - ha.IDENTITY_LABELS)
    components = dict(ha.component_config("node", label, label, device, LAYOUT)
                      for label in labels)
    return ha.encode(ha.device_config(device, components, LAYOUT)[1])


@pytest.mark.parametrize("device", [MPPT, BMV], ids=["mppt", "bmv"])
def test_every_field_of_a_device_config_passes_home_assistant(device: Any) -> None:
    entities = ha_reads(every_field(device))
    assert len(entities) == len(set(FIELD_BY_LABEL) - ha.IDENTITY_LABELS)
    volt = entities["V"]
    assert volt["device"]["model_id"] == ("0xA053" if device is MPPT else "0x0203")
    assert volt["origin"]["support_url"] == ha.SUPPORT_URL
    assert "state_class" not in entities["H22"] or entities["H22"]["state_class"] is None
    assert str(entities["H19"]["state_class"]) in ("total_increasing",
                                                    "SensorStateClass.TOTAL_INCREASING")


def test_bridge_config_passes_home_assistant() -> None:
    entities = ha_reads(ha.encode(ha.bridge_config(LAYOUT)[1]))
    assert list(entities) == ["connectivity"]


def test_removal_marker_passes_home_assistant() -> None:
    """A dropped component sent as its platform only: valid, and HA removes it."""
    assert MPPT is not None
    components = dict([ha.component_config("node", "V", "V", MPPT, LAYOUT)])
    topic, payload = ha.device_config(MPPT, components, LAYOUT)
    payload["cmps"].update(ha.removed_components({"LOAD": "binary_sensor"}, payload))
    assert set(ha_reads(ha.encode(payload))) == {"V"}


def test_migrate_payload_is_what_home_assistant_expects() -> None:
    payload = mqtt_discovery.MQTTDiscoveryPayload(json.loads(ha.MIGRATE_PAYLOAD))
    assert mqtt_discovery._async_process_discovery_migration(payload) is True
    assert payload.migrate_discovery is True


def control(name: str, kind: str, options: tuple[str, ...], **number: Any) -> Any:
    """Return a control as the core's ControlView shows it (issue 23's contract)."""
    shown = {"minimum": None, "maximum": None, "step": None, "unit": None, **number}
    return SimpleNamespace(device="mppt", name=name, kind=kind, options=options, value=None,
                           unavailable=None, dry_run=False, **shown)


CONTROLS = [control("charger", "switch", ("off", "on")),
            control("relay", "switch", ("off", "on")),
            control("load_output", "select", ("off", "auto", "on")),
            control("charge_current_limit", "number", (), minimum=0.0, maximum=15.0, step=0.1,
                    unit="A")]


def test_controls_pass_home_assistant_as_switch_select_and_number() -> None:
    """Issue 23: the controls in the device config, read by HA's own schemas."""
    assert MPPT is not None
    components = dict([ha.component_config("mppt", "V", "V", MPPT, LAYOUT)])
    for view in CONTROLS:
        key, config = ha.control_config(view, MPPT, LAYOUT)
        components[key] = config
    entities = ha_reads(ha.encode(ha.device_config(MPPT, components, LAYOUT)[1]))
    charger, relay = entities["control_charger"], entities["control_relay"]
    load, limit = entities["control_load_output"], entities["control_charge_current_limit"]
    assert charger["command_topic"] == "vemonitor/mppt/control/charger/set"
    assert (charger["payload_on"], charger["state_off"]) == ("on", "off")
    assert relay["unique_id"] == "vemonitor_HQ2211ABCDE_control_relay"
    assert load["options"] == ["off", "auto", "on"]
    assert (limit["min"], limit["max"], limit["step"]) == (0.0, 15.0, 0.1)
    assert limit["unit_of_measurement"] == "A"
    assert str(limit["mode"]) in ("box", "NumberMode.BOX")
    assert [a["topic"] for a in load["availability"]][-1] == (
        "vemonitor/mppt/control/load_output/availability")
    assert load["retain"] is False and load["state_topic"] == load["json_attributes_topic"]


def test_an_unknown_control_value_renders_what_home_assistant_reads_as_unknown() -> None:
    """The state's ``value`` is null while never read: the template renders "None", which
    the switch (PAYLOAD_NONE), the select ("none") and the number (payload_reset) all read
    as unknown."""
    assert MPPT is not None
    for view in CONTROLS:
        key, config = ha.control_config(view, MPPT, LAYOUT)
        entity = ha_reads(ha.encode(ha.device_config(MPPT, {key: config}, LAYOUT)[1]))[key]
        source = entity["value_template"].template
        rendered = ImmutableSandboxedEnvironment().from_string(source).render(
            value_json={"value": None})
        unknown = {"switch": PAYLOAD_NONE, "select": "None", "number": entity.get("payload_reset")}
        assert rendered == unknown[view.kind]
