"""Discovery payloads follow Home Assistant's documented MQTT schema, field by field (no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from integrations.mqtt import discovery as ha
from vemonitor.vedirect import tables
from vemonitor.vedirect.fields import FIELD_BY_LABEL

LAYOUT = ha.Layout("vemonitor", "homeassistant", "vemonitor-pi-TestBlock-mqtt", "TestBlock",
                   "0.1.0", 1)
MPPT = ha.DeviceInfo(key="HQ2211ABCDE", name="SmartSolar MPPT 75/15 HQ2211ABCDE",
                     model="SmartSolar MPPT 75/15", sw_version="1.59", serial="HQ2211ABCDE")

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


def config(label: str, column: str | None = None) -> tuple[str, dict[str, Any]]:
    return ha.entity_config("mppt", column or label, label, MPPT, LAYOUT)


def check_schema(topic: str, payload: dict[str, Any]) -> None:
    """Assert a payload uses only documented keys and carries what HA requires."""
    component = topic.split("/")[1]
    assert set(payload) <= ALLOWED[component], set(payload) - ALLOWED[component]
    assert payload["state_topic"] and payload["unique_id"] and payload["name"]
    assert set(payload["device"]) <= DEVICE_KEYS
    assert payload["device"]["identifiers"]  # needed to tie the entity to a device
    assert set(payload["origin"]) <= ORIGIN_KEYS and payload["origin"]["name"] == "vemonitor"
    assert payload.get("state_class", "measurement") in STATE_CLASSES


@pytest.mark.parametrize("label", sorted(set(FIELD_BY_LABEL) - ha.IDENTITY_LABELS))
def test_every_field_gives_a_documented_payload(label: str) -> None:
    """Every field of the table yields a sensor or binary_sensor with only documented keys."""
    topic, payload = config(label)
    check_schema(topic, payload)
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
    ("H22", "energy", "kWh", "total_increasing"), ("CE", None, "Ah", "measurement"),
])
def test_sensor_classes_follow_the_protocol_table(label: str, device_class: str | None,
                                                  unit: str, state_class: str) -> None:
    """device_class, unit and state_class are PROTOCOL.md's Home Assistant mapping."""
    topic, payload = config(label)
    assert topic == f"homeassistant/sensor/vemonitor_HQ2211ABCDE/{label}/config"
    assert payload.get("device_class") == device_class
    assert payload["unit_of_measurement"] == unit
    assert payload["state_class"] == state_class
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
    topic, payload = config(label)
    assert topic.startswith("homeassistant/binary_sensor/")
    check_schema(topic, payload)
    assert (payload["payload_on"], payload["payload_off"]) == ("ON", "OFF")
    template = payload["value_template"]
    assert [render(template, {label: v}) for v in (True, False, "ON", "OFF", None)] == \
        ["ON", "OFF", "ON", "OFF", "None"]


def test_device_block_names_the_victron_device_via_the_bridge() -> None:
    """The device block: identifiers, manufacturer, model (product), sw_version, via_device."""
    _, payload = config("V")
    assert payload["device"] == {
        "identifiers": ["vemonitor_HQ2211ABCDE"], "name": "SmartSolar MPPT 75/15 HQ2211ABCDE",
        "manufacturer": "Victron Energy", "model": "SmartSolar MPPT 75/15", "sw_version": "1.59",
        "serial_number": "HQ2211ABCDE", "via_device": "vemonitor_bridge_vemonitor-pi-TestBlock-mqtt"}
    assert payload["origin"] == {"name": "vemonitor", "sw_version": "0.1.0"}


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
    topic, payload = ha.bridge_config(LAYOUT)
    check_schema(topic, payload)
    assert payload["device_class"] == "connectivity"
    assert payload["state_topic"] == "vemonitor/bridge/availability"
    assert (payload["payload_on"], payload["payload_off"]) == ("online", "offline")
    assert payload["device"]["identifiers"] == [LAYOUT.bridge_identifier]
    assert "availability" not in payload  # offline must read "disconnected", not unavailable


def test_renamed_columns_map_back_to_their_label() -> None:
    """A ref_cols-renamed column reads its own JSON key and keeps the label's classes and id."""
    label = ha.label_of("bat_voltage", {"V": "bat_voltage"})
    assert label == "V"
    topic, payload = ha.entity_config("bmv", "bat_voltage", label, MPPT, LAYOUT)
    assert payload["unique_id"] == "vemonitor_HQ2211ABCDE_V"
    assert payload["device_class"] == "voltage"
    assert render(payload["value_template"], {"bat_voltage": 12.8}) == "12.8"
    assert render(payload["value_template"], {"other": 1}) == "None"


def test_unknown_columns_are_plain_sensors() -> None:
    """A column outside the field table (a derived value) is a sensor without classes."""
    topic, payload = ha.entity_config("bmv", "bank_power", "bank_power", MPPT, LAYOUT)
    check_schema(topic, payload)
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
