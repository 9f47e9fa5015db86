"""Discovery payloads follow Home Assistant's documented MQTT schema, field by field (no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from vemonitor_integrations.mqtt import discovery as ha

from vemonitor.vedirect import tables
from vemonitor.vedirect.fields import FIELD_BY_LABEL

LAYOUT = ha.Layout("vemonitor", "homeassistant", "vemonitor-pi-TestBlock-mqtt", "TestBlock",
                   "0.1.0", 1)
MPPT = ha.DeviceInfo(key="HQ2211ABCDE", name="SmartSolar MPPT 75/15 HQ2211ABCDE",
                     model="SmartSolar MPPT 75/15", sw_version="1.59", serial="HQ2211ABCDE",
                     model_id="0xA053", hw_version="rev2")

# home-assistant.io/integrations/sensor.mqtt and binary_sensor.mqtt: configuration variables.
COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "device_class", "enabled_by_default", "encoding",
    "entity_category", "entity_picture", "expire_after", "force_update", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "platform", "qos", "state_topic",
    "unique_id", "value_template"}
ALLOWED = {
    "sensor": COMMON_KEYS | {"last_reset_value_template", "options", "state_class",
                             "suggested_display_precision", "unit_of_measurement"},
    "binary_sensor": COMMON_KEYS | {"off_delay", "payload_off", "payload_on"},
}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer",
               "model", "model_id", "name", "serial_number", "suggested_area", "sw_version",
               "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
# Units Home Assistant accepts for each device class we use (sensor device classes doc).
UNITS = {"voltage": {"V"}, "current": {"A"}, "power": {"W"}, "apparent_power": {"VA"},
         "battery": {"%"}, "temperature": {"°C"}, "energy": {"kWh"},
         "duration": {"min", "s"}}


def render(template: str, state: dict[str, Any]) -> str:
    """Render a value_template the way Home Assistant does (value_json = the JSON payload)."""
    env = ImmutableSandboxedEnvironment()
    return env.from_string(template).render(value_json=state, value=json.dumps(state))


def entity(component: dict[str, Any], device_payload: dict[str, Any]) -> dict[str, Any]:
    """Return one component's config as Home Assistant assembles it from a device config.

    (components/mqtt/discovery.py: the component's own keys, plus the device block, the
    origin and the shared options such as qos that the component does not set.)
    """
    merged = {k: v for k, v in component.items() if k != "p"}
    merged.update(device=device_payload["dev"], origin=device_payload["o"])
    merged.setdefault("qos", device_payload["qos"])
    return merged


def config(label: str, column: str | None = None, node: str = "mppt",
           device: ha.DeviceInfo = MPPT) -> tuple[str, dict[str, Any]]:
    """Return (platform, entity config) of one field, through its device's config."""
    key, component = ha.component_config(node, column or label, label, device, LAYOUT)
    topic, payload = ha.device_config(device, {key: component}, LAYOUT)
    assert topic == f"homeassistant/device/vemonitor_{device.key}/config"
    return component["p"], entity(component, payload)


def check_schema(component: str, payload: dict[str, Any]) -> None:
    """Assert a payload uses only documented keys and carries what HA requires."""
    assert set(payload) <= ALLOWED[component], set(payload) - ALLOWED[component]
    assert payload["state_topic"] and payload["unique_id"] and payload["name"]
    assert set(payload["device"]) <= DEVICE_KEYS
    assert payload["device"]["identifiers"]  # needed to tie the entity to a device
    assert set(payload["origin"]) <= ORIGIN_KEYS and payload["origin"]["name"] == "vemonitor"
    assert payload.get("state_class", "measurement") in STATE_CLASSES


@pytest.mark.parametrize("label", sorted(set(FIELD_BY_LABEL) - ha.IDENTITY_LABELS))
def test_every_field_gives_a_documented_payload(label: str) -> None:
    """Every field of the table yields a sensor or binary_sensor with only documented keys."""
    platform, payload = config(label)
    check_schema(platform, payload)
    spec = FIELD_BY_LABEL[label]
    if spec.ha_device_class in UNITS:
        assert payload["unit_of_measurement"] in UNITS[spec.ha_device_class]


