"""The simulator: one writer thread and one pty per device, all sharing one World."""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from hw_sim import hex_device
from hw_sim.clock import Clock, ScaledClock, SystemClock
from hw_sim.devices import PROFILES, Profile, Record, make_serial, render
from hw_sim.faults import FaultConfig, FaultedBlock, apply_faults
from hw_sim.physics import BmvReading, ChargerReading, ChargerSpec, World
from hw_sim.replay import load_cycles, parse_records
from hw_sim.wire import DEFAULT_WIRE, WIRES, Wire, check_speed, wire_named
from vemonitor.vedirect.encoder import encode_block

LINK_PREFIX = "ttyVE_"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# A hidden charger when no simulated charger is listed, so a lone BMV still sees days.
HIDDEN_SOLAR = ChargerSpec(max_current_a=30.0, panel_peak_w=400.0, panel_voc_v=40.0)
MAX_LAG_CYCLES = 3  # a writer further behind than this skips cycles instead of bursting
REAL_SLICE_S = 0.05  # real seconds between stop checks while a writer waits
HISTORY_LEN = 4096


@dataclass
class Frame:
    """One block ready to write: its bytes and the records it was made from."""

    data: bytes
    records: list[Record]


class FrameSource(Protocol):
    """Where a device's blocks come from (not a vemonitor Source: this one makes frames)."""

    finished: bool

    def cycle(self, now: float) -> tuple[list[Frame], float]:
        """Return the blocks of the device cycle starting at ``now`` and its period (s)."""
        ...


class ProfileSource:
    """Blocks rendered from a device profile and the shared physics."""

    def __init__(self, profile: Profile, world: World, name: str, serial: str) -> None:
        self.profile, self.world, self.name, self.serial = profile, world, name, serial
        self.finished = False

    def cycle(self, now: float) -> tuple[list[Frame], float]:
        """Advance the world to ``now`` and render one snapshot (one second)."""
        reading: BmvReading | ChargerReading
        if self.profile.charger is None:
            reading = self.world.bmv_reading(at=now)
        else:
            reading = self.world.charger_reading(self.name, at=now)
        blocks = render(self.profile, reading, self.serial)
        return [Frame(encode_block(b), b) for b in blocks], 1.0


class ReplaySource:
    """Blocks read from a capture, cycle after cycle, optionally looping."""

    def __init__(self, path: Path, loop: bool = False) -> None:
        self.cycles = load_cycles(path)
        self.loop = loop
        self.index = 0
        self.finished = not self.cycles

    def cycle(self, now: float) -> tuple[list[Frame], float]:
        """Return the next cycle of the capture (nothing once it ended without loop)."""
        if self.index >= len(self.cycles):
            if not self.loop:
                self.finished = True
                return [], 1.0
            self.index = 0
        chunks, period = self.cycles[self.index]
        self.index += 1
        self.finished = self.index >= len(self.cycles) and not self.loop
        return [Frame(c, parse_records(c)) for c in chunks], period


@dataclass
class Counters:
    """What a device did, for tests and summaries."""

    cycles: int = 0
    cycles_skipped: int = 0
    blocks_written: int = 0
    blocks_corrupted: int = 0
    blocks_with_noise: int = 0
    blocks_not_written: int = 0  # stalled or unplugged: the device was silent
    hex_lines: int = 0
    noise_bytes: int = 0
    split_writes: int = 0
    bytes_written: int = 0
    stalls: int = 0
    unplugs: int = 0


