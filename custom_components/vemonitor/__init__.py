"""vemonitor: Victron VE.Direct devices as a native Home Assistant integration.

One config entry = one device on one serial port. A :class:`SerialReader` thread
(from the vemonitor core) reads the port; each complete snapshot is handed to the
event loop with ``loop.call_soon_threadsafe`` and dispatched to the entities. The
event loop never touches the port.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, TypeAlias

import serial
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_interval

from vemonitor.serial_reader import SERIAL_SETTINGS, SerialReader
from vemonitor.vedirect.snapshot import Snapshot

from .config_flow import OPTIONS_FLOW_RELOADS
from .const import (
    AVAILABILITY_POLL_SECONDS,
    CONF_FIELDS,
    CONF_FIRMWARE,
    CONF_LABELS,
    CONF_PID,
    CONF_PORT,
    CONF_PRODUCT,
    CONF_SERIAL,
    CONF_STALE_AFTER,
    DEFAULT_STALE_AFTER,
    DOMAIN,
    MANUFACTURER,
    exposable_labels,
)

_LOGGER = logging.getLogger(__name__)

PLATFORMS = [Platform.SENSOR, Platform.BINARY_SENSOR]

# (no PEP 695 ``type`` statement: the repo lints for Python 3.11)
VEMonitorConfigEntry: TypeAlias = "ConfigEntry[VEDevice]"


class VEDevice:
    """The running reader of one config entry, as seen from the event loop."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        self.hass = hass
        self.entry = entry
        self.unique_id = entry.unique_id or entry.entry_id
        self.port: str = entry.data[CONF_PORT]
        self.signal = f"{DOMAIN}_update_{entry.entry_id}"
        self.reader = SerialReader(
            self.unique_id, self.port,
            stale_after=float(entry.options.get(CONF_STALE_AFTER, DEFAULT_STALE_AFTER)))
        self.reader.subscribe(self._on_snapshot)
        self.snapshot: Snapshot | None = None
        self.available = False
        self._was_available = False
        self._firmware: str | None = entry.data.get(CONF_FIRMWARE)
        self.options = dict(entry.options)  # as loaded (see _async_reload_on_new_options)
        self._closed = False

    @property
    def labels(self) -> list[str]:
        """Return the labels exposed as entities (options, else all the device sent)."""
        known = exposable_labels(self.entry.data.get(CONF_LABELS, []))
        chosen = self.entry.options.get(CONF_FIELDS)
        return known if chosen is None else [label for label in known if label in chosen]

    @property
    def device_info(self) -> DeviceInfo:
        """Return the device registry entry shared by all entities."""
        data = self.entry.data
        return DeviceInfo(
            identifiers={(DOMAIN, self.unique_id)},
            manufacturer=MANUFACTURER,
            name=data.get(CONF_PRODUCT) or "VE.Direct device",
            model=data.get(CONF_PRODUCT),
            model_id=data.get(CONF_PID),
            sw_version=data.get(CONF_FIRMWARE),
            serial_number=data.get(CONF_SERIAL),
        )

    # -------------------------------------------------------------- reader thread
    def _on_snapshot(self, name: str, snapshot: Snapshot) -> None:
        """Called in the reader thread: hand complete snapshots to the event loop."""
        if snapshot.complete and not self._closed:
            self.hass.loop.call_soon_threadsafe(self._async_on_snapshot, snapshot)

    # -------------------------------------------------------------- event loop
    @callback
    def _async_on_snapshot(self, snapshot: Snapshot) -> None:
        if self._closed:
            return
        self.snapshot = snapshot
        self._async_update_firmware(snapshot.firmware)
        self._async_set_available(self.reader.available)
        async_dispatcher_send(self.hass, self.signal)

    @callback
    def async_poll_availability(self, _now: Any = None) -> None:
        """Follow the reader's availability (unplug, stale data) between snapshots."""
        if not self._closed:
            self._async_set_available(self.reader.available and self.snapshot is not None)

    @callback
    def _async_set_available(self, available: bool) -> None:
        if available == self.available:
            return
        self.available = available
        if not available and self._was_available:
            _LOGGER.warning("%s on %s is unavailable (unplugged or no data for %g s)",
                            self.entry.title, self.port, self.reader.stale_after)
        elif available and self._was_available:
            _LOGGER.info("%s on %s is available again", self.entry.title, self.port)
        self._was_available = self._was_available or available
        async_dispatcher_send(self.hass, self.signal)

    @callback
    def _async_update_firmware(self, firmware: str | None) -> None:
        """Keep the device registry's sw_version in line with FW/FWE (firmware updates)."""
        if not firmware or firmware == self._firmware:
            return
        self._firmware = firmware
        # async_get_or_create updates the existing device (no lookup by identifier: that
        # is deprecated since HA 2026.8, identifiers are unique per config entry only).
        dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.entry.entry_id, identifiers={(DOMAIN, self.unique_id)},
            sw_version=firmware)

    async def async_close(self) -> None:
        """Stop the reader thread and close the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self.hass.async_add_executor_job(self.reader.close)


async def async_setup_entry(hass: HomeAssistant, entry: VEMonitorConfigEntry) -> bool:
    """Start the reader thread and the entities (not ready while the port cannot open)."""
    reason = await hass.async_add_executor_job(_port_problem, entry.data[CONF_PORT])
    if reason is not None:
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="port_unavailable",
                                  translation_placeholders={"port": entry.data[CONF_PORT],
                                                            "reason": reason})
    device = VEDevice(hass, entry)
    _async_remove_deselected_entities(hass, entry, device)
    await hass.async_add_executor_job(device.reader.start)
    entry.runtime_data = device

    async def _async_stop(_event: Event) -> None:
        await device.async_close()

    # async_listen, not listen_once: the remover must stay valid after the event fired.
    entry.async_on_unload(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _async_stop))
    entry.async_on_unload(async_track_time_interval(
        hass, device.async_poll_availability, timedelta(seconds=AVAILABILITY_POLL_SECONDS)))
    if not OPTIONS_FLOW_RELOADS:  # HA < 2025.8 (see config_flow.OPTIONS_FLOW_RELOADS)
        entry.async_on_unload(entry.add_update_listener(_async_reload_on_new_options))
    try:
        await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    except Exception:
        await device.async_close()
        raise
    return True


async def async_unload_entry(hass: HomeAssistant, entry: VEMonitorConfigEntry) -> bool:
    """Remove the entities, then stop the reader thread."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_close()
    return unloaded


@callback
def _async_remove_deselected_entities(hass: HomeAssistant, entry: ConfigEntry, device: VEDevice) -> None:
    """Drop registry entries of fields no longer exposed (options changed)."""
    registry = er.async_get(hass)
    prefix = f"{device.unique_id}_"
    keep = set(device.labels)
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if entity.unique_id.removeprefix(prefix) not in keep:
            registry.async_remove(entity.entity_id)


def _port_problem(port: str) -> str | None:
    """Return why ``port`` cannot be opened now, or None when it can (executor)."""
    try:
        serial.Serial(port, exclusive=True, **SERIAL_SETTINGS).close()
    except (OSError, serial.SerialException) as err:
        return err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return None


async def _async_reload_on_new_options(hass: HomeAssistant, entry: VEMonitorConfigEntry) -> None:
    """HA < 2025.8 only: reload when the OPTIONS changed.

    Data changes (reconfigure, a moved port) are reloaded by the flow helpers themselves;
    reloading for them here too would reload twice.
    """
    if dict(entry.options) != entry.runtime_data.options:
        hass.config_entries.async_schedule_reload(entry.entry_id)
