"""Find VE.Direct devices on serial ports: probe each candidate port for a snapshot.

Used by ``vemonitor scan``, by the vedirect integration's port scanner
(``integrations/vedirect/scanner.py``: serial connectors configured with
``serialTest``, the seed's way to find a device whose ttyUSB number changed),
and by the Home Assistant config flow. Part of the codec's I/O half: it knows
the wire, not the engine. Ports are probed in parallel threads, each for at most
``timeout`` seconds (plus :data:`LISTEN_FIRST` when the port is switched); a corrupted
block while probing does not fail the probe.

What is probed (issue 25; docs/operations.md, "Finding devices"):

1. Only a free port (:func:`vemonitor.portsafety.why_busy`: no other process has it
   open, no live lock file, not a known non-Victron USB device), and with an
   allow-list only the ports it names.
2. It is heard first at its own line settings, read-only (local modes raw so nothing
   is echoed back; speed and framing untouched). VE.Direct heard: done.
3. It is set to 19200 8N1 only when it stayed silent, is a Victron cable, or the
   allow-list names it; its settings are put back after the probe. A port where
   something else talks at other settings is left as it is.
"""

from __future__ import annotations

import contextlib
import glob
import os
import select
import termios
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import serial

from vemonitor import portsafety
from vemonitor.clock import Clock, SystemClock
from vemonitor.portsafety import allowed as allowed  # the allow-list rule, for the scanner
from vemonitor.serial_reader import SERIAL_SETTINGS
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.events import Block, Rejected
from vemonitor.vedirect.snapshot import Snapshot, SnapshotAssembler

DEFAULT_GLOBS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyAMA*")
PROBE_TIMEOUT = 3.0  # a device sends a full cycle every second; allow a missed one
# Seconds a port is heard at its own settings before it counts as silent (or as another
# device talking): a VE.Direct device sends a block every second (PROTOCOL.md), so a
# valid block shows within this even when the first one is cut.
LISTEN_FIRST = 1.5
BAUD_BY_CODE = {getattr(termios, f"B{n}"): n for n in (
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
    if hasattr(termios, f"B{n}")}


@dataclass
class ProbeResult:
    """What one port showed during a probe."""

    path: str
    snapshot: Snapshot | None = None
    error: str | None = None
    frames_ok: int = 0
    rejected: int = 0
    bytes: int = 0
    probed: bool = True  # False: left alone (in use, locked, not ours, not allowed)
    switched: bool = False  # set to 19200 8N1 for the probe (and put back after)

    @property
    def found(self) -> bool:
        """Return True when a device answered with a complete snapshot."""
        return self.snapshot is not None

    def why_not(self) -> str:
        """Return why no device was found on this port."""
        if self.error:
            return self.error
        if not self.bytes:
            return "no data (nothing connected, or not a VE.Direct device)"
        if not self.frames_ok:
            return f"{self.bytes} bytes but no valid VE.Direct block ({self.rejected} rejected)"
        return "valid blocks but no complete device snapshot yet"

    def describe(self) -> dict[str, Any]:
        """Return the device found as plain data (PID, product, serial, firmware)."""
        snap = self.snapshot
        if snap is None:
            return {"path": self.path, "found": False, "probed": self.probed,
                    "reason": self.why_not()}
        return {"path": self.path, "found": True, "pid": snap.pid, "product": snap.product,
                "serial": snap.serial, "firmware": snap.firmware}


def candidate_ports(globs: Iterable[str] = DEFAULT_GLOBS) -> list[str]:
    """Return existing port paths matching ``globs``, one per device.

    A /dev/serial/by-id link and the ttyUSB node it points to are the same device:
    the by-id name is kept because it survives renumbering.
    """
    patterns = list(globs)
    seen: dict[str, str] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.expanduser(pattern))):
            real = os.path.realpath(path)
            if real not in seen:
                seen[real] = path
    return list(seen.values())