@pytest.mark.parametrize(("label", "device_class", "unit", "state_class"), [
    ("V", "voltage", "V", "measurement"), ("I", "current", "A", "measurement"),
    ("SOC", "battery", "%", "measurement"), ("P", "power", "W", "measurement"),
    ("PPV", "power", "W", "measurement"), ("T", "temperature", "°C", "measurement"),
    ("TTG", "duration", "min", "measurement"), ("AC_OUT_S", "apparent_power", "VA", "measurement"),
    ("H17", "energy", "kWh", "total_increasing"), ("H18", "energy", "kWh", "total_increasing"),
    ("H19", "energy", "kWh", "total_increasing"), ("H20", "energy", "kWh", "total_increasing"),
    # Yesterday's values jump once a day: no state class (the Energy dashboard must not
    # count H22's daily step as new energy).
    ("H22", "energy", "kWh", None), ("H23", "power", "W", None), ("CE", None, "Ah", "measurement"),
])
def test_sensor_classes_follow_the_protocol_table(label: str, device_class: str | None,
                                                  unit: str, state_class: str | None) -> None:
    """device_class, unit and state_class are PROTOCOL.md's Home Assistant mapping."""
    platform, payload = config(label)
    assert platform == "sensor"
    assert payload["unique_id"] == f"vemonitor_HQ2211ABCDE_{label}"
    assert payload.get("device_class") == device_class
    assert payload["unit_of_measurement"] == unit
    assert payload.get("state_class") == state_class
    assert render(payload["value_template"], {"time": 1, label: 12.5}) == "12.5"


@pytest.mark.parametrize(("label", "codes"), [
    ("CS", tables.CS), ("ERR", tables.ERR), ("MPPT", tables.MPPT), ("MODE", tables.MODE),
    ("MON", tables.MON)])
def test_codes_are_enums_with_named_options(label: str, codes: dict[int, str]) -> None:
    """Code fields are enum sensors: options are the code names, the template maps code -> name."""
    _, payload = config(label)
    assert payload["device_class"] == "enum"
    assert payload["options"] == list(codes.values())
    assert "state_class" not in payload and "unit_of_measurement" not in payload
    for code, name in codes.items():
        assert render(payload["value_template"], {label: code}) == name
    assert render(payload["value_template"], {label: 12345}) == "None"  # unknown -> unknown
    assert render(payload["value_template"], {label: None}) == "None"


@pytest.mark.parametrize("label", ["Relay", "Alarm", "LOAD"])
def test_on_off_fields_are_binary_sensors_matching_the_state_json(label: str) -> None:
    """ON/OFF fields are binary sensors whose template yields payload_on / payload_off."""
    platform, payload = config(label)
    assert platform == "binary_sensor"
    check_schema(platform, payload)
    assert (payload["payload_on"], payload["payload_off"]) == ("ON", "OFF")
    template = payload["value_template"]
    assert [render(template, {label: v}) for v in (True, False, "ON", "OFF", None)] == \
        ["ON", "OFF", "ON", "OFF", "None"]


def test_device_block_names_the_victron_device_via_the_bridge() -> None:
    """The device block: identifiers, manufacturer, model (product), sw_version, via_device."""
    _, payload = config("V")
    assert payload["device"] == {
        "identifiers": ["vemonitor_HQ2211ABCDE"], "name": "SmartSolar MPPT 75/15 HQ2211ABCDE",
        "manufacturer": "Victron Energy", "model": "SmartSolar MPPT 75/15", "model_id": "0xA053",
        "hw_version": "rev2", "sw_version": "1.59", "serial_number": "HQ2211ABCDE",
        "via_device": "vemonitor_bridge_vemonitor-pi-TestBlock-mqtt"}
    assert payload["origin"] == {"name": "vemonitor", "sw_version": "0.1.0",
                                 "support_url": "https://github.com/vemonitor/vemonitor"}


def test_availability_needs_bridge_and_device() -> None:
    """Entities list the bridge's and their device's availability, mode all."""
    _, payload = config("V")
    assert payload["availability"] == [{"topic": "vemonitor/bridge/availability"},
                                       {"topic": "vemonitor/mppt/availability"}]
    assert payload["availability_mode"] == "all"
    assert (payload["payload_available"], payload["payload_not_available"]) == ("online",
                                                                                "offline")


