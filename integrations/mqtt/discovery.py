"""Home Assistant MQTT discovery: topics and payloads built from the VE.Direct field table.

Everything here is a pure function of its arguments (no I/O, no clock): the sink
decides when to publish, this module decides what. Entities come from
:data:`vemonitor.vedirect.fields.FIELD_BY_LABEL` (unit, device_class,
state_class, codes): there is no per-field branch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vemonitor.vedirect.fields import FIELD_BY_LABEL, FieldSpec

MANUFACTURER = "Victron Energy"
ORIGIN_NAME = "vemonitor"
ONLINE, OFFLINE = "online", "offline"
PAYLOAD_ON, PAYLOAD_OFF = "ON", "OFF"
# Identity fields describe the device (device block), they are not entities.
IDENTITY_LABELS = frozenset({"PID", "FW", "FWE", "SER#", "BMV", "HC#"})
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
        """Return a discovery config topic."""
        return f"{self.prefix}/{component}/{node_id}/{object_id}/config"


@dataclass(frozen=True)
class DeviceInfo:
    """One Home Assistant device: a VE.Direct device (or a device-less input group)."""

    key: str  # stable: SER#, the user's device_ids entry, or <block>_<connector>
    name: str
    model: str | None = None
    sw_version: str | None = None
    serial: str | None = None
    manufacturer: str | None = MANUFACTURER

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
                      serial=serial, manufacturer=MANUFACTURER if info.get("pid") else None)


def origin(version: str) -> dict[str, str]:
    """Return the ``origin`` block: which application published the entity."""
    return {"name": ORIGIN_NAME, "sw_version": version}


def device_block(device: DeviceInfo, layout: Layout) -> dict[str, Any]:
    """Return the ``device`` block of an entity of ``device`` (linked to the bridge)."""
    block: dict[str, Any] = {"identifiers": [f"vemonitor_{device.key}"], "name": device.name,
                             "manufacturer": device.manufacturer, "model": device.model,
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
    return label not in IDENTITY_LABELS


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


def entity_config(node: str, column: str, label: str, device: DeviceInfo,
                  layout: Layout) -> tuple[str, dict[str, Any]]:
    """Return the discovery topic and payload of one column of one input's device."""
    spec = FIELD_BY_LABEL.get(label)
    kind = spec.kind if spec else "text"
    component = COMPONENT_BY_KIND.get(kind, "sensor")
    template = TEMPLATE_BY_KIND.get(kind, _plain_template)
    payload: dict[str, Any] = {
        "name": spec.description if spec else column,
        "unique_id": f"vemonitor_{device.key}_{slug(label)}",
        "state_topic": layout.state(node),
        "value_template": template(column, spec),
        "qos": layout.qos,
        **_presentation(spec),
        **_availability(layout, node),
        "device": device_block(device, layout),
        "origin": origin(layout.version),
    }
    if component == "binary_sensor":
        payload.update(payload_on=PAYLOAD_ON, payload_off=PAYLOAD_OFF)
    return layout.config(component, f"vemonitor_{device.key}", slug(label)), payload


def bridge_config(layout: Layout) -> tuple[str, dict[str, Any]]:
    """Return the discovery of the bridge's connectivity sensor (its own availability)."""
    payload = {
        "name": "Connectivity",
        "unique_id": f"{layout.bridge_identifier}_connectivity",
        "state_topic": layout.bridge_availability,
        "payload_on": ONLINE, "payload_off": OFFLINE,
        "device_class": "connectivity", "entity_category": "diagnostic",
        "device": bridge_block(layout), "origin": origin(layout.version),
    }
    return layout.config("binary_sensor", layout.bridge_identifier, "connectivity"), payload


def encode(payload: Mapping[str, Any]) -> str:
    """Return a discovery payload as compact, key-sorted JSON (stable for comparisons)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
