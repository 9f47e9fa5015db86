"""Test helpers shared by the emoncms tests: a fixed time and a clock that moves when told."""

from __future__ import annotations

import threading

NOW = 1_714_560_000.0  # 2024-05-01T10:40:00Z
KEY = "0123456789abcdef0123456789abcdef"  # what the contract server accepts by default


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = NOW) -> None:
        self.t = now

    def now(self) -> float:
        """Return the set time."""
        return self.t

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Advance the time instead of waiting."""
        self.t += max(seconds, 0.0)
        return False
