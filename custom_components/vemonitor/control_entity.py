"""Base of the control entities (switch, select, number): one enabled control's view.

The state comes from :meth:`vemonitor.control.DeviceControls.views` (no I/O), read again
at every snapshot and every result. The entity is unavailable while any precondition of
a write fails (``ControlView.unavailable``: no recent frame, identity not read, wrong
firmware or capability, relay not in remote mode...); each change of that reason is
logged once, since an unavailable entity shows no attributes.
"""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity

from vemonitor.controltypes import ControlResult, ControlView

from . import VEDevice

_LOGGER = logging.getLogger(__package__)


class VEMonitorControlEntity(Entity):
    """One control of one device (the platforms add the kind's state and actions)."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, device: VEDevice, view: ControlView) -> None:
        self._device = device
        self._name = view.name
        self._attr_unique_id = f"{device.unique_id}_control_{view.name}"
        self._attr_translation_key = f"control_{view.name}"
        self._attr_device_info = device.device_info
        self._reason: str | None = None

    @property
    def view(self) -> ControlView | None:
        """Return the control's current view (None once the controls are gone)."""
        return self._device.control_views().get(self._name)

    @property
    def available(self) -> bool:
        """Return False while a precondition of a write fails (or the device is away)."""
        view = self.view
        return self._device.shows_values and view is not None and view.unavailable is None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return whether writes are only shown (dry run)."""
        view = self.view
        return {"dry_run": view.dry_run if view is not None else None}

    async def _async_write(self, value: str | float) -> ControlResult:
        """Write the control (executor; raises HomeAssistantError when not done)."""
        result = await self._device.async_request(self._name, value, self.entity_id)
        self.async_write_ha_state()
        return result

    async def async_added_to_hass(self) -> None:
        """Follow the device's snapshots and control results."""
        self.async_on_remove(async_dispatcher_connect(
            self.hass, self._device.signal, self._async_handle_update))

    @callback
    def _async_handle_update(self) -> None:
        view = self.view
        reason = view.unavailable if view is not None else "controls stopped"
        if reason != self._reason:
            if reason is not None:
                _LOGGER.info("%s: %s unavailable: %s", self._device.entry.title, self._name,
                             reason)
            elif self._reason is not None:
                _LOGGER.info("%s: %s available", self._device.entry.title, self._name)
            self._reason = reason
        self.async_write_ha_state()


def views_of_kind(device: VEDevice, kind: str) -> list[ControlView]:
    """Return the enabled controls of ``kind`` (switch, select, number)."""
    return [view for view in device.control_views().values() if view.kind == kind]
