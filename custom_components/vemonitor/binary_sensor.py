"""ON/OFF fields (Alarm, Relay, LOAD) as binary sensors."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from vemonitor.vedirect.fields import FieldSpec

from . import VEDevice, VEMonitorConfigEntry
from .const import exposable_specs
from .entity import VEMonitorEntity

# Entities are pushed by the reader (should_poll False): no update calls to limit.
PARALLEL_UPDATES = 0

DEVICE_CLASSES: dict[str, BinarySensorDeviceClass] = {
    "Alarm": BinarySensorDeviceClass.PROBLEM,
    "LOAD": BinarySensorDeviceClass.POWER,
}


async def async_setup_entry(hass: HomeAssistant, entry: VEMonitorConfigEntry,
                            async_add_entities: AddEntitiesCallback) -> None:
    """Add one binary sensor per ON/OFF field the device sends."""
    device = entry.runtime_data
    async_add_entities(VEMonitorBinarySensor(device, spec)
                       for spec in exposable_specs(device.labels) if spec.kind == "onoff")


class VEMonitorBinarySensor(VEMonitorEntity, BinarySensorEntity):
    """One ON/OFF field."""

    def __init__(self, device: VEDevice, spec: FieldSpec) -> None:
        super().__init__(device, spec)
        self._attr_device_class = DEVICE_CLASSES.get(spec.label)

    @property
    def is_on(self) -> bool | None:
        """Return the field's state (None while unknown)."""
        value = self.value
        return None if value is None else bool(value)