def probe(path: str, timeout: float = PROBE_TIMEOUT, clock: Clock | None = None, *,
          files: dict[int, set[str]] | None = None, vouched: bool = False) -> ProbeResult:
    """Listen on ``path`` until a complete snapshot arrives or ``timeout`` passes.

    Never disturbs another program (module docs, "What is probed"): a port that is
    not free (:func:`vemonitor.portsafety.why_busy`) is not opened. A free port is
    first heard at its own line settings, read-only; it is set to 19200 8N1 only
    when it was silent, or is a Victron cable, or ``vouched`` (the user's
    allow-list names it), and its settings are put back afterwards. The snapshot
    is stamped with ``clock`` time, so a reader can start from it.
    """
    result = ProbeResult(path)
    busy = portsafety.why_busy(path, files)
    if busy is not None:
        result.error, result.probed = busy, False
        return result
    clock = clock or SystemClock()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as err:
        result.error = _short(err)
        return result
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        os.close(fd)
        result.error = "not a serial port"
        return result
    try:
        heard = _listen_as_is(fd, saved, result, timeout, clock)
    finally:
        _restore(fd, saved)
    if heard or result.found or result.error or _is_vedirect_line(saved):
        return result  # (already at 19200 8N1: nothing to switch to, it was the probe)
    if result.bytes and not (vouched or _victron_cable(path)):
        result.error = (f"{result.bytes} bytes at {_speed(saved)} baud that are not VE.Direct "
                        f"(another device): left at its settings; name it in the allow-list "
                        f"to probe it at 19200 baud")
        return result
    again = portsafety.why_busy(path)  # someone may have opened it meanwhile
    if again is not None:
        result.error, result.probed = again, False
        return result
    _probe_at_19200(path, result, timeout, clock, saved)
    return result


def _listen_as_is(fd: int, saved: list[Any], result: ProbeResult, timeout: float,
                  clock: Clock) -> bool:
    """Listen at the port's own line settings (local modes raw, so nothing is echoed back);
    return True when VE.Direct was heard (the result then holds what was found).

    At VE.Direct's own settings this is the whole probe. Otherwise a port that shows
    no valid block within :data:`LISTEN_FIRST` seconds is given up here (silent, or
    another device talking).
    """
    quiet = list(saved)
    quiet[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.ISTRIP
                  | termios.IXON | termios.IXOFF)
    quiet[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG
                  | termios.IEXTEN)
    with contextlib.suppress(termios.error):
        termios.tcsetattr(fd, termios.TCSANOW, quiet)  # local modes only: the line is as it was
        # What queued before we came is stale (a device that stopped long ago): dropped,
        # as pyserial does at open. Nobody else has the port open (why_busy), so no one
        # else's bytes are lost.
        termios.tcflush(fd, termios.TCIFLUSH)

    def read() -> bytes:
        ready, _, _ = select.select([fd], [], [], 0.2)
        return os.read(fd, 4096) if ready else b""

    patience = timeout if _is_vedirect_line(saved) else min(LISTEN_FIRST, timeout)
    try:
        _read_until_snapshot(read, result, timeout, clock, patience)
    except OSError as err:
        result.error = _short(err)
    return result.frames_ok > 0


def _probe_at_19200(path: str, result: ProbeResult, timeout: float, clock: Clock,
                    saved: list[Any]) -> None:
    """Probe at VE.Direct's 19200 8N1 (pyserial, exclusive), then put the settings back."""
    result.bytes = result.frames_ok = result.rejected = 0
    result.switched = True
    try:
        port = serial.Serial(path, timeout=0.2, exclusive=True, **SERIAL_SETTINGS)
    except (OSError, serial.SerialException, ValueError) as err:
        result.error = _short(err)
        return
    try:
        _read_until_snapshot(lambda: port.read(max(port.in_waiting, 1)), result, timeout,
                             clock, timeout)
    except (OSError, serial.SerialException) as err:
        result.error = _short(err)
    finally:
        with contextlib.suppress(OSError, serial.SerialException):
            port.close()
        with contextlib.suppress(OSError):
            _restore(os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK), saved)


def _restore(fd: int, saved: list[Any]) -> None:
    """Put the port's settings back as they were and close ``fd``."""
    try:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)
    finally:
        os.close(fd)


def _speed(attrs: list[Any]) -> int | str:
    """Return a termios attribute list's output speed in baud."""
    return BAUD_BY_CODE.get(attrs[5], "unknown")


def _is_vedirect_line(attrs: list[Any]) -> bool:
    """Return True when the line is already VE.Direct's: 19200 baud, 8 data bits, no
    parity, one stop bit (PROTOCOL.md, "Physical layer")."""
    cflag = attrs[2]
    return (attrs[5] == termios.B19200 and cflag & termios.CSIZE == termios.CS8
            and not cflag & termios.PARENB and not cflag & termios.CSTOPB)


