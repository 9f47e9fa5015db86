"""Home Assistant MQTT discovery: topics and payloads built from the VE.Direct field table.

Everything here is a pure function of its arguments (no I/O, no clock): the sink
decides when to publish, this module decides what. Entities come from
:data:`vemonitor.vedirect.fields.FIELD_BY_LABEL` (unit, device_class,
state_class, codes): there is no per-field branch.

Device-based discovery (Home Assistant >= 2024.11): ONE retained config per device, on
``<prefix>/device/<device id>/config``, with the device block (``dev``), the origin
(``o``) and every entity of the device in ``cmps`` (component id -> config with its
platform ``p``). A component dropped from a device is sent once as ``{"p": platform}``
(Home Assistant removes it); an empty retained config removes the whole device.

vemonitor <= 0.1 published one config per entity (``<prefix>/<platform>/<node>/<id>/
config``). Home Assistant's documented migration keeps those entities (same unique_id)
and their history: 1. ``{"migrate_discovery": true}`` (retained) on each old topic,
2. the device configs, 3. an empty retained payload on each old topic. See
:func:`legacy_topic` and the sink's ``_sync_discovery``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from vemonitor.vedirect.fields import FIELD_BY_LABEL, IDENTITY_LABELS, FieldSpec
from vemonitor.vedirect.hex_registers import (
    DAY_RECORD_FIELDS,
    HEX_FIELD_BY_NAME,
    IDENTITY_REGISTERS,
)

MANUFACTURER = "Victron Energy"
ORIGIN_NAME = "vemonitor"
SUPPORT_URL = "https://github.com/vemonitor/vemonitor"
MIGRATE_PAYLOAD = '{"migrate_discovery":true}'

ONLINE, OFFLINE = "online", "offline"
PAYLOAD_ON, PAYLOAD_OFF = "ON", "OFF"
CONTROL_LEVEL = "control"  # <base>/<input>/control/<name>/<leaf>: the controls' topics
# HA platform per field kind; every other kind is a sensor.
COMPONENT_BY_KIND: Mapping[str, str] = {"onoff": "binary_sensor"}
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")
_TOPIC_UNSAFE = re.compile(r"[+#/\x00]")


def slug(text: str) -> str:
    """Return ``text`` reduced to the characters HA allows in discovery ids."""
    return _SLUG.sub("_", text).strip("_") or "_"


def topic_part(text: str) -> str:
    """Return ``text`` usable as one topic level (no wildcards, no separator)."""
    return _TOPIC_UNSAFE.sub("_", text) or "_"


@dataclass(frozen=True)
class Layout:
    """Where everything is published: state under ``base``, discovery under ``prefix``."""

    base: str
    prefix: str
    bridge: str  # the bridge's stable id (slug of host and block)
    block: str
    version: str
    qos: int = 1

    def state(self, node: str) -> str:
        """Return the JSON state topic of an input (node)."""
        return f"{self.base}/{topic_part(node)}/state"

    def value(self, node: str, column: str) -> str:
        """Return the per-value topic of one column."""
        return f"{self.base}/{topic_part(node)}/{topic_part(column)}"

    def availability(self, node: str) -> str:
        """Return the availability topic of an input's device."""
        return f"{self.base}/{topic_part(node)}/availability"

    def control(self, node: str, name: str, leaf: str) -> str:
        """Return a topic of one control of an input's device (issue 23).

        ``leaf``: ``set`` (commands, subscribed), ``state`` (retained JSON), ``availability``
        (retained online/offline) or ``result`` (one JSON per write result, not retained).
        """
        return f"{self.base}/{topic_part(node)}/{CONTROL_LEVEL}/{topic_part(name)}/{leaf}"

    @property
    def command_filter(self) -> str:
        """Return the subscription matching every control's command topic."""
        return f"{self.base}/+/{CONTROL_LEVEL}/+/set"

    @property
    def bridge_availability(self) -> str:
        """Return the bridge's availability topic (its last will)."""
        return f"{self.base}/bridge/availability"

    @property
    def status(self) -> str:
        """Return the topic Home Assistant announces itself on (birth message)."""
        return f"{self.prefix}/status"

    @property
    def bridge_identifier(self) -> str:
        """Return the HA device identifier of the bridge."""
        return f"vemonitor_bridge_{self.bridge}"

    def config(self, component: str, node_id: str, object_id: str) -> str:
        """Return a per-entity discovery config topic (the form before device discovery)."""
        return f"{self.prefix}/{component}/{node_id}/{object_id}/config"

    def device_config(self, device_id: str) -> str:
        """Return the device-based discovery topic of one device."""
        return f"{self.prefix}/device/{device_id}/config"