def test_bridge_is_a_connectivity_binary_sensor() -> None:
    """The bridge device has a connectivity sensor reading its own last-will topic."""
    topic, device_payload = ha.bridge_config(LAYOUT)
    assert topic == f"homeassistant/device/{LAYOUT.bridge_identifier}/config"
    component = device_payload["cmps"]["connectivity"]
    assert component["p"] == "binary_sensor"
    payload = entity(component, device_payload)
    check_schema("binary_sensor", payload)
    assert payload["device_class"] == "connectivity"
    assert payload["state_topic"] == "vemonitor/bridge/availability"
    assert (payload["payload_on"], payload["payload_off"]) == ("online", "offline")
    assert payload["device"]["identifiers"] == [LAYOUT.bridge_identifier]
    assert "availability" not in payload  # offline must read "disconnected", not unavailable


def test_renamed_columns_map_back_to_their_label() -> None:
    """A ref_cols-renamed column reads its own JSON key and keeps the label's classes and id."""
    label = ha.label_of("bat_voltage", {"V": "bat_voltage"})
    assert label == "V"
    _, payload = config(label, "bat_voltage", node="bmv")
    assert payload["unique_id"] == "vemonitor_HQ2211ABCDE_V"
    assert payload["device_class"] == "voltage"
    assert render(payload["value_template"], {"bat_voltage": 12.8}) == "12.8"
    assert render(payload["value_template"], {"other": 1}) == "None"


def test_unknown_columns_are_plain_sensors() -> None:
    """A column outside the field table (a derived value) is a sensor without classes."""
    platform, payload = config("bank_power", node="bmv")
    check_schema(platform, payload)
    assert {"device_class", "state_class", "unit_of_measurement"}.isdisjoint(payload)


@pytest.mark.parametrize(("info", "override", "expected"), [
    ({"available": True, "pid": "0xA053", "serial": "HQ1", "product": "MPPT"}, None, "HQ1"),
    ({"available": True, "pid": "0x203", "serial": None, "product": "BMV-700"}, None,
     "Block_bmv"),
    ({"available": True, "pid": "0x203", "serial": None, "product": "BMV-700"}, "shed-bmv",
     "shed-bmv"),
    ({"available": False}, "shed-bmv", "shed-bmv"),
    ({}, None, "Block_bmv"),  # a source without devices (e.g. a redis input)
])
def test_device_identity(info: dict[str, Any], override: str | None, expected: str) -> None:
    """SER#, else the user's device id, else <block>_<connector>: never the port or the order."""
    device = ha.identify(info, override, "Block_bmv", "bmv")
    assert device is not None and device.key == expected


def test_device_not_read_yet_is_pending() -> None:
    """Without a device id, a device not read yet has no identity (its SER# may come)."""
    assert ha.identify({"available": False}, None, "Block_bmv", "bmv") is None


def test_topic_parts_are_sanitised() -> None:
    """Wildcards and separators in names never reach a topic; ids keep HA's characters."""
    assert LAYOUT.state("a/b+#") == "vemonitor/a_b__/state"
    assert ha.slug("SER#") == "SER"


# ------------------------------------------------------------------ device-based discovery
# home-assistant.io/integrations/mqtt, "Device discovery payload" (HA >= 2024.11): one
# config per device on <prefix>/device/<id>/config with dev, o and cmps; a component
# sent as only its platform is removed; migration from per-entity topics with
# {"migrate_discovery": true}.

