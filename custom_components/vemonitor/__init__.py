"""vemonitor: Victron VE.Direct devices as a native Home Assistant integration.

One config entry = one device on one serial port. A :class:`SerialReader` thread
(from the vemonitor core) reads the port; each complete snapshot is handed to the
event loop with ``loop.call_soon_threadsafe`` and dispatched to the entities. The
event loop never touches the port.

HEX (issue 22, :mod:`.hexdata`): the same reader thread carries the HEX requests the
event loop hands it (identity at each connection, the registers of enabled HEX
sensors, the MPPT's day record); their outcomes come back to the event loop the same
way. The identity fills the device registry and checks that the port still carries
the configured device: another device there raises a repair issue and makes the
entities unavailable until the right device is back (no value of a stranger is ever
shown under this device's name).

Control (issue 23, :mod:`.controldata`): when the options enable a control, a
:class:`vemonitor.control.DeviceControls` (the core's checks, write transaction, lease
and audit log) is built around the same reader; its views become switch / select /
number entities, its requests run in the executor (they block for 1-3 s), and each
result is fired as a ``vemonitor_control_result`` event.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any, TypeAlias

import serial
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady, HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_interval

from vemonitor.control import DeviceControls
from vemonitor.controltypes import ControlResult, ControlView
from vemonitor.hex_session import Outcome
from vemonitor.serial_reader import SERIAL_SETTINGS, SerialReader
from vemonitor.vedirect.hex import Reading
from vemonitor.vedirect.snapshot import Snapshot

from .config_flow import OPTIONS_FLOW_RELOADS
from .const import (
    AVAILABILITY_POLL_SECONDS,
    CONF_CONTROLS,
    CONF_FIELDS,
    CONF_FIRMWARE,
    CONF_HEX_SERIAL,
    CONF_LABELS,
    CONF_MODEL,
    CONF_PID,
    CONF_PORT,
    CONF_PRODUCT,
    CONF_SERIAL,
    CONF_STALE_AFTER,
    DEFAULT_STALE_AFTER,
    DOMAIN,
    MANUFACTURER,
    exposable_labels,
    normalized_pid,
)
from .controldata import (
    EVENT_CONTROL_RESULT,
    STATE_FOLDER,
    SURFACE,
    controls_for,
    device_settings,
    event_data,
)
from .hexdata import HexSensor, HexState, identity_mismatch, sensors_for

_LOGGER = logging.getLogger(__name__)

PLATFORMS = [Platform.SENSOR, Platform.BINARY_SENSOR, Platform.SWITCH, Platform.SELECT,
             Platform.NUMBER]

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
        self.reader.subscribe_hex(self._on_hex)
        self.hex = HexState()
        self._hex_session: object | None = None  # the reader's session identity was asked on
        self._day_seq: str | None = None  # TEXT HSDS: a change means the device's day rolled
        self.mismatch: str | None = None  # why the port's device is not this entry's
        self.controls: DeviceControls | None = None  # built by start() when one is enabled
        self._unsubscribe_results: Any = None
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

    def start(self) -> None:
        """Start the reader, then the controls when one is enabled (executor: opens files)."""
        self.reader.start()
        modes = {name: mode for name, mode in self.entry.options.get(CONF_CONTROLS, {}).items()
                 if name in controls_for(self.entry.data.get(CONF_PID))}
        data = self.entry.data
        settings = device_settings(modes, data.get(CONF_SERIAL) or data.get(CONF_HEX_SERIAL))
        if settings.any_enabled:
            self.controls = DeviceControls(self.reader, settings,
                                           self.hass.config.path(STATE_FOLDER),
                                           device=self.unique_id)
            self._unsubscribe_results = self.controls.subscribe(self._on_result)
            self.controls.start()

    def stop(self) -> None:
        """Stop the controls (a held lease ends), then the reader (executor)."""
        if self.controls is not None:
            self.controls.close()  # its lease end is still a result (event) of this entry
            self._unsubscribe_results()
        self.reader.close()

    def control_views(self) -> dict[str, ControlView]:
        """Return the enabled controls' views by name (no I/O)."""
        return {} if self.controls is None else {
            view.name: view for view in self.controls.views(self.unique_id)}

    async def async_request(self, control: str, value: str | float, caller: str) -> ControlResult:
        """Write a control (in the executor: it blocks); raise when it was not done.

        A dry run is no error: its result (the frame that would be sent) is logged and
        fired as an event like every result.
        """
        assert self.controls is not None
        result = await self.hass.async_add_executor_job(
            lambda: self.controls.request(  # type: ignore[union-attr]
                self.unique_id, control, value, surface=SURFACE, caller=caller))
        if result.result == "dry_run":
            _LOGGER.info("%s: %s", self.entry.title, result.reason)
        elif result.result != "ok":
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="control_failed",
                translation_placeholders={"control": control, "value": str(value),
                                          "result": result.result, "reason": result.reason})
        return result

    def _on_result(self, result: ControlResult) -> None:
        """Any thread: every control result goes to the event loop (also while closing:
        the end of a held lease is reported)."""
        self.hass.loop.call_soon_threadsafe(self._async_on_result, result)

    @callback
    def _async_on_result(self, result: ControlResult) -> None:
        # The entry's one device (no lookup by identifier: deprecated since HA 2026.8).
        devices = dr.async_entries_for_config_entry(dr.async_get(self.hass), self.entry.entry_id)
        self.hass.bus.async_fire(EVENT_CONTROL_RESULT, event_data(
            result, self.entry.entry_id, devices[0].id if devices else None))
        if not self._closed:
            async_dispatcher_send(self.hass, self.signal)

    @property
    def hex_sensors(self) -> list[HexSensor]:
        """Return the HEX sensors of this device's family (none without HEX)."""
        return sensors_for(self.entry.data.get(CONF_PID))

    @property
    def entity_keys(self) -> set[str]:
        """Return the unique_id suffixes of every entity this entry may have."""
        return set(self.labels) | {sensor.key for sensor in self.hex_sensors}

    @property
    def shows_values(self) -> bool:
        """Return True while the entities may show values (data flows, the right device)."""
        return self.available and self.mismatch is None

    @property
    def device_info(self) -> DeviceInfo:
        """Return the device registry entry shared by all entities."""
        data = self.entry.data
        return DeviceInfo(
            identifiers={(DOMAIN, self.unique_id)},
            manufacturer=MANUFACTURER,
            name=data.get(CONF_PRODUCT) or "VE.Direct device",
            # The device's own model name (HEX 0x010B) once known, else the PID's name.
            model=data.get(CONF_MODEL) or data.get(CONF_PRODUCT),
            model_id=data.get(CONF_PID),
            sw_version=self._firmware,
            serial_number=data.get(CONF_SERIAL) or data.get(CONF_HEX_SERIAL),
        )

    # -------------------------------------------------------------- reader thread
    def _on_snapshot(self, name: str, snapshot: Snapshot) -> None:
        """Called in the reader thread: hand complete snapshots to the event loop."""
        if snapshot.complete and not self._closed:
            self.hass.loop.call_soon_threadsafe(self._async_on_snapshot, snapshot)

    def _on_hex(self, name: str, item: Outcome | Reading) -> None:
        """Called in the reader thread: hand HEX outcomes and async lines to the event loop."""
        if not self._closed:
            self.hass.loop.call_soon_threadsafe(self._async_on_hex, item)

    # -------------------------------------------------------------- event loop
    @callback
    def _async_on_snapshot(self, snapshot: Snapshot) -> None:
        if self._closed:
            return
        self.snapshot = snapshot
        self._async_hex_step(snapshot)
        self._async_check_identity()
        if self.mismatch is None:
            self._async_update_firmware(snapshot.firmware)
        self._async_set_available(self.reader.available)
        async_dispatcher_send(self.hass, self.signal)

    @callback
    def _async_hex_step(self, snapshot: Snapshot) -> None:
        """Ask identity at a new connection, the enabled registers when due, the day record
        when the device's day rolled (the reader writes them in the gaps)."""
        requests = []
        if self.reader.hex is not None and self.reader.hex is not self._hex_session:
            self._hex_session = self.reader.hex  # a new connection: maybe another device
            requests += self.hex.connect()
        day_seq = snapshot.raw.get("HSDS")
        if day_seq is not None and self._day_seq is not None and day_seq != self._day_seq:
            requests += self.hex.day_requests()
        self._day_seq = day_seq or self._day_seq
        requests += self.hex.due(time.monotonic())
        for request in requests:
            self.reader.request_hex(request)

    @callback
    def async_want_hex(self, sensor: HexSensor, wanted: bool) -> None:
        """An enabled HEX sensor was added (or removed): ask its register (or stop)."""
        if wanted:
            first = self.hex.want(sensor.register)
            if first and sensor.record_field is not None and self._hex_session is not None:
                for request in self.hex.day_requests():  # a day sensor enabled mid-run
                    self.reader.request_hex(request)
        else:
            self.hex.unwant(sensor.register)

    @callback
    def _async_on_hex(self, item: Outcome | Reading) -> None:
        if self._closed:
            return
        if self.hex.take(item, time.monotonic()):
            self._async_check_identity()
            if self.mismatch is None:  # never a stranger's identity under this device
                self._async_store_identity()
        async_dispatcher_send(self.hass, self.signal)

    @callback
    def _async_store_identity(self) -> None:
        """Keep the HEX model name and (for a device without SER#) serial in the entry.

        Kept in the entry's data so the device registry shows them from the start of
        the next run too, and the serial number checks the device after a renumbering.
        """
        found = self.hex.identity
        data = dict(self.entry.data)
        if found.get("model"):
            data[CONF_MODEL] = found["model"]
        if found.get("serial") and not data.get(CONF_SERIAL):
            data.setdefault(CONF_HEX_SERIAL, found["serial"])
        if data != dict(self.entry.data):
            self.hass.config_entries.async_update_entry(self.entry, data=data)
        dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.entry.entry_id, identifiers={(DOMAIN, self.unique_id)},
            model=data.get(CONF_MODEL) or data.get(CONF_PRODUCT),
            serial_number=data.get(CONF_SERIAL) or data.get(CONF_HEX_SERIAL))
        self._async_update_firmware(found.get("firmware"))

    @callback
    def _async_check_identity(self) -> None:
        """Raise (or clear) the repair issue when the port carries another device.

        Known values only are compared: the configured serial (TEXT SER#, else the HEX
        serial stored at the first answer) with TEXT SER# and HEX 0x010A; the configured
        PID with TEXT PID and HEX ``:4``.
        """
        data = self.entry.data
        serial = data.get(CONF_SERIAL) or data.get(CONF_HEX_SERIAL)
        snapshot = self.snapshot
        found_pid = normalized_pid(snapshot) if snapshot is not None and snapshot.pid else None
        reasons = [
            identity_mismatch(serial, snapshot.serial if snapshot is not None else None,
                              "serial number (SER#)"),
            identity_mismatch(serial, self.hex.identity.get("serial"),
                              "serial number (HEX 0x010A)"),
            identity_mismatch(data.get(CONF_PID), found_pid, "product id"),
            identity_mismatch(data.get(CONF_PID), self.hex.identity.get("pid"),
                              "product id (HEX)"),
        ]
        mismatch = next((reason for reason in reasons if reason is not None), None)
        if mismatch == self.mismatch:
            return
        self.mismatch = mismatch
        issue_id = f"wrong_device_{self.entry.entry_id}"
        if mismatch is None:
            _LOGGER.info("%s on %s is the configured device again", self.entry.title, self.port)
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            return
        _LOGGER.warning("%s: %s carries another device (%s); its entities are unavailable "
                        "until the configured device is back", self.entry.title, self.port,
                        mismatch)
        ir.async_create_issue(
            self.hass, DOMAIN, issue_id, is_fixable=False, severity=ir.IssueSeverity.ERROR,
            translation_key="wrong_device",
            translation_placeholders={"title": self.entry.title, "port": self.port,
                                      "reason": mismatch})

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
        # The issue is about this run's port: a new load judges the device again.
        ir.async_delete_issue(self.hass, DOMAIN, f"wrong_device_{self.entry.entry_id}")
        await self.hass.async_add_executor_job(self.stop)


async def async_setup_entry(hass: HomeAssistant, entry: VEMonitorConfigEntry) -> bool:
    """Start the reader thread and the entities (not ready while the port cannot open)."""
    reason = await hass.async_add_executor_job(_port_problem, entry.data[CONF_PORT])
    if reason is not None:
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="port_unavailable",
                                  translation_placeholders={"port": entry.data[CONF_PORT],
                                                            "reason": reason})
    device = VEDevice(hass, entry)
    _async_remove_deselected_entities(hass, entry, device)
    await hass.async_add_executor_job(device.start)
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
    keep = device.entity_keys
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
