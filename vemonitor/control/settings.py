"""Per-device control settings: what the user enabled (docs/control.md "Configuration").

Every control is off unless enabled. An enabled control stays in dry-run (nothing is
written, the frame that would be sent is shown) until its settings say
``dry_run: false``: that is what "dry-run is the default for the first enable" means
here. The explicit word is the user's second consent, after ``enabled: true``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vemonitor.control.table import CONTROLS

NV_WRITES_PER_DAY = 20  # HEX.md §8.7: "0xEDAB and every NV register: ... <= 20/day"
DEFAULT_LEASE_S = 600.0  # HEX.md §8.5: "re-assert it within e.g. 10 min"
MAX_LEASE_S = 86400.0  # a lease longer than a day is a forgotten lease


@dataclass(frozen=True)
class ControlSetting:
    """One control of one device: enabled, and whether it only shows what it would do."""

    enabled: bool = False
    dry_run: bool = True


@dataclass(frozen=True)
class DeviceSettings:
    """The controls of one device (a serial connector's ``controls`` keys)."""

    controls: dict[str, ControlSetting] = field(default_factory=dict)
    serial: str | None = None  # the serial number the controls are for (None: the first seen)
    nv_writes_per_day: int = NV_WRITES_PER_DAY
    lease_s: float = DEFAULT_LEASE_S

    def __post_init__(self) -> None:
        for name in self.controls:
            if name not in CONTROLS:
                raise ValueError(f"controls.{name}: not a control; the controls are "
                                 f"{', '.join(CONTROLS)} (raw registers are never written)")
        if not 0 <= self.nv_writes_per_day <= NV_WRITES_PER_DAY:
            raise ValueError(f"nv_writes_per_day must be 0..{NV_WRITES_PER_DAY} (HEX.md §8.7), "
                             f"got {self.nv_writes_per_day}")
        if not (math.isfinite(self.lease_s) and 30.0 <= self.lease_s <= MAX_LEASE_S):
            raise ValueError(f"lease_s must be 30..{MAX_LEASE_S:g} s, got {self.lease_s}")

    def setting(self, control: str) -> ControlSetting:
        """Return a control's setting (disabled when not configured)."""
        return self.controls.get(control, ControlSetting())

    @property
    def any_enabled(self) -> bool:
        """Return True when at least one control is enabled."""
        return any(s.enabled for s in self.controls.values())
