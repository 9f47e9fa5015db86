"""Base entity: one VE.Direct field of one device, updated by the reader's snapshots."""

from __future__ import annotations

from homeassistant.const import EntityCategory
from homeassistant.core import callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity

from vemonitor.vedirect.fields import FieldSpec, Value

from . import VEDevice
from .const import DIAGNOSTIC_LABELS, DISABLED_BY_DEFAULT_LABELS, translation_key


class VEMonitorEntity(Entity):
    """An entity backed by one label of the field table."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, device: VEDevice, spec: FieldSpec) -> None:
        self._device = device
        self._spec = spec
        self._attr_unique_id = f"{device.unique_id}_{spec.label}"
        # Names come from strings.json (entity.<platform>.<key>.name), so entity ids
        # are short and translatable: sensor.bmv_700_time_to_go.
        self._attr_translation_key = translation_key(spec.label)
        if spec.label in DIAGNOSTIC_LABELS:
            self._attr_entity_category = EntityCategory.DIAGNOSTIC
        self._attr_entity_registry_enabled_default = spec.label not in DISABLED_BY_DEFAULT_LABELS
        self._attr_device_info = device.device_info
        self._attr_extra_state_attributes = {"label": spec.label}

    @property
    def available(self) -> bool:
        """Return False while the device is unplugged or silent, or the port carries
        another device."""
        return self._device.shows_values

    @property
    def value(self) -> Value:
        """Return the decoded value of this field in the latest snapshot."""
        snapshot = self._device.snapshot
        return None if snapshot is None else snapshot.values.get(self._spec.label)

    async def async_added_to_hass(self) -> None:
        """Follow the device's snapshots."""
        self.async_on_remove(async_dispatcher_connect(
            self.hass, self._device.signal, self._async_handle_update))

    @callback
    def _async_handle_update(self) -> None:
        self.async_write_ha_state()
