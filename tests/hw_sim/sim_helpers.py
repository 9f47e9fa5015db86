"""Test helpers: decode what the simulator wrote, with the project decoder when present."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from hw_sim.faults import CHECKSUM_MARK
from hw_sim.replay import parse_records, split_blocks

HEX_LINE = re.compile(rb":[0-9A-Fa-f]+\n")

try:  # the decoder is written in parallel; fall back to a minimal checker without it
    from vemonitor.vedirect.decoder import Decoder
    from vemonitor.vedirect.events import Block, HexMessage
except ImportError:  # pragma: no cover - depends on the other work in progress
    Decoder = None  # type: ignore[assignment,misc]


def text_of(chunk: bytes) -> bytes:
    """Return a chunk's text bytes: HEX lines removed, up to the checksum byte."""
    mark = chunk.rfind(CHECKSUM_MARK)
    end = mark + len(CHECKSUM_MARK) + 1
    return HEX_LINE.sub(b"", chunk[:mark]) + chunk[mark:end]


def checksum_ok(chunk: bytes) -> bool:
    """Return True when a chunk's text bytes sum to 0 mod 256."""
    return CHECKSUM_MARK in chunk and sum(text_of(chunk)) % 256 == 0


def valid_blocks(stream: bytes) -> list[dict[str, str]]:
    """Return the fields of every checksum-valid block in ``stream``."""
    if Decoder is not None:
        decoder = Decoder()
        events = decoder.feed(stream) + decoder.finish()
        return [e.fields for e in events if isinstance(e, Block)]
    return [dict(parse_records(c)) for c in split_blocks(stream) if checksum_ok(c)]


def hex_lines(stream: bytes) -> list[bytes]:
    """Return the HEX lines in ``stream`` (decoder when present, else a regex)."""
    if Decoder is not None:
        decoder = Decoder()
        events = decoder.feed(stream) + decoder.finish()
        return [b":" + e.raw + b"\n" for e in events if isinstance(e, HexMessage) and e.valid]
    return HEX_LINE.findall(stream)


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll ``condition`` until true or ``timeout`` real seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def read_for(port: object, seconds: float) -> bytes:
    """Read everything a pyserial port delivers during ``seconds``."""
    data = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data += port.read(4096)  # type: ignore[attr-defined]
    return bytes(data)


def link_target(path: Path) -> str:
    """Return where a symlink points."""
    return str(path.readlink())
