"""The component's side of control (issue 23): options -> settings, results -> events.

No Home Assistant imports (as :mod:`.hexdata`). The checks, the write transaction,
the lease and the audit log are the core's :class:`vemonitor.control.DeviceControls`
(docs/control.md); the component only builds it around its own reader and turns its
views into entities and its results into events.

Decisions (docs/home-assistant.md repeats them for users):

* **One choice per control in the options flow**: ``disabled`` (the default: no entity,
  nothing can be written), ``dry_run`` (an entity whose writes only show the exact
  frame that would be sent, in the event and the log) or ``enabled`` (writes for
  real). Only the controls of the device's family are offered (the core's allow-list:
  ``vemonitor.control.CONTROLS``).
* **No hidden step from "disabled" to "writes"**: the core's rule "dry run is the
  default for the first enable" becomes two explicit words here: ``dry_run`` is listed
  before ``enabled``, and only ``enabled`` writes (the form's description says to start
  with a dry run).
* **The charge-current limit is a lease** of :data:`LEASE_S` seconds: setting the
  number holds the limit that long (the core re-sends it every 25 s); an automation
  that wants to keep it sets it again before the lease ends. Not renewed, or Home
  Assistant stopped, the device falls back to its own maximum within about a minute
  (0x2015 is volatile: HEX.md Q1): fail-safe.
* **Every result is an event** :data:`EVENT_CONTROL_RESULT` (writes, refusals, dry
  runs, the lease's keep-alives and its end), from any surface writing this device
  through this Home Assistant instance.
* The audit log, rate limits and NV budget live in ``<config>/vemonitor/``
  (:data:`STATE_FOLDER`), read with ``vemonitor hex log --state-dir <config>/vemonitor``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vemonitor.control import CONTROLS, ControlSetting, DeviceSettings
from vemonitor.control.settings import DEFAULT_LEASE_S
from vemonitor.controltypes import ControlResult
from vemonitor.vedirect.hex_registers import family_of

EVENT_CONTROL_RESULT = "vemonitor_control_result"
STATE_FOLDER = "vemonitor"  # under Home Assistant's config folder
SURFACE = "ha"
LEASE_S = DEFAULT_LEASE_S  # 600 s (HEX.md §8.5: "re-assert it within e.g. 10 min")

DISABLED, DRY_RUN, ENABLED = "disabled", "dry_run", "enabled"
MODES = (DISABLED, DRY_RUN, ENABLED)
# The entity platform of each control kind (controltypes.ControlKind).
PLATFORM_OF_KIND = {"switch": "switch", "select": "select", "number": "number"}


def controls_for(pid: str | None) -> list[str]:
    """Return the names of the controls a device with product id ``pid`` may have."""
    try:
        family = family_of(int(pid or "", 16))
    except ValueError:
        return []
    return [name for name, spec in CONTROLS.items() if family in spec.families]


def device_settings(modes: Mapping[str, str], serial: str | None) -> DeviceSettings:
    """Return the core's settings for the options' control modes (unknown modes: disabled)."""
    controls = {name: ControlSetting(enabled=mode in (DRY_RUN, ENABLED), dry_run=mode != ENABLED)
                for name, mode in modes.items() if name in CONTROLS and mode in (DRY_RUN, ENABLED)}
    return DeviceSettings(controls=controls, serial=serial or None, lease_s=LEASE_S)


def event_data(result: ControlResult, entry_id: str, device_id: str | None) -> dict[str, Any]:
    """Return the event's data: every field of the result, plus where it belongs in HA."""
    data = dataclasses.asdict(result)
    data.update(entry_id=entry_id, device_id=device_id)
    return data
