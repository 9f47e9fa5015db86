"""The simulator on real ptys: readers get frames, faults, unplug/replug, replay, speed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import serial

from hw_sim import FaultConfig, Simulator
from hw_sim.replay import split_blocks
from tests.hw_sim.sim_helpers import checksum_ok, hex_lines, read_for, valid_blocks, wait_for
from tests.hw_sim.test_sim_frames import EXPECTED_ORDER


def open_port(path: Path) -> serial.Serial:
    """Open a simulated device like the daemon does."""
    return serial.Serial(str(path), 19200, timeout=0.05)


def test_links_are_created_and_removed(tmp_path: Path) -> None:
    """Each device gets <dir>/ttyVE_<name> pointing at a pty; stop removes the links."""
    with Simulator(["bmv700", "mppt", "mppt_fwe:roof"], tmp_path) as sim:
        assert set(sim.devices) == {"bmv700", "mppt", "roof"}
        for name in sim.devices:
            link = tmp_path / f"ttyVE_{name}"
            assert sim.path(name) == link and link.is_symlink()
            assert str(link.readlink()).startswith("/dev/pts/")
    assert list(tmp_path.iterdir()) == []


def test_pyserial_reader_gets_every_block_field_by_field(tmp_path: Path) -> None:
    """Reading the symlink with pyserial gives exactly the blocks written, in wire order."""
    with Simulator(["bmv700", "mppt", "mppt_fwe"], tmp_path, speed=10.0,
                   autostart=False) as sim:
        ports = {n: open_port(sim.path(n)) for n in sim.devices}
        sim.start()
        assert all(d.wait_blocks(8, timeout=5.0) for d in sim)
        sim.halt()
        for name, device in sim.devices.items():
            stream = read_for(ports[name], 0.2)
            ports[name].close()
            written = list(device.history)
            assert stream == b"".join(w.data for w in written)
            blocks = valid_blocks(stream)
            assert blocks == [dict(w.records) for w in written]
            per_cycle = len(EXPECTED_ORDER[name])
            assert [list(b) for b in blocks[:per_cycle]] == EXPECTED_ORDER[name]
            last_cycle_start = max(i for i, b in enumerate(blocks) if "PID" in b)
            merged = {k: v for b in blocks[last_cycle_start:] for k, v in b.items()}
            assert device.written_fields == merged


def test_faults_on_the_wire_match_the_counters(tmp_path: Path) -> None:
    """With faults on, exactly the clean blocks decode; corrupted/noisy ones fail; HEX present."""
    faults = FaultConfig(corrupt=0.2, hex=0.3, hex_mid=0.3, noise=0.2, split=0.5, seed=3)
    with Simulator(["bmv700"], tmp_path, speed=20.0, faults=faults, autostart=False) as sim:
        port = open_port(sim.path("bmv700"))
        sim.start()
        device = sim.devices["bmv700"]
        assert device.wait_blocks(60, timeout=10.0)
        sim.halt()
        stream = read_for(port, 0.3)
        port.close()
    written = list(device.history)
    assert stream == b"".join(w.data for w in written)
    c = device.counters
    assert c.blocks_corrupted > 0 and c.noise_bytes > 0 and c.hex_lines > 0 and c.split_writes > 0
    assert c.blocks_corrupted == sum(w.corrupted for w in written)
    assert c.noise_bytes == sum(w.noise for w in written)
    assert valid_blocks(stream) == [dict(w.records) for w in written if w.clean]
    assert hex_lines(stream) == [line for w in written for line in w.hex_lines]


def test_unplug_removes_link_and_replug_recreates_it(tmp_path: Path) -> None:
    """Unplug closes the pty and removes the link; after the delay a new pty is linked."""
    with Simulator(["mppt"], tmp_path, speed=1.0) as sim:
        link = sim.path("mppt")
        port = open_port(link)
        assert wait_for(lambda: checksum_ok(read_for(port, 1.2)), 3.0)
        sim.unplug("mppt", seconds=0.6)
        assert not link.exists() and not link.is_symlink()
        with pytest.raises(serial.SerialException):
            read_for(port, 0.3)  # the old port is dead, as after a USB unplug
        port.close()
        assert wait_for(link.is_symlink, 3.0)
        port = open_port(link)
        assert valid_blocks(read_for(port, 2.2))
        port.close()
        assert sim.devices["mppt"].counters.unplugs == 1


def test_stall_silences_the_device(tmp_path: Path) -> None:
    """A stall stops output for its duration; blocks are counted as not written."""
    with Simulator(["mppt"], tmp_path, speed=5.0) as sim:
        device = sim.devices["mppt"]
        assert device.wait_blocks(2, timeout=3.0)
        port = open_port(sim.path("mppt"))
        sim.stall("mppt", seconds=5.0)  # 1 real second at speed 5
        time.sleep(0.05)
        port.reset_input_buffer()
        assert read_for(port, 0.6) == b""
        assert wait_for(lambda: device.counters.blocks_not_written > 0, 2.0)
        assert valid_blocks(read_for(port, 1.5))
        port.close()


def test_speed_runs_device_time_faster(tmp_path: Path) -> None:
    """At speed 20 a device writes about 20 one-second cycles per real second."""
    with Simulator(["mppt"], tmp_path, speed=20.0) as sim:
        time.sleep(1.0)
        cycles = sim.devices["mppt"].counters.cycles
    assert 12 <= cycles <= 26


def test_writes_never_block_without_a_reader(tmp_path: Path) -> None:
    """With nobody reading at high speed the simulator keeps running and stops promptly."""
    with Simulator(["bmv700"], tmp_path, speed=500.0) as sim:
        time.sleep(1.5)
        start = time.monotonic()
    assert time.monotonic() - start < 2.0
    assert sim.devices["bmv700"].counters.blocks_written > 200


def test_replay_gives_back_the_capture_bytes(tmp_path: Path, captures_dir: Path) -> None:
    """Replaying a capture through the pty delivers the exact same bytes, block by block."""
    capture = captures_dir / "bluesolar_75_15_fw123.dump"
    with Simulator([], tmp_path, speed=400.0, replays={"blue": capture},
                   autostart=False) as sim:
        port = open_port(sim.path("blue"))
        sim.start()
        device = sim.devices["blue"]
        stream = bytearray()
        deadline = time.monotonic() + 10.0
        while not device.finished and time.monotonic() < deadline:
            stream += port.read(4096)  # keep reading: the capture is bigger than a pty buffer
        stream += read_for(port, 0.3)
        port.close()
    assert stream == capture.read_bytes()
    assert device.counters.blocks_written == len(split_blocks(capture.read_bytes()))


def test_replay_loops_when_asked(tmp_path: Path, captures_dir: Path) -> None:
    """With loop=True a replay starts again after the last block."""
    capture = captures_dir / "negative_bad_packets.dump"
    with Simulator([], tmp_path, speed=50.0, replays={"bad": capture}, loop=True) as sim:
        device = sim.devices["bad"]
        assert device.wait_blocks(12, timeout=5.0)  # the file has 5 chunks
        assert not device.finished


def test_bad_device_specs_are_refused(tmp_path: Path) -> None:
    """Unknown kinds, bad names and missing replay files raise ValueError before any pty."""
    for devices, replays in ((["nope"], {}), (["bmv700:bad/name"], {}),
                             ([], {"x": tmp_path / "missing.dump"})):
        with pytest.raises(ValueError):
            Simulator(devices, tmp_path, replays=replays)
    with pytest.raises(ValueError):
        Simulator(["bmv700"], tmp_path, speed=0)
    assert os.listdir(tmp_path) == []