@dataclass(frozen=True)
class DeviceInfo:
    """One Home Assistant device: a VE.Direct device (or a device-less input group)."""

    key: str  # stable: SER#, the user's device_ids entry, or <block>_<connector>
    name: str
    model: str | None = None
    sw_version: str | None = None
    serial: str | None = None
    manufacturer: str | None = MANUFACTURER
    model_id: str | None = None  # the PID, e.g. 0xA053
    hw_version: str | None = None  # HC#, when the device sends it

    def as_dict(self) -> dict[str, Any]:
        """Return the plain data (for the state file)."""
        return dict(self.__dict__)


def identify(info: Mapping[str, Any], override: str | None, fallback: str,
             name: str) -> DeviceInfo | None:
    """Return the device of an input group from its live description, None while unknown.

    ``info`` is ``InputInfo.device()``: empty when the source has no device (a
    Redis input), without ``pid`` while the device has not been read yet.
    """
    if override is None and info and not info.get("pid"):
        return None  # not read yet: its serial number may still come
    serial = str(info["serial"]).strip() if info.get("serial") else None
    key = slug(override or serial or fallback)
    product = str(info["product"]) if info.get("product") else None
    return DeviceInfo(key=key, name=f"{product} {key}" if product else name, model=product,
                      sw_version=str(info["firmware"]) if info.get("firmware") else None,
                      serial=serial, manufacturer=MANUFACTURER if info.get("pid") else None,
                      model_id=_model_id(info.get("pid")),
                      hw_version=str(info["hardware"]) if info.get("hardware") else None)


def _model_id(pid: Any) -> str | None:
    """Return the PID as 0xA053 / 0x0203 (the model id Home Assistant shows), None if absent."""
    if not pid:
        return None
    try:
        return f"0x{int(str(pid), 16):04X}"
    except ValueError:
        return str(pid)


def origin(version: str) -> dict[str, str]:
    """Return the ``origin`` block: which application published the entity."""
    return {"name": ORIGIN_NAME, "sw_version": version, "support_url": SUPPORT_URL}


def device_block(device: DeviceInfo, layout: Layout) -> dict[str, Any]:
    """Return the ``device`` block of an entity of ``device`` (linked to the bridge)."""
    block: dict[str, Any] = {"identifiers": [f"vemonitor_{device.key}"], "name": device.name,
                             "manufacturer": device.manufacturer, "model": device.model,
                             "model_id": device.model_id, "hw_version": device.hw_version,
                             "sw_version": device.sw_version, "serial_number": device.serial,
                             "via_device": layout.bridge_identifier}
    return {k: v for k, v in block.items() if v is not None}


def bridge_block(layout: Layout) -> dict[str, Any]:
    """Return the ``device`` block of the vemonitor bridge itself."""
    return {"identifiers": [layout.bridge_identifier], "name": f"vemonitor {layout.block}",
            "manufacturer": "vemonitor", "model": "VE.Direct to MQTT bridge",
            "sw_version": layout.version}


def label_of(column: str, names: Mapping[str, str]) -> str:
    """Return the device label of a row column (``names``: device column -> standard name)."""
    devices = {std: col for col, std in names.items()}
    return devices.get(column, column)


def is_entity(label: str) -> bool:
    """Return True when a column becomes an entity (identity fields do not)."""
    # "serial" is a day-record row's key (issue 22), the device's identity too.
    return label not in IDENTITY_LABELS and label not in IDENTITY_REGISTERS and label != "serial"


def _get(column: str) -> str:
    """Return the Jinja expression reading ``column`` from the state JSON (None if absent)."""
    return f"value_json.get({json.dumps(column)})"


