"""The load output (0xEDAB) as a select: off, auto (BatteryLife), on."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from vemonitor.controltypes import ControlView

from . import VEDevice, VEMonitorConfigEntry
from .control_entity import VEMonitorControlEntity, views_of_kind

# One write at a time per device is the core's rule (its lock); HA adds none.
PARALLEL_UPDATES = 0


async def async_setup_entry(hass: HomeAssistant, entry: VEMonitorConfigEntry,
                            async_add_entities: AddEntitiesCallback) -> None:
    """Add one select per enabled select control."""
    device = entry.runtime_data
    async_add_entities(VEMonitorSelect(device, view) for view in views_of_kind(device, "select"))


class VEMonitorSelect(VEMonitorControlEntity, SelectEntity):
    """Choose the load output's mode. A mode the device holds that vemonitor never
    writes (alternative 1/2, user modes) shows as unknown."""

    def __init__(self, device: VEDevice, view: ControlView) -> None:
        super().__init__(device, view)
        self._attr_options = list(view.options)

    @property
    def current_option(self) -> str | None:
        """Return the mode read from the device (None when it is not an option)."""
        view = self.view
        value = view.value if view is not None else None
        return value if isinstance(value, str) and value in self._attr_options else None

    async def async_select_option(self, option: str) -> None:
        """Write the mode (NV register: rate-limited, daily budget, never retried)."""
        await self._async_write(option)
