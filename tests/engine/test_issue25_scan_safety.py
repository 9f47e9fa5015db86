"""Issue 25 point 7: scanning never disturbs another program's port (real ptys).

Before: every candidate port was opened, switched to 19200 baud and read for up to
3 s, whoever used it; a Zigbee stick at 115200 was switched under its program and
its bytes consumed.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from hw_sim import Simulator
from vemonitor import portsafety, scan

# Bytes a Zigbee coordinator sends (EZSP/ASH-style binary frames ending in 0x7E):
# never a valid VE.Direct block.
ZIGBEE_CHATTER = bytes.fromhex("1ac038bc7e") + bytes.fromhex("8070787e")


class Pty:
    """A pseudo-terminal we are the device end of (master and slave held here)."""

    def __init__(self, folder: Path, name: str, speed: int = termios.B115200) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        attrs = termios.tcgetattr(self.slave)
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        self.path = folder / name
        self.path.symlink_to(os.ttyname(self.slave))
        self.speeds_seen: set[int] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def speed(self) -> int:
        return int(termios.tcgetattr(self.slave)[5])

    def attrs(self) -> list[object]:
        return termios.tcgetattr(self.slave)

    def queued(self) -> int:
        """Bytes written by the device end and not yet read by anybody."""
        raw = fcntl.ioctl(self.slave, termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", raw)[0])

    def chatter(self, data: bytes, every: float = 0.05) -> None:
        """Send ``data`` again and again, as a busy stick does."""
        def run() -> None:
            while not self._stop.wait(every):
                os.write(self.master, data)
        self._start(run)

    def watch_speed(self) -> None:
        """Record every line speed the port has while the test runs (every 5 ms)."""
        self.speeds_seen.add(self.speed())  # now, before anything can run

        def run() -> None:
            while not self._stop.wait(0.005):
                self.speeds_seen.add(self.speed())
        self._start(run)

    def _start(self, target: object) -> None:
        thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[list[Pty]]:
    made: list[Pty] = []
    yield made
    for pty in made:
        pty.close()


def _holder(path: Path) -> subprocess.Popen[str]:
    """Another program holding ``path`` open (as zigbee2mqtt holds its stick)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | "
         "os.O_NOCTTY); print('open', flush=True); time.sleep(120)", str(path)],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


def test_a_pty_another_process_holds_is_never_opened(tmp_path: Path, ptys: list[Pty]) -> None:
    """Its queued bytes stay queued (nobody read them), its speed never moves, and the
    scan says who holds it."""
    pty = Pty(tmp_path, "ttyZB0")
    ptys.append(pty)
    holder = _holder(pty.path)
    try:
        os.write(pty.master, ZIGBEE_CHATTER * 20)
        pty.watch_speed()
        deadline = time.monotonic() + 10
        while pty.queued() < len(ZIGBEE_CHATTER) * 20 and time.monotonic() < deadline:
            time.sleep(0.01)  # the pty hands bytes over to the slave side asynchronously
        before = pty.queued()
        [result] = scan.scan([str(pty.path)], timeout=2.0)
        assert not result.probed and not result.switched
        assert f"in use by pid {holder.pid}" in (result.error or "")
        assert pty.queued() == before > 0  # not one byte consumed
        assert pty.speeds_seen == {termios.B115200}
    finally:
        holder.kill()
        holder.wait()


def test_a_busy_pty_at_115200_keeps_its_settings(tmp_path: Path, ptys: list[Pty]) -> None:
    """Free, but another device talks on it at 115200: heard as it is, never switched."""
    pty = Pty(tmp_path, "ttyZB1")
    ptys.append(pty)
    before = pty.attrs()
    pty.watch_speed()
    pty.chatter(ZIGBEE_CHATTER)
    [result] = scan.scan([str(pty.path)], timeout=2.0)
    assert result.probed and not result.switched and not result.found
    assert "115200 baud that are not VE.Direct" in (result.error or "")
    assert pty.speeds_seen == {termios.B115200}
    assert pty.attrs() == before


