"""The serial reader through a real pty: replayed captures, faults, unplug/replug, idle cost."""

from __future__ import annotations

import resource
import threading
import time
from pathlib import Path

from hw_sim import FaultConfig, Simulator
from tests.shared import CAPTURES, require_shared, wait_until
from vemonitor.serial_reader import Backoff, SerialReader
from vemonitor.vedirect import decode_bytes
from vemonitor.vedirect.events import Block
from vemonitor.vedirect.snapshot import Snapshot


def test_replayed_capture_decodes_as_the_file_does(tmp_path: Path) -> None:
    """A capture played through a pty at speed 20 gives the file's valid blocks and HEX lines."""
    capture = require_shared(CAPTURES) / "smartsolar_100_20_fw139.dump"
    data = capture.read_bytes()[:20000]
    part = tmp_path / "part.dump"
    part.write_bytes(data)
    expected = decode_bytes(data)
    expected_blocks = sum(isinstance(e, Block) for e in expected)
    with Simulator([], tmp_path / "sim", replays={"solar": part}, speed=20,
                   autostart=False) as sim:
        reader = SerialReader("solar", str(sim.path("solar")))
        reader.start()
        time.sleep(0.5)  # the reader has the port open before the first byte
        sim.start()
        assert wait_until(lambda: reader.stats.frames_ok >= expected_blocks, 30)
        time.sleep(0.3)
        reader.close()
    assert reader.stats.frames_ok == expected_blocks
    assert reader.stats.hex_ok == sum(type(e).__name__ == "HexMessage" for e in expected)
    assert reader.latest is not None and reader.latest.serial == "HQ18486U2B4"


def test_what_the_simulator_wrote_is_what_the_reader_returns(tmp_path: Path) -> None:
    """Field by field: the last snapshot equals the last fields the simulator wrote."""
    seen: list[Snapshot] = []
    with Simulator(["mppt"], tmp_path / "sim") as sim:
        reader = SerialReader("mppt", str(sim.path("mppt")))
        reader.subscribe(lambda name, snap: seen.append(snap))
        reader.start()
        assert wait_until(lambda: len(seen) >= 3, 10)
        sim.halt()
        time.sleep(0.3)
        written = dict(sim.devices["mppt"].written_fields)
        reader.close()
    assert seen[-1].raw == written


def test_faults_are_detected_and_counted_by_reason(tmp_path: Path) -> None:
    """Corrupted blocks, HEX lines and noise: every clean block decodes, the rest are counted."""
    faults = FaultConfig(corrupt=0.2, hex=0.5, hex_mid=0.3, noise=0.1, seed=7)
    with Simulator(["bmv700"], tmp_path / "sim", speed=10, faults=faults,
                   autostart=False) as sim:
        reader = SerialReader("bmv", str(sim.path("bmv700")))
        reader.start()
        time.sleep(0.5)
        sim.start()
        time.sleep(4)
        sim.halt()
        time.sleep(0.5)
        reader.close()
        device = sim.devices["bmv700"]
        clean = sum(block.clean for block in device.history)
        counters = device.counters
    stats = reader.stats
    assert stats.frames_ok == clean
    # Each spoiled block is rejected exactly once, by its first fault: a flipped byte
    # fails the checksum, noise before a block breaks its framing.
    assert sum(stats.rejected.values()) == counters.blocks_written - clean
    assert stats.rejected["checksum"] > 0 and stats.rejected["framing"] > 0
    assert stats.hex_ok == counters.hex_lines


def test_unplug_and_replug_is_survived(tmp_path: Path) -> None:
    """The link vanishes and comes back: the reader goes unavailable, reconnects, reads again."""
    changes: list[bool] = []
    with Simulator(["bmv700"], tmp_path / "sim") as sim:
        reader = SerialReader("bmv", str(sim.path("bmv700")), stale_after=2.0,
                              backoff=Backoff(first=0.2, cap=1.0))
        reader.start()
        assert wait_until(lambda: reader.available, 5)
        before = reader.stats.frames_ok
        sim.unplug("bmv700", seconds=3.0)
        assert wait_until(lambda: not reader.available, 5)
        changes.append(reader.available)
        assert wait_until(lambda: reader.available and reader.stats.frames_ok > before + 4, 15)
        reader.close()
    assert reader.stats.reconnects >= 1
    assert changes == [False]


def test_idle_port_costs_almost_no_cpu(tmp_path: Path) -> None:
    """A silent device: the reader waits in select, no busy loop (under 5 % of one core)."""
    with Simulator(["bmv700"], tmp_path / "sim") as sim:
        sim.stall("bmv700", 60)
        reader = SerialReader("bmv", str(sim.path("bmv700")))
        reader.start()
        time.sleep(0.5)
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic()
        time.sleep(3)
        after = resource.getrusage(resource.RUSAGE_SELF)
        elapsed = time.monotonic() - wall
        reader.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert threading.active_count() >= 1
    assert cpu / elapsed < 0.05, f"{cpu:.3f} s CPU in {elapsed:.1f} s"


def test_close_ends_the_reader_at_once_on_a_silent_port_and_leaks_no_descriptor() -> None:
    """A reader waiting on a port that sends nothing stops as soon as it is closed (not at
    its next poll), and gives back every file descriptor it used."""
    import os

    from vemonitor import serial_reader

    master, slave = os.openpty()
    try:
        before = len(os.listdir("/proc/self/fd"))
        reader = SerialReader("quiet", os.ttyname(slave))
        reader.start()
        time.sleep(0.3)  # let it open the port and wait in select()
        reader.close(timeout=serial_reader.POLL_SECONDS / 4)
        assert reader._thread is not None and not reader._thread.is_alive()
        assert len(os.listdir("/proc/self/fd")) == before
        reader.close()  # idempotent
    finally:
        os.close(master)
        os.close(slave)
