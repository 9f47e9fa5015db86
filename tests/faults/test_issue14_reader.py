"""Issue 14 item 1 (threads): the serial reader thread is supervised (real pty + simulator)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from hw_sim import Simulator
from vemonitor import supervise
from vemonitor.serial_reader import SerialReader
from vemonitor.vedirect.snapshot import Snapshot


def test_reader_survives_a_bug_in_a_subscriber(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A subscriber that raises once (a bug) does not end the reader: it is logged once,
    counted, restarted, and snapshots keep coming (before: `Exception in thread serial-...`
    and a device unavailable for ever)."""
    seen: list[Snapshot] = []
    calls = {"n": 0}

    def buggy(name: str, snapshot: Snapshot) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ZeroDivisionError("a subscriber bug")
        seen.append(snapshot)

    before = supervise.restarts().get("serial-mppt", 0)
    with caplog.at_level(logging.ERROR), Simulator(["mppt"], tmp_path / "sim") as sim:
        reader = SerialReader("mppt", str(sim.path("mppt")))
        reader.subscribe(buggy)
        reader.start()
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        reader.close()
    assert len(seen) >= 3
    assert supervise.restarts()["serial-mppt"] == before + 1
    crashed = [m for m in caplog.messages if "thread serial-mppt crashed" in m]
    assert len(crashed) == 1 and "ZeroDivisionError" in crashed[0]
