"""Test helpers shared by the emoncms tests: a fixed time and a clock that moves when told."""

from __future__ import annotations

from tests.integrations.helpers import NOW, FakeClock  # noqa: F401 (re-exported)

KEY = "0123456789abcdef0123456789abcdef"  # what the contract server accepts by default


