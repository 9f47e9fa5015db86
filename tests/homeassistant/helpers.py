"""Shared helpers of the Home Assistant tests (imported only when HA is installed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

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
