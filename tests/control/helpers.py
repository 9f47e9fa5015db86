"""Helpers of the control tests (a plain module: tests import helpers, not conftest)."""

from __future__ import annotations

from collections.abc import Callable

from vemonitor.control import ControlSetting, DeviceControls

ON = ControlSetting(enabled=True, dry_run=False)
Make = Callable[..., DeviceControls]