def _plain_template(column: str, spec: FieldSpec | None) -> str:
    return "{{ " + _get(column) + " }}"


def _enum_template(column: str, spec: FieldSpec | None) -> str:
    # Codes travel as integers; an unknown code renders None (state unknown), not an error.
    table = ", ".join(f"{code}: {json.dumps(name)}" for code, name in (spec and spec.codes or {}).items())
    return "{{ {" + table + "}.get(" + _get(column) + ") }}"


def _onoff_template(column: str, spec: FieldSpec | None) -> str:
    # Rows carry booleans; "ON"/"OFF" strings (rows forwarded from elsewhere) work too.
    return ("{% set v = " + _get(column) + " %}{{ 'None' if v is none else ('" + PAYLOAD_ON
            + "' if v in (true, 'ON', 'On', 'on') else '" + PAYLOAD_OFF + "') }}")


TEMPLATE_BY_KIND = {"code": _enum_template, "onoff": _onoff_template}


def _availability(layout: Layout, node: str) -> dict[str, Any]:
    return {"availability": [{"topic": layout.bridge_availability},
                             {"topic": layout.availability(node)}],
            "availability_mode": "all", "payload_available": ONLINE,
            "payload_not_available": OFFLINE}


def _presentation(spec: FieldSpec | None) -> dict[str, Any]:
    """Return device_class, state_class, unit and options from the field table row."""
    if spec is None:
        return {}
    shown: dict[str, Any] = {"device_class": spec.ha_device_class,
                             "state_class": spec.ha_state_class,
                             "unit_of_measurement": spec.unit}
    if spec.ha_device_class == "enum":
        shown["options"] = list(dict.fromkeys((spec.codes or {}).values()))
        shown["unit_of_measurement"] = shown["state_class"] = None  # HA refuses them on enums
    return {k: v for k, v in shown.items() if v is not None}


def device_id(device: DeviceInfo) -> str:
    """Return the id of a device in discovery topics (also the old per-entity node id)."""
    return f"vemonitor_{device.key}"


def component_config(node: str, column: str, label: str, device: DeviceInfo,
                     layout: Layout) -> tuple[str, dict[str, Any]]:
    """Return the component id and config (in ``cmps``) of one column of one input's device."""
    # A TEXT label, else a HEX register named as a column, else a day-record column
    # (issue 22): the same FieldSpec rows.
    spec = (FIELD_BY_LABEL.get(label) or HEX_FIELD_BY_NAME.get(label)
            or DAY_RECORD_FIELDS.get(label))
    kind = spec.kind if spec else "text"
    platform = COMPONENT_BY_KIND.get(kind, "sensor")
    template = TEMPLATE_BY_KIND.get(kind, _plain_template)
    config: dict[str, Any] = {
        "p": platform,
        "name": spec.description if spec else column,
        "unique_id": f"{device_id(device)}_{slug(label)}",
        "state_topic": layout.state(node),
        "value_template": template(column, spec),
        **_presentation(spec),
        **_availability(layout, node),
    }
    if platform == "binary_sensor":
        config.update(payload_on=PAYLOAD_ON, payload_off=PAYLOAD_OFF)
    return slug(label), config


class ControlShape(Protocol):
    """What discovery reads of a control (``vemonitor.api.ControlView``; duck-typed so this
    module stays loadable alone by the Home Assistant schema test)."""

    device: str
    name: str
    kind: str
    options: tuple[str, ...]
    minimum: float | None
    maximum: float | None
    step: float | None
    unit: str | None


CONTROL_NAMES: Mapping[str, str] = {  # the entity names Home Assistant shows
    "charger": "Charger", "charge_current_limit": "Charge current limit",
    "load_output": "Load output", "relay": "Relay"}
UNIT_DEVICE_CLASS: Mapping[str, str] = {"A": "current", "V": "voltage", "W": "power"}


def control_key(name: str) -> str:
    """Return the component id of a control (prefixed: a column may be named ``Relay`` too)."""
    return f"control_{slug(name)}"