def _victron_cable(path: str) -> bool:
    usb = portsafety.usb_info(path)
    return usb is not None and usb.is_victron_cable()


def _read_until_snapshot(read: Callable[[], bytes], result: ProbeResult, timeout: float,
                         clock: Clock, patience: float) -> None:
    """Keep the first complete snapshot; at the deadline settle for the latest partial one.

    A partial cycle (a block lost to corruption) still names the device (PID,
    SER#, FW are in its first block), which is what a scan needs. Gives up after
    ``patience`` seconds without one valid block.
    """
    decoder = Decoder()
    assembler = SnapshotAssembler()
    start = time.monotonic()
    deadline = start + timeout
    partial: Snapshot | None = None
    while time.monotonic() < deadline:
        if not result.frames_ok and time.monotonic() - start >= patience:
            return
        data = read()
        result.bytes += len(data)
        events = decoder.feed(data, now=time.monotonic())
        result.frames_ok += sum(isinstance(e, Block) for e in events)
        result.rejected += sum(isinstance(e, Rejected) for e in events)
        for snapshot in assembler.feed(events, now=clock.now()):
            # The first cycle's length is learned only when the next PID arrives, so
            # the first snapshot may miss a block: wait for a complete one.
            if snapshot.complete:
                result.snapshot = snapshot
                return
            partial = snapshot
    result.snapshot = next(iter(assembler.flush()), None) or partial


def scan(paths: Sequence[str], timeout: float = PROBE_TIMEOUT,
         clock: Clock | None = None, allow: Sequence[str] = ()) -> list[ProbeResult]:
    """Probe every path in parallel; return results in the order of ``paths``.

    With an allow-list (glob patterns), a port it does not name is not opened.
    """
    if not paths:
        return []
    files = portsafety.open_files()  # one look at /proc for the whole scan

    def one(path: str) -> ProbeResult:
        if not allowed(path, allow):
            return ProbeResult(path, error="not in the allow-list: not probed", probed=False)
        return probe(path, timeout, clock, files=files, vouched=bool(allow))

    with ThreadPoolExecutor(max_workers=min(len(paths), 16)) as pool:
        return list(pool.map(one, paths))


def matches(snapshot: Snapshot, tests: Mapping[str, Mapping[str, Any]]) -> bool:
    """Return True when the snapshot passes every serialTest (the seed's value/columns tests)."""
    return all(_passes(snapshot, test) for test in tests.values())


def _passes(snapshot: Snapshot, test: Mapping[str, Any]) -> bool:
    kind = test.get("typeTest", "value")
    if kind == "columns":
        # A label the device sent out of range (left out of the snapshot) was still sent.
        sent = snapshot.raw.keys() | snapshot.out_of_range.keys()
        return all(column in sent for column in test.get("columns") or ())
    actual = snapshot.raw.get(str(test.get("key")))
    return actual is not None and _same_value(actual, str(test.get("value")))


def _same_value(actual: str, expected: str) -> bool:
    """Compare wire values, treating 0x203 and 0x0203 (and case) as equal."""
    if actual.lower() == expected.lower():
        return True
    try:
        return int(actual, 0) == int(expected, 0)
    except ValueError:
        return False


def expected_device(tests: Mapping[str, Mapping[str, Any]]) -> str:
    """Return what a serialTest looks for, as a person says it ('PID 0x203')."""
    parts = []
    for test in tests.values():
        if test.get("typeTest", "value") == "columns":
            parts.append("fields " + ", ".join(str(c) for c in test.get("columns") or ()))
        else:
            parts.append(f"{test.get('key')} {test.get('value')}")
    return " and ".join(parts) or "any device"


def port_verdict(result: ProbeResult, tests: Mapping[str, Mapping[str, Any]],
                 owner: str | None) -> str:
    """Return what one probed port showed, against the device a connector expects."""
    if owner is not None:
        return f"used by {owner}"
    snap = result.snapshot
    if snap is None:
        return result.why_not()
    if matches(snap, tests):
        return f"{snap.product} (PID {snap.pid})"
    return f"{snap.product} (PID {snap.pid}), not the device expected"


NEXT_STEPS = ("run `vemonitor scan` to see what each port shows; without hardware, add "
              "'simulator.devices=[bmv700,mppt]' to the command line to use simulated devices")


def _short(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).splitlines()[0] if str(err) else type(err).__name__