def test_a_silent_free_pty_is_probed_at_19200_and_put_back(tmp_path: Path,
                                                           ptys: list[Pty]) -> None:
    pty = Pty(tmp_path, "ttyUSB7")
    ptys.append(pty)
    before = pty.attrs()
    pty.watch_speed()
    [result] = scan.scan([str(pty.path)], timeout=1.0)
    assert result.probed and result.switched and not result.found
    assert termios.B19200 in pty.speeds_seen
    assert pty.attrs() == before  # settings put back


def test_vedirect_at_the_ports_own_settings_is_found_without_a_change(tmp_path: Path) -> None:
    with Simulator(["bmv700"], tmp_path / "sim") as sim:
        [device] = list(sim)
        [result] = scan.scan([str(device.path)], timeout=3.0)
    assert result.found and not result.switched
    assert result.snapshot is not None and result.snapshot.pid == "0x203"


def test_the_allow_list_limits_what_is_opened(tmp_path: Path, ptys: list[Pty]) -> None:
    """Only listed ports are opened; a listed port may be switched although another
    device talks on it (the user vouched for it), and is put back after."""
    talking = Pty(tmp_path, "ttyUSB8")
    ptys.append(talking)
    talking.chatter(ZIGBEE_CHATTER)
    before = talking.attrs()
    with Simulator(["bmv700", "mppt"], tmp_path / "sim") as sim:
        paths = [str(d.path) for d in sim] + [str(talking.path)]
        results = scan.scan(paths, timeout=3.0,
                            allow=[str(tmp_path / "sim" / "ttyVE_mppt"), str(talking.path)])
    by_name = {Path(r.path).name: r for r in results}
    assert not by_name["ttyVE_bmv700"].probed
    assert "allow-list" in (by_name["ttyVE_bmv700"].error or "")
    assert by_name["ttyVE_mppt"].found
    assert by_name["ttyUSB8"].switched and talking.attrs() == before