def control_config(view: ControlShape, device: DeviceInfo, layout: Layout
                   ) -> tuple[str, dict[str, Any]] | None:
    """Return the component id and config of one control, None while it cannot be shown.

    The platform is the control's kind (``switch``, ``select``, ``number``). Commands go to
    ``.../set`` with the option names as payloads (``on``/``off``/``auto``) or the number in
    the control's unit; the state topic holds ``{"value": ..., "unavailable": ..., ...}``
    (also the entity's attributes: the reason it is unavailable, dry-run). The entity is
    unavailable while vemonitor, the device or one of the control's preconditions is not
    (three availability topics, all must be online). A number whose limits the device has
    not given yet is not announced: its range comes only from the device (HEX.md §8.3).
    Nothing here depends on the current value, so a change of state never re-publishes
    discovery.
    """
    node = view.device
    state = layout.control(node, view.name, "state")
    config: dict[str, Any] = {
        "p": view.kind,
        "name": CONTROL_NAMES.get(view.name, view.name.replace("_", " ").capitalize()),
        "unique_id": f"{device_id(device)}_{control_key(view.name)}",
        "command_topic": layout.control(node, view.name, "set"),
        "state_topic": state,
        "value_template": "{{ value_json.value }}",  # None renders "None": HA shows unknown
        "json_attributes_topic": state,
        "retain": False,  # a retained command would be refused (never replayed)
        "entity_category": "config",
        "availability": [{"topic": layout.bridge_availability},
                         {"topic": layout.availability(node)},
                         {"topic": layout.control(node, view.name, "availability")}],
        "availability_mode": "all", "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    if view.kind == "switch":
        on, off = view.options[-1], view.options[0]  # ("off", "on") in the contract
        config.update(payload_on=on, payload_off=off, state_on=on, state_off=off)
    elif view.kind == "select":
        config["options"] = list(view.options)
    elif view.kind == "number":
        if view.minimum is None or view.maximum is None:
            return None
        config.update(min=view.minimum, max=view.maximum, step=view.step or 1, mode="box")
        if view.unit:
            config["unit_of_measurement"] = view.unit
            if view.unit in UNIT_DEVICE_CLASS:
                config["device_class"] = UNIT_DEVICE_CLASS[view.unit]
    else:
        return None  # a kind this version does not know: shown nowhere rather than wrongly
    return control_key(view.name), config


def device_config(device: DeviceInfo, components: Mapping[str, Mapping[str, Any]],
                  layout: Layout) -> tuple[str, dict[str, Any]]:
    """Return the device-based discovery topic and payload of one device."""
    return layout.device_config(device_id(device)), {
        "dev": device_block(device, layout), "o": origin(layout.version),
        "cmps": {key: dict(components[key]) for key in sorted(components)}, "qos": layout.qos}


def removed_components(previous: Mapping[str, str], current: Mapping[str, Any]
                       ) -> dict[str, dict[str, str]]:
    """Return ``{"p": platform}`` for each component published before (id -> platform) gone now.

    Home Assistant removes a component whose config in ``cmps`` is only its platform.
    """
    return {key: {"p": platform} for key, platform in previous.items()
            if key not in current.get("cmps", {})}


def legacy_topic(topic: str, layout: Layout) -> bool:
    """Return True for a per-entity config topic (published by vemonitor <= 0.1)."""
    parts = topic.split("/")
    head = layout.prefix.split("/")
    return (len(parts) == len(head) + 4 and parts[:len(head)] == head
            and parts[len(head)] != "device" and parts[-1] == "config")


def bridge_config(layout: Layout) -> tuple[str, dict[str, Any]]:
    """Return the discovery of the bridge device: its connectivity sensor (own availability)."""
    component = {
        "p": "binary_sensor",
        "name": "Connectivity",
        "unique_id": f"{layout.bridge_identifier}_connectivity",
        "state_topic": layout.bridge_availability,
        "payload_on": ONLINE, "payload_off": OFFLINE,
        "device_class": "connectivity", "entity_category": "diagnostic",
    }
    return layout.device_config(layout.bridge_identifier), {
        "dev": bridge_block(layout), "o": origin(layout.version),
        "cmps": {"connectivity": component}, "qos": layout.qos}


def encode(payload: Mapping[str, Any]) -> str:
    """Return a discovery payload as compact, key-sorted JSON (stable for comparisons)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