def test_one_device_config_holds_every_entity_of_the_device() -> None:
    components = dict(ha.component_config("mppt", label, label, MPPT, LAYOUT)
                      for label in ("V", "PPV", "LOAD", "CS"))
    topic, payload = ha.device_config(MPPT, components, LAYOUT)
    assert topic == "homeassistant/device/vemonitor_HQ2211ABCDE/config"
    assert set(payload) == {"dev", "o", "cmps", "qos"}
    assert list(payload["cmps"]) == sorted(["V", "PPV", "LOAD", "CS"])
    assert {c["p"] for c in payload["cmps"].values()} == {"sensor", "binary_sensor"}
    assert payload["cmps"]["LOAD"]["p"] == "binary_sensor"
    assert all("device" not in c and "origin" not in c for c in payload["cmps"].values())
    assert payload["o"]["support_url"].startswith("https://")
    assert (payload["dev"]["model_id"], payload["dev"]["hw_version"]) == ("0xA053", "rev2")
    # The unique_ids are those of the per-entity configs of vemonitor <= 0.1: migrating
    # keeps the entities and their history.
    assert payload["cmps"]["V"]["unique_id"] == "vemonitor_HQ2211ABCDE_V"


def test_identify_gives_model_id_and_hardware_version() -> None:
    info = {"available": True, "pid": "0x203", "serial": None, "product": "BMV-700",
            "firmware": "3.08", "hardware": "2"}
    device = ha.identify(info, None, "Block_bmv", "bmv")
    assert device is not None
    assert (device.model_id, device.hw_version) == ("0x0203", "2")
    block = ha.device_block(device, LAYOUT)
    assert (block["model_id"], block["hw_version"]) == ("0x0203", "2")
    bare = ha.identify({"available": True, "pid": "0xA053", "serial": "HQ1"}, None, "B", "b")
    assert bare is not None and "hw_version" not in ha.device_block(bare, LAYOUT)


def test_dropped_components_are_sent_as_their_platform_only() -> None:
    components = dict([ha.component_config("mppt", "V", "V", MPPT, LAYOUT)])
    _, payload = ha.device_config(MPPT, components, LAYOUT)
    previous = {"V": "sensor", "LOAD": "binary_sensor", "H19": "sensor"}
    assert ha.removed_components(previous, payload) == {
        "LOAD": {"p": "binary_sensor"}, "H19": {"p": "sensor"}}
    assert ha.removed_components({"V": "sensor"}, payload) == {}


@pytest.mark.parametrize(("topic", "legacy"), [
    ("homeassistant/sensor/vemonitor_HQ1/V/config", True),
    ("homeassistant/binary_sensor/vemonitor_bridge_x/connectivity/config", True),
    ("homeassistant/device/vemonitor_HQ1/config", False),
    ("other/sensor/vemonitor_HQ1/V/config", False),
    ("homeassistant/sensor/V/config", False),
])
def test_legacy_per_entity_topics_are_recognised(topic: str, legacy: bool) -> None:
    assert ha.legacy_topic(topic, LAYOUT) is legacy
    assert json.loads(ha.MIGRATE_PAYLOAD) == {"migrate_discovery": True}


@pytest.mark.parametrize(("name", "device_class", "state_class", "unit"), [
    ("yield_today", "energy", "total_increasing", "kWh"),
    ("load_current", "current", "measurement", "A"),
    ("battery_temperature", "temperature", "measurement", "°C"),
    ("capacity", None, None, "Ah"),
])
def test_hex_register_columns_get_their_register_classes(name: str, device_class: str | None,
                                                         state_class: str | None,
                                                         unit: str) -> None:
    """A HEX register named as a column (issue 22) is announced with its FieldSpec's classes."""
    platform, payload = config(name)
    assert platform == "sensor"
    check_schema("sensor", payload)
    assert payload.get("device_class") == device_class
    assert payload.get("state_class") == state_class
    assert payload["unit_of_measurement"] == unit
    assert payload["value_template"] == "{{ value_json.get(\"%s\") }}" % name


def test_hex_identity_registers_are_no_entities() -> None:
    """serial_number / model_name describe the device, like SER# and PID."""
    assert not ha.is_entity("serial_number") and not ha.is_entity("model_name")
    assert ha.is_entity("yield_today")


def test_day_record_columns_are_announced_as_the_last_closed_day() -> None:
    """A history input's yield_kwh (issue 22): energy in kWh, no state class (steps daily)."""
    platform, payload = config("yield_kwh", node="mppt_days")
    check_schema("sensor", payload)
    assert (platform, payload["device_class"], payload["unit_of_measurement"]) == (
        "sensor", "energy", "kWh")
    assert "state_class" not in payload and "closed day" in payload["name"]
    assert not ha.is_entity("serial")
