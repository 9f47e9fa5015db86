"""Config entry diagnostics (serial numbers redacted)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from . import VEMonitorConfigEntry
from .const import CONF_HEX_SERIAL, CONF_SERIAL

REDACTED = "**REDACTED**"
# (the mismatch line names both serial numbers)
# (a control view's "device" is the entry's unique_id: a serial number)
TO_REDACT = {CONF_SERIAL, CONF_HEX_SERIAL, "SER#", "unique_id", "identifiers", "mismatch",
             "device"}
_CABLE = re.compile(r"(VE_Direct_cable_)[A-Za-z0-9]+", re.IGNORECASE)
# udev's by-id names end "<vendor>_<model>_<USB serial>-if<NN>[-port<N>]" (any adapter).
_BY_ID = re.compile(r"(usb-[^/]*_)([^_/]+)(-if[0-9]+[^/]*)$")


def _redact_port(path: str) -> str:
    """Hide the adapter's USB serial in a /dev/serial/by-id name (any vendor)."""
    return _BY_ID.sub(r"\1" + REDACTED + r"\3", _CABLE.sub(r"\1" + REDACTED, path))


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: VEMonitorConfigEntry
                                             ) -> dict[str, Any]:
    """Return what helps debugging one device: entry, reader state, latest snapshot."""
    device = entry.runtime_data
    data = dict(entry.data)
    if "port" in data:
        data["port"] = _redact_port(str(data["port"]))
    stats = dataclasses.asdict(device.reader.stats)
    stats["rejected"] = dict(device.reader.stats.rejected)
    # Fields left out of range, {reason: {label: count}} (its log name holds the serial).
    stats["fields"] = device.reader.stats.fields.as_dict()
    snapshot = device.snapshot
    controls: dict[str, Any] | None = None
    if device.controls is not None:  # stats read the SQLite state: in the executor
        numbers = await hass.async_add_executor_job(device.controls.stats)
        numbers["results"] = {f"{control}/{result}": count
                              for (control, result), count in numbers["results"].items()}
        controls = {"views": [dataclasses.asdict(v) for v in device.controls.views()],
                    "stats": numbers}
    return async_redact_data({
        "entry": {"title": entry.title, "unique_id": entry.unique_id, "data": data,
                  "options": dict(entry.options)},
        "available": device.available,
        "reader_available": device.reader.available,
        "stats": stats,
        "exposed_labels": device.labels,
        "controls": controls,
        # HEX: what the device told (serial redacted) and the session's counters.
        "hex": {"answered": device.hex.answered, "identity": dict(device.hex.identity),
                "mismatch": device.mismatch, "registers_asked": sorted(device.hex.wanted),
                "session": dict(device.reader.hex.counters) if device.reader.hex else None},
        "snapshot": None if snapshot is None else {
            "raw": dict(snapshot.raw), "complete": snapshot.complete,
            "blocks": snapshot.blocks, "received_at": snapshot.received_at},
    }, TO_REDACT)
