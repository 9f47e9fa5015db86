"""Sensors built from the vemonitor field table (device/state class and unit as the table)."""

from __future__ import annotations

import time
from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from vemonitor.vedirect.fields import Code, FieldSpec, Flags, Value

from . import VEDevice, VEMonitorConfigEntry
from .const import CONF_LABELS, exposable_specs
from .entity import VEMonitorEntity
from .hexdata import HexSensor, enabled_by_default

# Entities are pushed by the reader (should_poll False): no update calls to limit.
PARALLEL_UPDATES = 0

SENSOR_KINDS = frozenset({"int", "scaled", "code", "flags"})


async def async_setup_entry(hass: HomeAssistant, entry: VEMonitorConfigEntry,
                            async_add_entities: AddEntitiesCallback) -> None:
    """Add one sensor per numeric, code or bitmask field the device sends."""
    device = entry.runtime_data
    entities: list[VEMonitorSensor] = [
        VEMonitorSensor(device, spec) for spec in exposable_specs(device.labels)
        if spec.kind in SENSOR_KINDS]
    entities += [VEMonitorHexSensor(device, sensor) for sensor in device.hex_sensors]
    async_add_entities(entities)


class VEMonitorSensor(VEMonitorEntity, SensorEntity):
    """One numeric / enum / bitmask field."""

    def __init__(self, device: VEDevice, spec: FieldSpec) -> None:
        super().__init__(device, spec)
        device_class = SensorDeviceClass(spec.ha_device_class) if spec.ha_device_class else None
        self._attr_device_class = device_class
        if spec.ha_state_class:
            self._attr_state_class = SensorStateClass(spec.ha_state_class)
        if spec.kind in ("int", "scaled"):
            self._attr_native_unit_of_measurement = spec.unit
        self._enum_options: list[str] = []
        if device_class == SensorDeviceClass.ENUM:
            self._enum_options = list(dict.fromkeys((spec.codes or {}).values()))
            self._attr_options = self._enum_options

    @property
    def native_value(self) -> Any:
        """Return the field's value in the table's unit (code name for enums)."""
        value = self.value
        if value is None:
            return None
        if isinstance(value, Code):
            # An unknown code ('unknown 12') is not a valid enum option: state unknown,
            # the raw code stays in the attributes.
            return value.name if value.name in self._enum_options else None
        if isinstance(value, Flags):
            return str(value)
        return value

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the raw code of code / bitmask fields."""
        attrs: dict[str, Any] = {"label": self._spec.label}
        value = self.value
        if isinstance(value, Code | Flags):
            attrs["code"] = int(value)
        if isinstance(value, Flags):
            attrs["flags"] = list(value.names)
        return attrs


class VEMonitorHexSensor(VEMonitorSensor):
    """One value read over HEX: a register, or a field of the last closed day's record.

    Unavailable while the device has not answered HEX on this connection (a device
    that never answers keeps only its TEXT entities). Registered disabled by default
    when the TEXT block carries the same value (hexdata's decision); its register is
    asked only while the entity is enabled.
    """

    def __init__(self, device: VEDevice, sensor: HexSensor) -> None:
        super().__init__(device, sensor.spec)
        self._sensor = sensor
        self._attr_entity_registry_enabled_default = enabled_by_default(
            sensor, device.entry.data.get(CONF_LABELS, []))
        self._attr_extra_state_attributes = {"register": f"0x{sensor.register:04X}"}

    @property
    def available(self) -> bool:
        """Return False while the device is silent, another device, or answers no HEX."""
        return super().available and self._device.hex.answered

    @property
    def value(self) -> Value:
        """Return the HEX value (None: unknown, refused, not available or too old)."""
        return self._device.hex.value(self._sensor, time.monotonic(),
                                      self._device.reader.stale_after)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the register the value comes from."""
        return {"register": f"0x{self._sensor.register:04X}"}

    async def async_added_to_hass(self) -> None:
        """Ask the register while this entity is enabled (added)."""
        await super().async_added_to_hass()
        self._device.async_want_hex(self._sensor, True)
        self.async_on_remove(lambda: self._device.async_want_hex(self._sensor, False))