def test_a_live_uucp_lock_keeps_the_port_alone(tmp_path: Path, ptys: list[Pty],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """LCK..<name> with a live PID (ten ASCII digits, HDB UUCP): not probed; a stale one
    (dead PID) does not block."""
    locks = tmp_path / "lock"
    locks.mkdir()
    monkeypatch.setattr(portsafety, "LOCK_DIRS", (str(locks),))
    pty = Pty(tmp_path, "ttyACM5")
    ptys.append(pty)
    pty.chatter(ZIGBEE_CHATTER)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (locks / "LCK..ttyACM5").write_text(f"{holder.pid:10d}\n")
        [result] = scan.scan([str(pty.path)], timeout=1.0)
        assert not result.probed and f"locked by pid {holder.pid}" in (result.error or "")
    finally:
        holder.kill()
        holder.wait()
    [result] = scan.scan([str(pty.path)], timeout=1.0)  # the holder is gone: a stale lock
    assert result.probed


def _fake_usb(sys_root: Path, pty: Pty, vid: str, pid: str, product: str) -> None:
    """A sysfs tree for the pty's tty, as the kernel lays out a USB-serial device."""
    name = os.path.basename(os.path.realpath(pty.path))
    usb = sys_root / "devices" / "usb1" / "1-1"
    interface = usb / "1-1:1.0" / "ttyUSB0"
    interface.mkdir(parents=True)
    for key, value in (("idVendor", vid), ("idProduct", pid), ("product", product)):
        (usb / key).write_text(value + "\n")
    (sys_root / "class" / "tty" / name).mkdir(parents=True)
    (sys_root / "class" / "tty" / name / "device").symlink_to(interface)


@pytest.mark.parametrize(("vid", "pid", "product", "left_alone"), [
    ("0658", "0200", "", True),  # Aeotec Z-Stick Gen5 (any product string)
    ("10c4", "ea60", "Sonoff Zigbee 3.0 USB Dongle Plus", True),
    ("0403", "6015", "ConBee", True),
    ("10c4", "ea60", "CP2102 USB to UART Bridge Controller", False),  # a generic adapter
    ("0403", "6015", "VE Direct cable", False),  # Victron's own
])
def test_known_non_victron_usb_ids_are_left_alone(
        tmp_path: Path, ptys: list[Pty], monkeypatch: pytest.MonkeyPatch, vid: str, pid: str,
        product: str, left_alone: bool) -> None:
    sys_root = tmp_path / "sys"
    monkeypatch.setattr(portsafety, "SYS_TTY", str(sys_root / "class" / "tty"))
    pty = Pty(tmp_path, "ttyUSB0")
    ptys.append(pty)
    _fake_usb(sys_root, pty, vid, pid, product)
    [result] = scan.scan([str(pty.path)], timeout=1.0)
    assert result.probed is not left_alone, result.error
    if left_alone:
        assert f"USB {vid}:{pid}" in (result.error or "")


def test_a_victron_cable_talking_at_other_settings_is_switched(
        tmp_path: Path, ptys: list[Pty], monkeypatch: pytest.MonkeyPatch) -> None:
    """A VE.Direct cable left at 9600 hears its device as garbage: it is switched."""
    sys_root = tmp_path / "sys"
    monkeypatch.setattr(portsafety, "SYS_TTY", str(sys_root / "class" / "tty"))
    pty = Pty(tmp_path, "ttyUSB0", speed=termios.B9600)
    ptys.append(pty)
    _fake_usb(sys_root, pty, "0403", "6015", "VE Direct cable")
    pty.chatter(ZIGBEE_CHATTER)
    [result] = scan.scan([str(pty.path)], timeout=1.0)
    assert result.switched and pty.speed() == termios.B9600


def test_vemonitor_scan_says_what_it_left_alone_and_takes_allow(tmp_path: Path,
                                                                ptys: list[Pty]) -> None:
    pty = Pty(tmp_path, "ttyZB2")
    ptys.append(pty)
    holder = _holder(pty.path)
    try:
        with Simulator(["bmv700"], tmp_path / "sim"):
            env = dict(os.environ, HOME=str(tmp_path / "home"))
            proc = subprocess.run(
                [sys.executable, "-c", "from vemonitor.cli import main; main()", "scan",
                 "--glob", str(tmp_path / "ttyZB*"), "--glob", str(tmp_path / "sim" / "*")],
                env=env, capture_output=True, text=True, timeout=60)
            allowed = subprocess.run(
                [sys.executable, "-c", "from vemonitor.cli import main; main()", "scan",
                 "--glob", str(tmp_path / "sim" / "*"), "--allow", str(tmp_path / "nothing*")],
                env=env, capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0, proc.stderr
    assert f"{pty.path}: left alone: in use by pid {holder.pid}" in proc.stdout
    assert "ttyVE_bmv700: BMV-700" in proc.stdout
    assert allowed.returncode == 1
    assert "ttyVE_bmv700: left alone: not in the allow-list" in allowed.stdout


def test_the_probe_leaves_no_time_unbounded(tmp_path: Path, ptys: list[Pty]) -> None:
    """A chattering port is given up after the listen window, not the whole timeout."""
    pty = Pty(tmp_path, "ttyZB3")
    ptys.append(pty)
    pty.chatter(ZIGBEE_CHATTER)
    started = time.monotonic()
    [result] = scan.scan([str(pty.path)], timeout=30.0)
    assert result.error and time.monotonic() - started < 30.0


def test_lock_files_of_both_uucp_formats(tmp_path: Path) -> None:
    """HDB UUCP writes the PID as ten ASCII digits, older UUCP as a binary int."""
    (tmp_path / "LCK..ttyUSB3").write_text(f"{os.getpid():10d}\n")
    (tmp_path / "LCK..ttyUSB4").write_bytes(struct.pack("=i", os.getppid()))
    (tmp_path / "LCK..ttyUSB5").write_text("garbage")
    dirs = (str(tmp_path),)
    assert portsafety.lock_holder("/dev/ttyUSB3", dirs) is None  # our own lock
    assert portsafety.lock_holder("/dev/ttyUSB4", dirs) == os.getppid()
    assert portsafety.lock_holder("/dev/ttyUSB5", dirs) is None


def test_a_port_already_at_19200_is_only_heard(tmp_path: Path, ptys: list[Pty]) -> None:
    """At VE.Direct's own settings, listening is the whole probe: nothing to switch."""
    pty = Pty(tmp_path, "ttyUSB6", speed=termios.B19200)
    ptys.append(pty)
    [result] = scan.scan([str(pty.path)], timeout=1.0)
    assert result.probed and not result.switched and not result.found
    assert result.why_not().startswith("no data")
