"""The MPPT's charge-current limit (0x2015) as a number, held as a lease.

Setting it holds the limit for the lease (controldata.LEASE_S, 600 s): vemonitor
re-sends it every 25 s meanwhile. To keep a limit longer, set it again before the
lease ends (an automation every few minutes). A lease not renewed ends, and the device
falls back to its own maximum within about a minute (0x2015 is volatile, HEX.md Q1):
fail-safe when Home Assistant, the automation or vemonitor dies. The end is a
``vemonitor_control_result`` event with ``event: lease_end``; ``lease_until`` (epoch
seconds) is an attribute while the lease holds.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberMode
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from vemonitor.controltypes import ControlView

from . import VEDevice, VEMonitorConfigEntry
from .control_entity import VEMonitorControlEntity, views_of_kind

# One write at a time per device is the core's rule (its lock); HA adds none.
PARALLEL_UPDATES = 0


async def async_setup_entry(hass: HomeAssistant, entry: VEMonitorConfigEntry,
                            async_add_entities: AddEntitiesCallback) -> None:
    """Add one number per enabled number control."""
    device = entry.runtime_data
    async_add_entities(VEMonitorNumber(device, view) for view in views_of_kind(device, "number"))


class VEMonitorNumber(VEMonitorControlEntity, NumberEntity):
    """The charge-current limit in A, 0.1 A steps, 0 .. the device's own maximum."""

    _attr_device_class = NumberDeviceClass.CURRENT
    _attr_mode = NumberMode.BOX

    def __init__(self, device: VEDevice, view: ControlView) -> None:
        super().__init__(device, view)
        self._attr_native_unit_of_measurement = view.unit
        self._attr_native_step = view.step

    @property
    def native_min_value(self) -> float:
        """Return 0 (the device's own minimum)."""
        view = self.view
        return view.minimum if view is not None and view.minimum is not None else 0.0

    @property
    def native_max_value(self) -> float:
        """Return the device's own limit (least of 0xEDF0, 0xEDDF), read at connect."""
        view = self.view
        return view.maximum if view is not None and view.maximum is not None else 0.0

    @property
    def native_value(self) -> float | None:
        """Return the held lease's value, else the value read from the device."""
        view = self.view
        value = view.value if view is not None else None
        return float(value) if isinstance(value, int | float) else None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the dry-run flag and when the lease ends."""
        view = self.view
        return {**super().extra_state_attributes,
                "lease_until": view.lease_until if view is not None else None}

    async def async_set_native_value(self, value: float) -> None:
        """Hold the limit for the lease (checks: finite, on the 0.1 A step, in range)."""
        await self._async_write(value)  # refused, never rounded or clamped
