"""Config flow: pick (or type) a serial port, identify the VE.Direct device on it."""

from __future__ import annotations

import logging
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
from homeassistant.helpers.service_info.usb import UsbServiceInfo

from vemonitor import scan
from vemonitor.scan import ProbeResult
from vemonitor.vedirect.fields import FIELD_BY_LABEL

from .const import (
    CONF_CONTROLS,
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
    by_id_path,
    device_unique_id,
    exposable_labels,
    normalized_pid,
    same_port,
)
from .controldata import DISABLED, MODES, controls_for

_LOGGER = logging.getLogger(__name__)

# Options changes reload the entry. HA >= 2025.8 does it for an OptionsFlowWithReload
# (and, from 2026.12, refuses an update listener that reloads); older HA has no such
# class, so there __init__ adds an update listener that reloads on new options only.
try:
    from homeassistant.config_entries import OptionsFlowWithReload as _OptionsFlowBase
except ImportError:  # HA < 2025.8
    _OptionsFlowBase = OptionsFlow  # type: ignore[misc,assignment]
OPTIONS_FLOW_RELOADS: bool = _OptionsFlowBase is not OptionsFlow

# Module attributes so tests (and odd setups) can point the scan elsewhere.
SCAN_GLOBS: tuple[str, ...] = scan.DEFAULT_GLOBS
PROBE_TIMEOUT: float = scan.PROBE_TIMEOUT


def _scan_ports(exclude: list[str]) -> list[ProbeResult]:
    """Probe every candidate port not used by a configured entry (runs in the executor)."""
    paths = [p for p in scan.candidate_ports(SCAN_GLOBS)
             if not any(same_port(p, used) for used in exclude)]
    return [r for r in scan.scan(paths, PROBE_TIMEOUT) if r.found]


def _identify(path: str, cable_hint: str | None) -> tuple[ProbeResult, str | None]:
    """Probe one port and derive the device's unique_id (runs in the executor)."""
    result = scan.probe(path, PROBE_TIMEOUT)
    if result.snapshot is None:
        return result, None
    return result, device_unique_id(result.snapshot, path, cable_hint)


def _port_in_use(path: str, used: list[str]) -> bool:
    """Return True when ``path`` is the same node as a configured port (executor: realpath)."""
    return any(same_port(path, other) for other in used)


def _option_label(result: ProbeResult) -> str:
    """Return how a found device is shown in the port list."""
    info = result.describe()
    return (f"{info['product']} - SER# {info['serial'] or 'n/a'} - FW {info['firmware'] or '?'}"
            f" ({result.path})")


def _entry_data(path: str, result: ProbeResult) -> dict[str, Any]:
    """Return the config entry data for a device found on ``path``."""
    snap = result.snapshot
    assert snap is not None
    return {
        CONF_PORT: path,
        CONF_PID: normalized_pid(snap),
        CONF_PRODUCT: snap.product,
        CONF_SERIAL: snap.serial,
        CONF_FIRMWARE: snap.firmware,
        CONF_LABELS: sorted(snap.raw),
    }


def _port_schema(found: list[ProbeResult], default: str | None) -> vol.Schema:
    """Return a schema: a list of found devices that also accepts a typed path."""
    options = [SelectOptionDict(value=r.path, label=_option_label(r)) for r in found]
    if default is None and found:
        default = found[0].path
    key = vol.Required(CONF_PORT, default=default) if default else vol.Required(CONF_PORT)
    return vol.Schema({key: SelectSelector(SelectSelectorConfig(
        options=options, custom_value=True, mode=SelectSelectorMode.DROPDOWN))})


class VEMonitorConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up one VE.Direct device per config entry."""

    VERSION = 1

    def __init__(self) -> None:
        self._found: list[ProbeResult] = []
        self._discovered: tuple[str, ProbeResult] | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Return the options flow."""
        return VEMonitorOptionsFlow()

    # ------------------------------------------------------------------ helpers
    def _configured_ports(self) -> list[str]:
        return [e.data[CONF_PORT] for e in self._async_current_entries(include_ignore=False)
                if CONF_PORT in e.data]

    async def _async_abort_if_port_configured(self, path: str) -> None:
        """A configured device holds its port exclusively: probing it would fail."""
        if await self.hass.async_add_executor_job(_port_in_use, path, self._configured_ports()):
            raise AbortFlow("already_configured")

    async def _async_identify(self, path: str, cable_hint: str | None = None
                              ) -> tuple[ProbeResult, str | None]:
        """Probe ``path``; return the result and the device's unique_id (None: no device)."""
        result, unique_id = await self.hass.async_add_executor_job(_identify, path, cable_hint)
        if unique_id is None:
            _LOGGER.debug("no VE.Direct device on %s: %s", path, result.why_not())
        return result, unique_id

    def _create(self, path: str, result: ProbeResult) -> ConfigFlowResult:
        assert result.snapshot is not None
        return self.async_create_entry(title=result.snapshot.product,
                                       data=_entry_data(path, result))

    # ------------------------------------------------------------------ user
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick a port from a scan, or type one."""
        errors: dict[str, str] = {}
        placeholders = {"port": "", "reason": ""}
        default: str | None = None
        if user_input is not None:
            path = str(user_input[CONF_PORT]).strip()
            default = path
            await self._async_abort_if_port_configured(path)
            result, unique_id = await self._async_identify(path)
            if unique_id is None:
                errors["base"] = "no_device"
                placeholders = {"port": path, "reason": result.why_not()}
            else:
                await self.async_set_unique_id(unique_id)
                # Same device on another path (ttyUSB renumbering): store the new path.
                self._abort_if_unique_id_configured(updates={CONF_PORT: path})
                return self._create(path, result)
        else:
            self._found = await self.hass.async_add_executor_job(
                _scan_ports, self._configured_ports())
        return self.async_show_form(step_id="user", data_schema=_port_schema(self._found, default),
                                    errors=errors, description_placeholders=placeholders)

    # ------------------------------------------------------------------ usb
    async def async_step_usb(self, discovery_info: UsbServiceInfo) -> ConfigFlowResult:
        """A VE.Direct cable was plugged in."""
        path = await self.hass.async_add_executor_job(by_id_path, discovery_info.device)
        await self._async_abort_if_port_configured(path)
        result, unique_id = await self._async_identify(path, discovery_info.serial_number)
        if unique_id is None:
            return self.async_abort(reason="no_device")
        await self.async_set_unique_id(unique_id)
        self._abort_if_unique_id_configured(updates={CONF_PORT: path})
        self._discovered = (path, result)
        assert result.snapshot is not None
        self.context["title_placeholders"] = {"name": result.snapshot.product}
        return await self.async_step_usb_confirm()

    async def async_step_usb_confirm(self, user_input: dict[str, Any] | None = None
                                     ) -> ConfigFlowResult:
        """Confirm adding a discovered device."""
        assert self._discovered is not None
        path, result = self._discovered
        if user_input is not None:
            return self._create(path, result)
        self._set_confirm_only()
        info = result.describe()
        return self.async_show_form(step_id="usb_confirm", description_placeholders={
            "product": str(info["product"]), "serial": str(info["serial"] or "n/a"),
            "firmware": str(info["firmware"] or "?"), "port": path})

    # ------------------------------------------------------------------ reconfigure
    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None
                                     ) -> ConfigFlowResult:
        """Move the configured device to another port."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        placeholders = {"port": "", "reason": ""}
        if user_input is not None:
            path = str(user_input[CONF_PORT]).strip()
            if await self.hass.async_add_executor_job(_port_in_use, path, [entry.data[CONF_PORT]]):
                # Our own reader holds this port: nothing to probe, keep the new spelling.
                return self.async_update_reload_and_abort(entry, data_updates={CONF_PORT: path})
            result, unique_id = await self._async_identify(path)
            if unique_id is None:
                errors["base"] = "no_device"
                placeholders = {"port": path, "reason": result.why_not()}
            else:
                await self.async_set_unique_id(unique_id)
                self._abort_if_unique_id_mismatch(reason="wrong_device")
                return self.async_update_reload_and_abort(entry, data_updates=_entry_data(path, result))
        else:
            self._found = await self.hass.async_add_executor_job(
                _scan_ports, self._configured_ports())
        return self.async_show_form(
            step_id="reconfigure", data_schema=_port_schema(self._found, entry.data[CONF_PORT]),
            errors=errors, description_placeholders=placeholders)


class VEMonitorOptionsFlow(_OptionsFlowBase):
    """Stale timeout, which fields become entities, and the controls (issue 23).

    Each control of the device's family is one choice: disabled (default), dry run
    (shows the frame that would be sent) or enabled (writes); the form's description
    carries the warning (strings.json options.step.init.description).
    """

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show and store the options."""
        names = controls_for(self.config_entry.data.get(CONF_PID))
        if user_input is not None:
            user_input[CONF_STALE_AFTER] = float(user_input[CONF_STALE_AFTER])
            user_input[CONF_CONTROLS] = {name: user_input.pop(name, DISABLED) for name in names}
            return self.async_create_entry(data=user_input)
        entry = self.config_entry
        labels = exposable_labels(entry.data.get(CONF_LABELS, []))
        selected = entry.options.get(CONF_FIELDS, labels)
        options = [SelectOptionDict(value=label, label=f"{label} - {FIELD_BY_LABEL[label].description}")
                   for label in labels]
        schema = vol.Schema({
            vol.Required(CONF_STALE_AFTER,
                         default=entry.options.get(CONF_STALE_AFTER, DEFAULT_STALE_AFTER)):
                NumberSelector(NumberSelectorConfig(min=1, max=600, step=0.5,
                                                    unit_of_measurement="s",
                                                    mode=NumberSelectorMode.BOX)),
            vol.Required(CONF_FIELDS, default=selected):
                SelectSelector(SelectSelectorConfig(options=options, multiple=True,
                                                    mode=SelectSelectorMode.LIST)),
        })
        modes = entry.options.get(CONF_CONTROLS, {})
        schema = schema.extend({
            vol.Required(name, default=modes.get(name, DISABLED)):
                SelectSelector(SelectSelectorConfig(options=list(MODES),
                                                    translation_key="control_mode",
                                                    mode=SelectSelectorMode.DROPDOWN))
            for name in names})
        return self.async_show_form(step_id="init", data_schema=schema)
