"""Helpers shared by the integration tests."""

from __future__ import annotations

from vemonitor.testing import ManualClock

NOW = 1_714_560_000.0  # 2024-05-01T10:40:00Z


class FakeClock(ManualClock):
    """The core's ManualClock (sleep advances time), with ``t`` to read or set the time."""

    def __init__(self, now: float = NOW) -> None:
        super().__init__(now)

    @property
    def t(self) -> float:
        """Return the current time."""
        return self.now()

    @t.setter
    def t(self, value: float) -> None:
        with self._lock:
            self._now = value
