"""The on/off controls as switches: ``charger`` (0x0200) and ``relay`` (0x034E)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import VEMonitorConfigEntry
from .control_entity import VEMonitorControlEntity, views_of_kind

# One write at a time per device is the core's rule (its lock); HA adds none.
PARALLEL_UPDATES = 0


async def async_setup_entry(hass: HomeAssistant, entry: VEMonitorConfigEntry,
                            async_add_entities: AddEntitiesCallback) -> None:
    """Add one switch per enabled on/off control."""
    device = entry.runtime_data
    async_add_entities(VEMonitorSwitch(device, view) for view in views_of_kind(device, "switch"))


class VEMonitorSwitch(VEMonitorControlEntity, SwitchEntity):
    """Switch the charger or the relay (value read back from the device)."""

    @property
    def is_on(self) -> bool | None:
        """Return the last value read from the device (None while unknown)."""
        view = self.view
        value = view.value if view is not None else None
        return None if value is None else value == "on"

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Write "on" (checks, Set, read-back, effect: the core's transaction)."""
        await self._async_write("on")

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Write "off"."""
        await self._async_write("off")
