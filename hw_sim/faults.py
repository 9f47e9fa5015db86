"""Fault injection: what can go wrong between a device and its reader, on demand."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, fields, replace

from vemonitor.vedirect.encoder import encode_hex

CHECKSUM_MARK = b"Checksum\t"
# Printable value bytes a corruption may use: never framing bytes (\r \n \t) nor ':'.
SAFE_BYTES = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NOISE_BYTES = bytes(b for b in range(256) if b != ord(":"))
# Registers a charger/BMV announces asynchronously: (register id, value bytes).
ASYNC_REGISTERS: tuple[tuple[int, int], ...] = ((0xEDD5, 2), (0xEDD7, 2), (0xEDBB, 2),
                                                (0x0201, 1), (0xEEFF, 4))


@dataclass
class FaultConfig:
    """Fault rates (0..1, per block unless noted) and sizes; all zero = a clean device."""

    corrupt: float = 0.0  # blocks with one value byte changed (checksum then fails)
    hex: float = 0.0  # blocks followed by an async HEX line right after the checksum byte
    hex_mid: float = 0.0  # blocks with an async HEX line between two records
    noise: float = 0.0  # blocks preceded by noise bytes (that block then fails its checksum)
    noise_max: int = 8  # 1..noise_max noise bytes each time
    split: float = 0.0  # blocks written in several write() calls
    split_delay: float = 0.005  # device seconds between the pieces of a split block
    stall: float = 0.0  # per device cycle: go silent
    stall_seconds: float = 3.0  # device seconds of silence per stall
    unplug: float = 0.0  # per device cycle: unplug (link removed), then replug
    unplug_seconds: float = 2.0  # device seconds before the replug
    seed: int | None = None  # random seed of the fault decisions (None: fresh randomness)


@dataclass
class FaultedBlock:
    """One block after fault injection: the write() pieces and what was done to it."""

    pieces: list[bytes]
    corrupted: bool = False
    noise: int = 0
    hex_lines: list[bytes] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        """Return all bytes of the block as written."""
        return b"".join(self.pieces)


RATE_KEYS = ("corrupt", "hex", "hex_mid", "noise", "split", "stall", "unplug")


def parse_faults(spec: str, base: FaultConfig | None = None) -> FaultConfig:
    """Parse ``corrupt=0.05,hex=0.2,...`` into a FaultConfig; raise ValueError with the key."""
    known = {f.name: f for f in fields(FaultConfig)}
    changes: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(known)})")
        changes[key] = _fault_value(key, raw.strip())
    return replace(base or FaultConfig(), **changes)  # type: ignore[arg-type]


def _fault_value(key: str, raw: str) -> float | int | None:
    try:
        if key in ("noise_max", "seed"):
            return None if key == "seed" and raw == "none" else int(raw)
        value = float(raw)
    except ValueError:
        raise ValueError(f"fault {key}={raw!r}: not a number") from None
    if key in RATE_KEYS and not 0.0 <= value <= 1.0:
        raise ValueError(f"fault {key}={raw}: a rate must be between 0 and 1")
    if value < 0:
        raise ValueError(f"fault {key}={raw}: must not be negative")
    return value


def async_hex_line(rng: random.Random) -> bytes:
    """Return a plausible async HEX line ``:A<reg><flags><value><check>\\n``."""
    register, size = rng.choice(ASYNC_REGISTERS)
    payload = register.to_bytes(2, "little") + b"\x00" + rng.getrandbits(8 * size).to_bytes(
        size, "little")
    return encode_hex(0xA, payload)


def _corrupt(data: bytes, rng: random.Random) -> bytes:
    """Change one alphanumeric byte before the checksum record: the sum must then fail."""
    end = data.rfind(CHECKSUM_MARK)
    candidates = [i for i in range(max(end, 0)) if data[i] in SAFE_BYTES]
    if not candidates:
        # No record to damage: change the checksum byte itself.
        pos = len(data) - 1
        return data[:pos] + bytes([data[pos] ^ 0x01])
    pos = rng.choice(candidates)
    new = rng.choice([b for b in SAFE_BYTES if b != data[pos]])
    return data[:pos] + bytes([new]) + data[pos + 1:]


def _insert_mid_hex(data: bytes, line: bytes, rng: random.Random) -> bytes:
    """Put ``line`` before a record's ``\\r\\n`` other than the first (between records)."""
    end = data.rfind(CHECKSUM_MARK)
    starts = [m.start() for m in re.finditer(rb"\r\n", data[:max(end, 0)])]
    if len(starts) < 2:
        return data + line
    pos = rng.choice(starts[1:])
    return data[:pos] + line + data[pos:]


def _noise(count: int, rng: random.Random) -> bytes:
    """Return ``count`` random bytes (no ':') whose sum is not 0 mod 256.

    The block after the noise then fails its checksum for any reader, so tests can
    tell exactly which blocks a correct reader must accept.
    """
    noise = bytearray(rng.choice(NOISE_BYTES) for _ in range(count))
    while sum(noise) % 256 == 0:
        noise[-1] = rng.choice(NOISE_BYTES)
    return bytes(noise)


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 4))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def apply_faults(data: bytes, config: FaultConfig, rng: random.Random) -> FaultedBlock:
    """Return one block's bytes with the configured faults applied (decided by ``rng``)."""
    out = FaultedBlock(pieces=[])
    if rng.random() < config.corrupt:
        data, out.corrupted = _corrupt(data, rng), True
    if rng.random() < config.hex_mid:
        line = async_hex_line(rng)
        data = _insert_mid_hex(data, line, rng)
        out.hex_lines.append(line)
    if rng.random() < config.hex:
        line = async_hex_line(rng)
        data += line
        out.hex_lines.append(line)
    if rng.random() < config.noise and config.noise_max > 0:
        noise = _noise(rng.randint(1, config.noise_max), rng)
        out.noise, data = len(noise), noise + data
    split = rng.random() < config.split and len(data) > 1
    out.pieces = _split(data, rng) if split else [data]
    return out
