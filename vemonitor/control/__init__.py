"""Safe control of VE.Direct devices over HEX (issue 23; docs/control.md).

The pieces:

* :mod:`vemonitor.control.table`: the allow-list of named controls and the hard deny list;
* :mod:`vemonitor.control.settings`: what the user enabled per device;
* :mod:`vemonitor.control.store`: the audit log, rate limits and NV budget (SQLite in the
  state dir);
* :mod:`vemonitor.control.device`: :class:`DeviceControls`, the checks, the write
  transaction and the lease of one device;
* :class:`ControlHub`: several devices behind one :class:`vemonitor.controltypes.Controls`
  (the daemon's ``Context.controls``).

Building it around your own reader (the Home Assistant component does)::

    from vemonitor.control import ControlSetting, DeviceControls, DeviceSettings
    settings = DeviceSettings(controls={"load_output": ControlSetting(enabled=True,
                                                                      dry_run=False)})
    controls = DeviceControls(reader, settings, state_dir, device="mppt")
    controls.start()          # after reader.start(); reads identity + limits per connect
    ...
    controls.close()          # before reader.close(); a held lease then ends

``DeviceControls(reader, settings, state_dir, *, device=None, consent_all=False,
share_consent=False, store=None)``: ``device`` is the key of views and results (default
the reader's name); ``consent_all`` is the CLI's ``--enable``; ``share_consent`` records
the configured consent in the state dir (the daemon does, so ``hex set`` needs no flag).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from vemonitor.control.device import DeviceControls
from vemonitor.control.settings import ControlSetting, DeviceSettings
from vemonitor.control.store import ControlStore
from vemonitor.control.table import CONTROLS, DENIED_REGISTERS, ControlSpec
from vemonitor.controltypes import ControlResult, ControlView

__all__ = ["CONTROLS", "DENIED_REGISTERS", "ControlHub", "ControlSetting", "ControlSpec",
           "ControlStore", "DeviceControls", "DeviceSettings"]


class ControlHub:
    """Many devices' controls as one ``Controls`` (the daemon's ``Context.controls``)."""

    def __init__(self, devices: list[DeviceControls]) -> None:
        self.devices = {d.device: d for d in devices}
        self._lock = threading.Lock()

    def views(self, device: str | None = None) -> list[ControlView]:
        """Return the views of every device's enabled controls (or one device's)."""
        return [v for d in self.devices.values() for v in d.views(device)]

    def request(self, device: str, control: str, value: str | float, *, surface: str,
                caller: str, dry_run: bool = False,
                lease_s: float | None = None) -> ControlResult:
        """Route a request to its device; an unknown device is a refusal, not an error."""
        target = self.devices.get(device)
        if target is None:
            return ControlResult(device, control, "refused",
                                 f"device: {device!r} has no controls (known: "
                                 f"{', '.join(self.devices) or 'none'})", None,
                                 value if not isinstance(value, bool) else str(value), "", "",
                                 None, surface, caller, time.time())
        return target.request(device, control, value, surface=surface, caller=caller,
                              dry_run=dry_run, lease_s=lease_s)

    def subscribe(self, callback: Callable[[ControlResult], None]) -> Callable[[], None]:
        """Subscribe to every device's results; return one unsubscribe for all."""
        undo = [d.subscribe(callback) for d in self.devices.values()]

        def unsubscribe() -> None:
            for one in undo:
                one()
        return unsubscribe

    def stats(self) -> dict[str, dict[str, Any]]:
        """Return each device's control numbers (metrics)."""
        return {name: d.stats() for name, d in self.devices.items()}
