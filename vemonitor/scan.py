"""Find VE.Direct devices on serial ports: probe each candidate port for a snapshot.

Used by ``vemonitor scan``, by the vedirect integration's port scanner
(``integrations/vedirect/scanner.py``: serial connectors configured with
``serialTest``, the seed's way to find a device whose ttyUSB number changed),
and by the Home Assistant config flow. Part of the codec's I/O half: it knows
the wire, not the engine. Ports are probed in parallel threads, each for at most
``timeout`` seconds; a corrupted block while probing does not fail the probe.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import serial

from vemonitor.clock import Clock, SystemClock
from vemonitor.serial_reader import SERIAL_SETTINGS
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.events import Block, Rejected
from vemonitor.vedirect.snapshot import Snapshot, SnapshotAssembler

DEFAULT_GLOBS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyAMA*")
PROBE_TIMEOUT = 3.0  # a device sends a full cycle every second; allow a missed one


@dataclass
class ProbeResult:
    """What one port showed during a probe."""

    path: str
    snapshot: Snapshot | None = None
    error: str | None = None
    frames_ok: int = 0
    rejected: int = 0
    bytes: int = 0

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
            return {"path": self.path, "found": False, "reason": self.why_not()}
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


def probe(path: str, timeout: float = PROBE_TIMEOUT, clock: Clock | None = None) -> ProbeResult:
    """Read ``path`` until a complete snapshot arrives or ``timeout`` passes.

    The snapshot is stamped with ``clock`` time, so a reader can start from it.
    """
    result = ProbeResult(path)
    try:
        port = serial.Serial(path, timeout=0.2, exclusive=True, **SERIAL_SETTINGS)
    except (OSError, serial.SerialException, ValueError) as err:
        result.error = _short(err)
        return result
    try:
        _read_until_snapshot(port, result, timeout, clock or SystemClock())
    except (OSError, serial.SerialException) as err:
        result.error = _short(err)
    finally:
        with contextlib.suppress(OSError, serial.SerialException):
            port.close()
    return result


def _read_until_snapshot(port: serial.Serial, result: ProbeResult, timeout: float,
                         clock: Clock) -> None:
    """Keep the first complete snapshot; at the deadline settle for the latest partial one.

    A partial cycle (a block lost to corruption) still names the device (PID,
    SER#, FW are in its first block), which is what a scan needs.
    """
    decoder = Decoder()
    assembler = SnapshotAssembler()
    deadline = time.monotonic() + timeout
    partial: Snapshot | None = None
    while time.monotonic() < deadline:
        data = port.read(max(port.in_waiting, 1))
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
         clock: Clock | None = None) -> list[ProbeResult]:
    """Probe every path in parallel; return results in the order of ``paths``."""
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(len(paths), 16)) as pool:
        return list(pool.map(lambda p: probe(p, timeout, clock), paths))


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
