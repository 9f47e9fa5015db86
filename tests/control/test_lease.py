"""The charge-current limit as a lease (issue 23 point 3; HEX.md Q1, §8.5)."""

from __future__ import annotations

import time

import pytest

from hw_sim.simulator import Simulator
from tests.control.helpers import Make
from tests.shared import wait_until
from vemonitor.control import device as device_module
from vemonitor.controltypes import ControlResult


def test_lease_is_kept_alive_then_ends_and_the_device_falls_back(
        sim: Simulator, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """While held, 0x2015 is re-sent before the device drops it (TTL 3 s, re-sent every 1 s
    here; 60 s and 25 s in life); not renewed, the lease ends, subscribers hear it, and the
    simulator's limit falls back to not-available and the charger's own maximum."""
    monkeypatch.setattr(device_module, "LEASE_REFRESH_S", 1.0)
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None and hexdev.charger is not None
    hexdev.link_ttl_s = 3.0
    controls = make()
    controls.start()
    seen: list[ControlResult] = []
    unsubscribe = controls.subscribe(seen.append)
    try:
        expired = len(hexdev.expired)
        first = controls.request("mppt", "charge_current_limit", 4.2, surface="test",
                                 caller="pytest", lease_s=7.0)
        assert first.result == "ok" and first.frame == ":81520002A00EE", first.reason
        view = {v.name: v for v in controls.views()}["charge_current_limit"]
        assert view.value == 4.2 and view.lease_until is not None
        assert hexdev.charger.current_limit_a == 4.2
        time.sleep(5.0)  # longer than the TTL: only the keep-alive keeps the limit
        assert len(hexdev.expired) == expired and hexdev.settings[0x2015] == b"\x2a\x00"
        assert any(r.event == "keepalive" and r.result == "ok" for r in seen)
        assert wait_until(lambda: any(r.event == "lease_end" for r in seen), 6.0)
        end = next(r for r in seen if r.event == "lease_end")
        assert "not renewed" in end.reason and "falls back" in end.reason
        assert wait_until(lambda: hexdev.settings[0x2015] == b"\xff\xff", 6.0)
        assert hexdev.charger.current_limit_a is None and len(hexdev.expired) == expired + 1
        assert {v.name: v for v in controls.views()}["charge_current_limit"].lease_until is None
    finally:
        unsubscribe()
        hexdev.link_ttl_s = 60.0
    events = [r["event"] for r in controls.store.rows()]
    assert events[0] == "write" and events[-1] == "lease_end" and "keepalive" in events


def test_lease_on_a_switch_is_refused(sim: Simulator, make: Make) -> None:
    """lease_s is for the charge-current limit only."""
    controls = make()
    result = controls.request("mppt", "charger", "on", surface="test", caller="pytest",
                              lease_s=60.0)
    assert result.result == "refused" and result.reason.startswith("lease: only")