@dataclass(frozen=True)
class WrittenBlock:
    """One block as the device sent it, with the faults it carried."""

    time: float
    records: list[Record]
    data: bytes
    corrupted: bool
    noise: int
    hex_lines: list[bytes] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Return True when a correct reader must accept this block."""
        return not self.corrupted and self.noise == 0


class Device:
    """One simulated device: its pty, its writer thread, its faults and counters."""

    def __init__(self, name: str, source: FrameSource, link: Path, clock: ScaledClock,
                 faults: FaultConfig, seed: int | None, wire: Wire = WIRES[DEFAULT_WIRE]
                 ) -> None:
        from hw_sim.pty_port import PtyPort

        self.name, self.source, self.clock = name, source, clock
        self.port = PtyPort(link, wire=wire)
        self.faults = faults
        self.counters = Counters()
        self.history: deque[WrittenBlock] = deque(maxlen=HISTORY_LEN)
        self.written_fields: dict[str, str] = {}
        self.last_block: list[Record] = []
        self._rng = random.Random(faults.seed if faults.seed is not None else seed)
        self._stop = threading.Event()
        self._state = threading.Lock()
        self._silent_until = 0.0
        self._unplugged_until: float | None = None
        self._partial_next = False
        self._thread = threading.Thread(target=self._run, name=f"hw_sim-{name}", daemon=True)
        self._written = threading.Condition()
        self.hex: hex_device.HexDevice | None = None  # the HEX side (issue 22), if any

    @property
    def path(self) -> Path:
        """Return the stable symlink path readers open."""
        return self.port.link

    @property
    def finished(self) -> bool:
        """Return True once a non-looping replay has written everything."""
        return self.source.finished and not self._thread.is_alive()

    def start(self) -> None:
        """Create the pty (if not yet) and start writing."""
        self.port.open()
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def halt(self) -> None:
        """Stop writing but keep the pty, so a reader can drain what was written."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def stop(self) -> None:
        """Stop the writer, close the pty and remove the link (idempotent)."""
        self.halt()
        self.port.close()

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault configuration (takes effect on the next block)."""
        self.faults = faults
        if faults.seed is not None:
            self._rng = random.Random(faults.seed)

    def unplug(self, seconds: float) -> None:
        """Close the pty and remove the link now; recreate both after ``seconds`` (device)."""
        with self._state:
            self.port.close()
            self._unplugged_until = self.clock.now() + seconds
            self.counters.unplugs += 1

    def replug(self) -> None:
        """Recreate the pty and link now if unplugged."""
        with self._state:
            if self._unplugged_until is not None:
                self._unplugged_until = None
                self.port.open()

    def stall(self, seconds: float, mid_block: bool = False) -> None:
        """Go silent for ``seconds`` (device); ``mid_block`` first writes half a block."""
        with self._state:
            self._silent_until = self.clock.now() + seconds
            self._partial_next = mid_block
            self.counters.stalls += 1

    def wait_blocks(self, count: int, timeout: float) -> bool:
        """Block until ``count`` blocks were written in total; False on timeout (real s)."""
        with self._written:
            return self._written.wait_for(lambda: self.counters.blocks_written >= count, timeout)

    # -- writer thread ------------------------------------------------------

    def _run(self) -> None:
        next_t = self.clock.now()
        while not self._stop.is_set():
            frames, period = self.source.cycle(next_t)
            if not frames and self.source.finished:
                return
            self.counters.cycles += 1
            self._maybe_random_outage()
            step = period / max(len(frames), 1)
            for i, frame in enumerate(frames):
                if not self._wait_until(next_t + i * step):
                    return
                self._emit(frame)
            next_t += period
            next_t = self._catch_up(next_t, period)

    def _catch_up(self, next_t: float, period: float) -> float:
        """Skip whole cycles when writing fell far behind (too fast a speed, slow host)."""
        behind = self.clock.now() - next_t
        if behind <= MAX_LAG_CYCLES * period:
            return next_t
        skipped = int(behind // period)
        self.counters.cycles_skipped += skipped
        return next_t + skipped * period

    def _wait_until(self, target: float) -> bool:
        """Sleep in device time until ``target``; return False when stopping."""
        slice_s = REAL_SLICE_S * self.clock.speed
        while not self._stop.is_set():
            self._maybe_replug()
            hex_device.serve(self)  # answer HEX between blocks
            remaining = target - self.clock.now()
            if remaining <= 0:
                return True
            self._pause(min(remaining, slice_s))
        return False

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` (device time) between blocks; a HEX request ends the wait.

        A real device answers a request in its gap within milliseconds (OpenDTU-OnBattery
        #1692's serial log: five replies and an async burst within 40 ms at 19200 baud),
        not at the next of our 50 ms stop checks. So a device with a HEX side on the
        real clock wakes when the host writes, and serve() answers at once. A manual
        clock (tests that step time) keeps its plain sleep.
        """
        if self.hex is None or not isinstance(self.clock.base, SystemClock):
            self.clock.sleep(seconds)
            return
        self.port.wait_input(seconds / self.clock.speed)

    def _maybe_random_outage(self) -> None:
        cfg = self.faults
        if cfg.stall and self._rng.random() < cfg.stall:
            self.stall(cfg.stall_seconds, mid_block=self._rng.random() < 0.5)
        if cfg.unplug and self._unplugged_until is None and self._rng.random() < cfg.unplug:
            self.unplug(cfg.unplug_seconds)

    def _maybe_replug(self) -> None:
        with self._state:
            until = self._unplugged_until
            if until is not None and self.clock.now() >= until:
                self._unplugged_until = None
                self.port.open()

    def _emit(self, frame: Frame) -> None:
        if hex_device.text_paused(self):  # FW <= 1.52: no TEXT while HEX flows
            self.counters.blocks_not_written += 1
            return
        with self._state:
            silent = self._unplugged_until is not None or self.clock.now() < self._silent_until
            partial, self._partial_next = self._partial_next, False
        if silent and not partial:
            self.counters.blocks_not_written += 1
            return
        faulted = apply_faults(frame.data, self.faults, self._rng)
        if partial:
            faulted.pieces = [frame.data[: len(frame.data) // 2]]
        self._write(faulted)
        self._record(frame, faulted, complete=not partial)
        hex_device.serve(self, None if partial else frame.records)

    def _write(self, faulted: FaultedBlock) -> None:
        for i, piece in enumerate(faulted.pieces):
            if i:
                self.clock.sleep(self.faults.split_delay)
            self.counters.bytes_written += self.port.write(piece)
        self.counters.split_writes += int(len(faulted.pieces) > 1)

    def _record(self, frame: Frame, faulted: FaultedBlock, complete: bool) -> None:
        c = self.counters
        if not complete:
            c.blocks_not_written += 1
            return
        c.blocks_corrupted += int(faulted.corrupted)
        c.blocks_with_noise += int(faulted.noise > 0)
        c.noise_bytes += faulted.noise
        c.hex_lines += len(faulted.hex_lines)
        self.history.append(WrittenBlock(self.clock.now(), frame.records, faulted.data,
                                         faulted.corrupted, faulted.noise, faulted.hex_lines))
        self.last_block = frame.records
        if frame.records and frame.records[0][0] == "PID":
            self.written_fields = {}
        self.written_fields = {**self.written_fields, **dict(frame.records)}
        with self._written:
            c.blocks_written += 1
            self._written.notify_all()


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``kind`` or ``kind:name`` into (kind, name); raise ValueError when invalid."""
    kind, _, name = spec.partition(":")
    if kind not in PROFILES:
        raise ValueError(f"unknown device kind {kind!r} (known: {', '.join(PROFILES)})")
    name = name or kind
    if not NAME_RE.match(name):
        raise ValueError(f"bad device name {name!r}: use letters, digits, '_' or '-'")
    return kind, name


def name_devices(specs: Sequence[str]) -> list[tuple[str, str]]:
    """Return (kind, unique name) per spec; repeated plain kinds become kind_2, kind_3..."""
    result: list[tuple[str, str]] = []
    taken: set[str] = set()
    for spec in specs:
        kind, name = parse_spec(spec)
        base, n = name, 1
        while name in taken:
            if ":" in spec:
                raise ValueError(f"device name {name!r} used twice")
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        result.append((kind, name))
    return result


class Simulator:
    """Run simulated VE.Direct devices on ptys; use as a context manager."""

    def __init__(
        self,
        devices: Sequence[str] = (),
        directory: str | Path = "/tmp/vemonitor-sim",
        *,
        speed: float = 1.0,
        clock: Clock | None = None,
        faults: FaultConfig | None = None,
        replays: Mapping[str, str | Path] | None = None,
        loop: bool = False,
        seed: int | None = 0,
        start_time: float | None = None,
        soc: float = 0.8,
        utc_offset_s: float | None = None,
        autostart: bool = True,
        wire: str = DEFAULT_WIRE,
    ) -> None:
        self.autostart = autostart
        # hw_sim.wire: "instant" (a bare pty) or "usb" (19200 baud through an FTDI cable).
        self.wire = wire_named(wire)
        check_speed(self.wire, speed)
        self.directory = Path(directory)
        self.clock = ScaledClock(clock or SystemClock(), speed, start_time)
        named = name_devices(devices)
        replays = dict(replays or {})
        self._check_replays(replays, {name for _, name in named})
        chargers = {n: PROFILES[k].charger for k, n in named if PROFILES[k].charger}
        specs = {n: spec for n, spec in chargers.items() if spec is not None}
        self.world = World(self.clock.now(), specs or {"_solar": HIDDEN_SOLAR}, soc=soc,
                           seed=seed, utc_offset_s=utc_offset_s)
        base = faults or FaultConfig()
        self.devices: dict[str, Device] = {}
        for kind, name in named:
            source = ProfileSource(PROFILES[kind], self.world, name, make_serial(name, seed))
            self._add(name, source, base, seed)
            self.devices[name].hex = hex_device.for_profile(PROFILES[kind], self.world, name,
                                                            source.serial)
        for name, file in replays.items():
            self._add(name, ReplaySource(Path(file), loop), base, seed)

    @staticmethod
    def _check_replays(replays: Mapping[str, str | Path], taken: set[str]) -> None:
        for name, file in replays.items():
            if not NAME_RE.match(name) or name in taken:
                raise ValueError(f"bad or duplicate replay device name {name!r}")
            if not Path(file).is_file():
                raise ValueError(f"replay file not found: {file}")

    def _add(self, name: str, source: FrameSource, faults: FaultConfig, seed: int | None) -> None:
        link = self.directory / f"{LINK_PREFIX}{name}"
        # Each device gets its own copy so runtime changes stay per device.
        own = FaultConfig(**vars(faults))
        device_seed = None if seed is None else random.Random(f"{seed}:{name}").getrandbits(32)
        self.devices[name] = Device(name, source, link, self.clock, own, device_seed,
                                    self.wire)

    def __enter__(self) -> Simulator:
        # autostart=False: only the ptys exist; open readers, then call start().
        if self.autostart:
            self.start()
        else:
            self.open_ports()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices.values())

    def open_ports(self) -> None:
        """Create every pty and link without writing yet (open readers first, miss nothing)."""
        try:
            for device in self.devices.values():
                device.port.open()
        except BaseException:
            self.stop()
            raise

    def start(self) -> None:
        """Create every pty and link (unless open_ports did) and start writing."""
        try:
            for device in self.devices.values():
                device.start()
        except BaseException:
            self.stop()
            raise

    def halt(self) -> None:
        """Stop all writers but keep the ptys open (readers can drain them)."""
        for device in self.devices.values():
            device.halt()

    def stop(self) -> None:
        """Stop all writers, close all ptys and remove all links (idempotent)."""
        self.halt()
        for device in self.devices.values():
            device.stop()

    def path(self, name: str) -> Path:
        """Return the symlink path of device ``name``."""
        return self.devices[name].path

    def unplug(self, name: str, seconds: float = 2.0) -> None:
        """Unplug device ``name`` now and replug it after ``seconds`` of device time."""
        self.devices[name].unplug(seconds)

    def replug(self, name: str) -> None:
        """Replug device ``name`` now."""
        self.devices[name].replug()

    def stall(self, name: str, seconds: float, mid_block: bool = False) -> None:
        """Make device ``name`` silent for ``seconds`` of device time."""
        self.devices[name].stall(seconds, mid_block)

    def set_faults(self, faults: FaultConfig, name: str | None = None) -> None:
        """Set the faults of one device, or of all devices when ``name`` is None."""
        targets = [self.devices[name]] if name else list(self.devices.values())
        for device in targets:
            device.set_faults(FaultConfig(**vars(faults)))


__all__ = ["Counters", "Device", "Frame", "Simulator", "WrittenBlock"]
