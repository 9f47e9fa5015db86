"""Shared helpers of the Home Assistant tests (imported only when HA is installed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

if TYPE_CHECKING:
    from hw_sim import Simulator

DOMAIN = "vemonitor"


async def wait_for(hass: HomeAssistant, predicate: Callable[[], bool], timeout: float = 15.0,
                   what: str = "condition") -> None:
    """Let the event loop run until ``predicate()`` holds (real time: the reader is a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await hass.async_block_till_done()
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def entity_id(hass: HomeAssistant, platform: str, unique_id: str, label: str) -> str:
    """Return the entity_id of one field's entity."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{unique_id}_{label}")
    assert found is not None, f"no {platform} entity for {label}"
    return found


async def setup_entry(hass: HomeAssistant, sim: Simulator,
                      name: str) -> config_entries.ConfigEntry:
    """Add a device through the real config flow (which sets the entry up)."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"port": str(sim.path(name))})
    assert result["type"] == "create_entry", result
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


def the_device(hass: HomeAssistant, entry: config_entries.ConfigEntry) -> dr.DeviceEntry:
    """Return the one device of ``entry`` (no lookup by identifier: deprecated in 2026.8)."""
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert len(devices) == 1, devices
    return devices[0]
