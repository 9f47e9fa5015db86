"""Find VE.Direct devices on serial ports: probe each candidate port for a snapshot.

Used by ``vemonitor scan``, by serial connectors configured with ``serialTest``
(the seed's way to find a device whose ttyUSB number changed), and later by the
Home Assistant config flow. Ports are probed in parallel threads, each for at most
``timeout`` seconds; a corrupted block while probing does not fail the probe.
"""

from __future__ import annotations

import contextlib
import glob
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import serial

from vemonitor.clock import Clock, SystemClock
from vemonitor.serial_reader import SERIAL_SETTINGS
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.events import Block, Rejected
from vemonitor.vedirect.snapshot import Snapshot, SnapshotAssembler

DEFAULT_GLOBS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyAMA*")
SIM_GLOB = "ttyVE_*"
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


def candidate_ports(globs: Iterable[str] = DEFAULT_GLOBS, sim_dir: str | None = None) -> list[str]:
    """Return existing port paths matching ``globs`` (plus the simulator's), one per device.

    A /dev/serial/by-id link and the ttyUSB node it points to are the same device:
    the by-id name is kept because it survives renumbering.
    """
    patterns = list(globs)
    if sim_dir:
        patterns.append(os.path.join(sim_dir, SIM_GLOB))
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
        return all(column in snapshot.raw for column in test.get("columns") or ())
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


@dataclass
class Scanner:
    """Shares one scan between connectors and keeps each port claimed by one connector."""

    globs: tuple[str, ...] = DEFAULT_GLOBS
    sim_dir: str | None = None
    timeout: float = PROBE_TIMEOUT
    clock: Clock | None = None
    reuse_for: float = 10.0  # seconds a scan's results serve the next connectors
    claims: dict[str, str] = field(default_factory=dict)  # realpath -> connector
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last: dict[str, ProbeResult] = field(default_factory=dict)
    _last_at: float = -1e9

    def find(self, connector: str, tests: Mapping[str, Mapping[str, Any]],
             globs: Sequence[str] | None = None, fresh: bool = False) -> ProbeResult | None:
        """Return the first unclaimed port whose device passes ``tests``, claiming it.

        Connectors starting together share one scan (ports are probed once);
        ``fresh`` forces a new scan (a device that disappeared is searched again).
        """
        with self._lock:
            paths = [p for p in candidate_ports(globs or self.globs, self.sim_dir)
                     if self.claims.get(os.path.realpath(p), connector) == connector]
            for result in self._results(paths, fresh):
                if result.snapshot is not None and matches(result.snapshot, tests):
                    self.claims[os.path.realpath(result.path)] = connector
                    return result
        return None

    def _results(self, paths: list[str], fresh: bool) -> list[ProbeResult]:
        """Return probe results for ``paths``, reusing a recent scan where possible."""
        recent = not fresh and time.monotonic() - self._last_at < self.reuse_for
        missing = [p for p in paths if not (recent and p in self._last)]
        if missing:
            for result in scan(missing, self.timeout, self.clock):
                self._last[result.path] = result
            self._last_at = time.monotonic()
        return [self._last[p] for p in paths]

    def explain(self, connector: str, tests: Mapping[str, Mapping[str, Any]],
                globs: Sequence[str] | None = None) -> str:
        """Return one line: the ports probed, what each showed, what is expected, what to try.

        Said when a connector's search finds nothing (the last scan's results, no new probe).
        """
        patterns = tuple(globs or self.globs)
        with self._lock:
            paths = candidate_ports(patterns, self.sim_dir)
            shown = [f"{p}: " + port_verdict(self._last[p], tests, self._owner(p, connector))
                     for p in paths if p in self._last]
        wanted = f"no device with {expected_device(tests)} found"
        if not paths:
            probed = "no serial port matches " + " ".join(patterns)
        else:
            probed = f"{len(paths)} port(s) probed: " + "; ".join(shown or paths)
        return f"{wanted}; {probed}. Next: {NEXT_STEPS}"

    def _owner(self, path: str, connector: str) -> str | None:
        owner = self.claims.get(os.path.realpath(path))
        return owner if owner not in (None, connector) else None

    def claim(self, connector: str, path: str) -> None:
        """Mark ``path`` as used by ``connector`` (a fixed serialPort)."""
        with self._lock:
            self.claims[os.path.realpath(path)] = connector

    def release(self, connector: str) -> None:
        """Forget every port claimed by ``connector``."""
        with self._lock:
            for real in [r for r, c in self.claims.items() if c == connector]:
                del self.claims[real]


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
