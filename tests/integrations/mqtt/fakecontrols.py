"""A fake of the contract's ``Controls`` (vemonitor.api) at the unit edge of the MQTT surface.

It records every request and answers like the core would for an accepted write (the
value becomes the read-back), so the MQTT side (topics, discovery, refusals before the
core, result publishing) is tested alone; the end-to-end tests use the real core and the
simulator (test_mqtt_control_e2e.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from vemonitor.api import ControlResult, ControlView


def view(device: str, name: str, value: Any = None, **changes: Any) -> ControlView:
    """Return a view of one control as the core shows it (the contract's shapes)."""
    shapes: dict[str, dict[str, Any]] = {
        "charger": {"kind": "switch", "options": ("off", "on")},
        "relay": {"kind": "switch", "options": ("off", "on")},
        "load_output": {"kind": "select", "options": ("off", "auto", "on")},
        "charge_current_limit": {"kind": "number", "options": (), "minimum": 0.0,
                                 "maximum": 15.0, "step": 0.1, "unit": "A"},
    }
    fields = {"minimum": None, "maximum": None, "step": None, "unit": None, "unavailable": None,
              "dry_run": False, **shapes[name], **changes}
    return ControlView(device=device, name=name, value=value, **fields)


@dataclass
class Request:
    """One call of ``request``."""

    device: str
    control: str
    value: str | float
    surface: str
    caller: str
    dry_run: bool
    lease_s: float | None


class FakeControls:
    """Holds views; ``request`` records the call, sets the value and tells the subscribers."""

    def __init__(self, *views: ControlView) -> None:
        self._views = {(v.device, v.name): v for v in views}
        self.requests: list[Request] = []
        self._subscribers: list[Callable[[ControlResult], None]] = []
        self._lock = threading.Lock()
        self.requested = threading.Event()

    def views(self, device: str | None = None) -> list[ControlView]:
        with self._lock:
            return [v for v in self._views.values() if device in (None, v.device)]

    def set_view(self, device: str, name: str, **changes: Any) -> None:
        """Change a view (a precondition fails or holds again, a new value read)."""
        with self._lock:
            self._views[(device, name)] = replace(self._views[(device, name)], **changes)

    def request(self, device: str, control: str, value: str | float, *, surface: str,
                caller: str, dry_run: bool = False,
                lease_s: float | None = None) -> ControlResult:
        self.requests.append(Request(device, control, value, surface, caller, dry_run, lease_s))
        with self._lock:
            old = self._views[(device, control)].value
            if not dry_run:
                self._views[(device, control)] = replace(self._views[(device, control)],
                                                         value=value)
        result = ControlResult(device=device, control=control,
                               result="dry_run" if dry_run else "ok", reason="", old=old,
                               new=value, frame=":8ABED0004B1", reply="" if dry_run else
                               ":8ABED000400AE", readback=None if dry_run else value,
                               surface=surface, caller=caller, time=time.time())
        self.emit(result)
        self.requested.set()
        return result

    def emit(self, result: ControlResult) -> None:
        """Tell every subscriber (what the core does for any surface's result)."""
        for callback in list(self._subscribers):
            callback(result)

    def subscribe(self, callback: Callable[[ControlResult], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)
