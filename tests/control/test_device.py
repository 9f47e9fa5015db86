"""DeviceControls against the simulator through its pty (issue 23 points 1-3)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from hw_sim.simulator import Simulator
from tests.control.helpers import ON, Make
from tests.shared import wait_until
from vemonitor.control import CONTROLS, DENIED_REGISTERS, ControlSetting, DeviceSettings
from vemonitor.control.store import ControlStore
from vemonitor.controltypes import ControlResult, Controls


def _ask(controls: object, control: str, value: object, **kwargs: object) -> ControlResult:
    return controls.request("mppt" if "device" not in kwargs else kwargs.pop("device"),  # type: ignore[attr-defined]
                            control, value, surface="test", caller="pytest", **kwargs)


def test_load_output_end_to_end(sim: Simulator, make: Make) -> None:
    """Set, reply echoed, read back, effect on 0xEDA8; audit row complete; NV counted."""
    controls = make()
    assert isinstance(controls, Controls)
    view = {v.name: v for v in controls.views()}["load_output"]
    assert view.unavailable is None and view.options == ("off", "auto", "on")
    target = "on" if view.value == "off" else "off"
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None
    nv_before = hexdev.nv_writes[0xEDAB]
    result = _ask(controls, "load_output", target)
    assert result.result == "ok", result.reason
    wire = {"off": "00", "on": "04"}[target]
    assert result.frame == f":8ABED00{wire}" + result.frame[-2:] and result.reply == result.frame
    assert result.readback == target and result.old == view.value
    assert hexdev.settings[0xEDAB] == bytes([int(wire)])
    assert hexdev.nv_writes[0xEDAB] == nv_before + 1
    assert (sim.devices["mppt"].written_fields.get("LOAD") == target.upper()
            or wait_until(lambda: sim.devices["mppt"].written_fields.get("LOAD")
                          == target.upper(), 3.0))
    rows = controls.store.rows()
    assert rows[-1]["result"] == "ok" and rows[-1]["state"] == "done"
    assert rows[-1]["frame"] == result.frame and rows[-1]["readback"] == target
    assert controls.store.nv_writes(controls.serial or "", result.time) == 1
    # Known frames of HEX.md §2.3: off = :8ABED0000B5, on = :8ABED0004B1.
    assert result.frame in (":8ABED0000B5", ":8ABED0004B1")


def test_charger_off_then_on_shows_effect(sim: Simulator, make: Make,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """0x0200 = 4 switches the charger off (OR bit 0x004), 1 on again; frames of HEX.md."""
    controls = make()
    off = _ask(controls, "charger", "off")
    assert (off.result, off.frame, off.readback) == ("ok", ":80002000447", "off"), off.reason
    assert sim.devices["mppt"].written_fields.get("CS") == "0" or wait_until(
        lambda: sim.devices["mppt"].written_fields.get("CS") == "0", 3.0)
    # the 10 s rate limit is tested elsewhere; here the second write follows at once
    monkeypatch.setitem(CONTROLS, "charger", dataclasses.replace(CONTROLS["charger"],
                                                                 min_interval_s=0.0))
    on = _ask(controls, "charger", "on")
    assert (on.result, on.frame, on.readback) == ("ok", ":8000200014A", "on"), on.reason


@pytest.mark.parametrize(("control", "value", "check"), [
    ("charge_current_limit", math.nan, "value: nan is not a finite number"),
    ("charge_current_limit", math.inf, "value: inf is not a finite number"),
    ("charge_current_limit", 15.1, "range: 15.1 A is outside 0..15 A"),
    ("charge_current_limit", -0.1, "range: -0.1 A is outside 0..15 A"),
    ("charge_current_limit", 2.05, "value: 2.05 A is not a multiple of 0.1 A"),
    ("load_output", "alt1", "value: 'alt1' is not one of off, auto, on"),
    ("0x0200", 1, "allow-list: raw register 0x0200 is never written"),
    ("relay_invert", 1, "allow-list: 'relay_invert' is not a control"),
    ("relay", "on", "disabled: relay is not enabled"),
])
def test_refusals_name_their_check_and_send_nothing(sim: Simulator, make: Make, control: str,
                                                    value: object, check: str) -> None:
    """Each refusal: one line naming the check, nothing on the wire, one audit row."""
    controls = make()
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None
    sets = len(hexdev.sets)
    result = _ask(controls, control, value)
    assert result.result == "refused" and check in result.reason and "\n" not in result.reason
    assert result.frame == "" and len(hexdev.sets) == sets
    assert controls.store.rows()[-1]["result"] == "refused"


def test_deny_list_is_disjoint_from_the_allow_list() -> None:
    """No allowed control writes a denied register (HEX.md §8.2)."""
    assert not {spec.register for spec in CONTROLS.values()} & DENIED_REGISTERS
    assert {0x034D, 0x200E, 0x0004, 0x1030} <= DENIED_REGISTERS


def test_dry_run_shows_frame_and_current_value_and_sends_nothing(sim: Simulator,
                                                                 make: Make) -> None:
    """Dry run needs no consent; the exact frame and the value read now."""
    controls = make(settings=DeviceSettings())  # nothing enabled
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None
    sets = len(hexdev.sets)
    result = _ask(controls, "load_output", "on", dry_run=True)
    assert result.result == "dry_run" and result.frame == ":8ABED0004B1"
    assert result.old in ("off", "auto", "on") and len(hexdev.sets) == sets


def test_enabled_but_dry_run_by_default(sim: Simulator, make: Make) -> None:
    """enabled: true without dry_run: false only shows the frame (the first enable)."""
    controls = make(settings=DeviceSettings(controls={"load_output": ControlSetting(True)}))
    assert controls.views()[0].dry_run is True
    result = _ask(controls, "load_output", "on")
    assert result.result == "dry_run" and result.frame == ":8ABED0004B1"


def test_moved_device_is_refused(sim: Simulator, make: Make) -> None:
    """Another serial on the port than the configured one: every control unavailable."""
    controls = make(settings=DeviceSettings(controls={"load_output": ON}, serial="HQ0000XXXXX"))
    result = _ask(controls, "load_output", "on")
    assert result.result == "refused" and result.reason.startswith("identity: serial ")
    assert "HQ0000XXXXX" in result.reason and "moved" in result.reason
    assert controls.views()[0].unavailable == result.reason


def test_never_read_register_is_never_written(sim: Simulator, make: Make) -> None:
    """A register the device did not give at connect is not written (width unknown)."""
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None
    saved = hexdev.settings.pop(0xEDAB)
    try:
        controls = make(settings=DeviceSettings(controls={"load_output": ON}))
        result = _ask(controls, "load_output", "on")
    finally:
        hexdev.settings[0xEDAB] = saved
    assert result.result == "refused" and result.reason.startswith("never read: load_output")


def test_rate_limit_and_nv_budget_persist(sim: Simulator, make: Make, tmp_path: object) -> None:
    """A second write within 60 s is refused, also by a new process (state dir); budget 0."""
    controls = make()
    now = {v.name: v.value for v in controls.views()}["load_output"]
    first = _ask(controls, "load_output", "auto" if now != "auto" else "on")
    assert first.result == "ok" and first.frame, first.reason
    controls.reader.close()  # one reader per port (the port is locked)
    again = make()  # another DeviceControls on the same state dir
    second = _ask(again, "load_output", "off")
    assert second.result == "refused" and second.reason.startswith("rate limit: load_output")
    again.reader.close()
    budget = make(settings=DeviceSettings(controls={"load_output": ON}, nv_writes_per_day=0),
                  state_dir=tmp_path / "other")  # type: ignore[operator]
    third = _ask(budget, "load_output", "off")
    assert third.result == "refused" and third.reason.startswith("NV budget: 0 of 0")


def test_lost_set_nv_is_not_retried_volatile_once(sim: Simulator, make: Make,
                                                  tmp_path: object) -> None:
    """No reply: load_output (NV) sent once; charger (volatile) sent twice; both timeout."""
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None
    controls = make(state_dir=tmp_path / "lost")  # type: ignore[operator]
    hexdev.drop_sets = True
    try:
        before = hexdev.counters.dropped_sets
        load = _ask(controls, "load_output", "off" if hexdev.settings[0xEDAB] != b"\x00" else "on")
        after_load = hexdev.counters.dropped_sets
        charger = _ask(controls, "charger", "off" if hexdev.settings[0x0200] != b"\x04" else "on")
        after_charger = hexdev.counters.dropped_sets
    finally:
        hexdev.drop_sets = False
    assert load.result == "timeout" and "NV: not retried" in load.reason
    assert after_load - before == 1
    assert charger.result == "timeout" and after_charger - after_load == 2
    rows = ControlStore(tmp_path / "lost").rows()  # type: ignore[operator]
    assert [r["result"] for r in rows[-2:]] == ["timeout", "timeout"]


def test_relay_needs_capability_and_remote_mode(sim: Simulator, make: Make) -> None:
    """Relay: an MPPT without relay capability bits is refused; a BMV whose relay mode is
    not 2 (remote) is refused by the condition (HEX.md §8.2, B4)."""
    relay = DeviceSettings(controls={"relay": ON})
    mppt = make(settings=relay)
    result = _ask(mppt, "relay", "on")
    assert result.result == "refused" and result.reason.startswith("capability: ")
    mppt.reader.close()
    bmvdev = sim.devices["bmv700"].hex
    assert bmvdev is not None
    saved = bmvdev.settings[0x034F]
    bmvdev.settings[0x034F] = b"\x00"
    try:
        bmv = make("bmv700", relay, device="bmv700")
        result = _ask(bmv, "relay", "on", device="bmv700")
    finally:
        bmvdev.settings[0x034F] = saved
    assert result.result == "refused"
    assert result.reason == "condition: relay mode (0x034F) is 0, not 2 (remote)"


def test_no_recent_frame_is_refused(sim: Simulator, make: Make) -> None:
    """A device silent for more than 5 s: refused before anything is sent."""
    controls = make()
    sim.stall("mppt", 8.0)
    assert wait_until(lambda: (controls.reader.block_age() or 0) > 5.5, 10.0)
    result = _ask(controls, "load_output", "on")
    assert result.result == "refused" and result.reason.startswith("no recent frame: ")


def test_old_firmware_is_refused(tmp_path: object, make: Make) -> None:
    """MPPT firmware 1.23 pauses TEXT during HEX (HEX.md T1): writes are refused."""
    from pathlib import Path

    from vemonitor.control import DeviceControls
    from vemonitor.serial_reader import SerialReader

    folder = Path(str(tmp_path)) / "old"
    with Simulator(["mppt_fw123"], folder) as old:
        reader = SerialReader("old", str(old.path("mppt_fw123")))
        reader.start()
        controls = DeviceControls(reader, DeviceSettings(controls={"charger": ON}),
                                  folder / "state", device="old")
        try:
            assert wait_until(lambda: controls.ensure_identity() is None, 15.0)
            result = controls.request("old", "charger", "off", surface="test", caller="t")
        finally:
            controls.close()
            reader.close()
    assert result.result == "refused"
    assert result.reason.startswith("firmware: MPPT firmware 1.23 is below 1.53")
