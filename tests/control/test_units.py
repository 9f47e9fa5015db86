"""Unit edges of the control layer: the session's cancel, the table, the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vemonitor import hex_session as hs
from vemonitor.control import CONTROLS
from vemonitor.control.settings import DeviceSettings
from vemonitor.control.store import ControlStore
from vemonitor.vedirect import hex as h
from vemonitor.vedirect.hex_registers import REGISTER_BY_ID


def test_cancel_drops_a_waiting_request_only() -> None:
    """A request not yet sent is dropped; one already sent is not (its reply may come)."""
    session = hs.HexSession()
    first, second = hs.get(0x010A, on_demand=True), hs.Request(h.SET, 0xEDAB, b"\x04", True)
    session.submit(first)
    session.submit(second)
    assert session.cancel(second) is True and session.cancel(second) is False
    session._gap = True  # the gap after a TEXT block (as on_events sets it)
    assert session.outgoing(0.0) == first.line
    assert session.cancel(first) is False and session.outgoing(0.1) is None


def test_every_control_register_is_writable_in_the_register_table() -> None:
    """The allow-list names RW registers of the table, with the NV flag the table has."""
    for spec in CONTROLS.values():
        register = REGISTER_BY_ID[spec.register]
        assert register.writable, spec.name
        assert register.nv == spec.nv, spec.name


def test_settings_refuse_unknown_controls_and_a_larger_budget() -> None:
    for kwargs, message in (({"controls": {"0x0200": None}}, "not a control"),
                            ({"nv_writes_per_day": 21}, "0..20"), ({"lease_s": 5.0}, "30..")):
        try:
            DeviceSettings(**kwargs)  # type: ignore[arg-type]
        except ValueError as err:
            assert message in str(err)
        else:
            raise AssertionError(kwargs)


def test_pending_row_of_a_dead_process_becomes_interrupted(tmp_path: Path) -> None:
    """A pending row whose process is gone is marked interrupted at the next open; a row of a
    live process is left pending."""
    store = ControlStore(tmp_path)
    live = store.begin(time=1.0, device="d", serial="S", surface="cli", caller="c",
                       control="load_output", register="0xEDAB", event="write", old="auto",
                       new="on", frame=":8ABED0004B1", result="pending", reason="")
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    dead = store.begin(time=2.0, device="d", serial="S", surface="cli", caller="c",
                       control="load_output", register="0xEDAB", event="write", old="auto",
                       new="off", frame=":8ABED0000B5", result="pending", reason="")
    with store._lock:
        store._db.execute("UPDATE audit SET pid=? WHERE id=?", (int(dead_pid), dead))
    store.close()
    again = ControlStore(tmp_path)
    rows = {r["id"]: r for r in again.rows()}
    assert rows[live]["state"] == "pending"
    assert rows[dead]["result"] == "interrupted" and rows[dead]["readback"] is None
    assert again.known_after_restart("S", "load_output", "auto") == 1
    row = {r["id"]: r for r in again.rows()}[dead]
    assert row["readback"] == "auto" and "read at the next connect: auto" in row["reason"]
