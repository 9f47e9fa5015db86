"""Replay of capture files: split at checksum boundaries, group into device cycles."""

from __future__ import annotations

from pathlib import Path

from hw_sim.faults import CHECKSUM_MARK

HEX_LINE_CAP = 100  # a HEX line longer than this is not a HEX line: stop attaching
NO_PID_INTERVAL_S = 0.5  # cadence of captures without PID blocks: one block per 0.5 s


def split_blocks(data: bytes) -> list[bytes]:
    """Split a capture after each ``Checksum\\t`` + one byte (+ HEX lines right after it).

    The checksum byte may be anything (``:``, ``\\r``, ``\\n``...); it is taken blindly.
    Joining the result gives back ``data`` exactly; trailing bytes form the last chunk.
    """
    chunks: list[bytes] = []
    start = 0
    while (mark := data.find(CHECKSUM_MARK, start)) >= 0 and mark + len(CHECKSUM_MARK) < len(data):
        end = _after_hex_lines(data, mark + len(CHECKSUM_MARK) + 1)
        chunks.append(data[start:end])
        start = end
    if start < len(data):
        chunks.append(data[start:])
    return chunks


def _after_hex_lines(data: bytes, pos: int) -> int:
    """Return the end of the HEX lines that directly follow ``pos`` (or ``pos``)."""
    while pos < len(data) and data[pos:pos + 1] == b":":
        newline = data.find(b"\n", pos, pos + HEX_LINE_CAP)
        if newline < 0:
            break
        pos = newline + 1
    return pos


def parse_records(chunk: bytes) -> list[tuple[str, str]]:
    """Return the ``LABEL\\tVALUE`` records of a chunk (best effort, for bookkeeping)."""
    records = []
    for line in chunk.replace(b"\r", b"").split(b"\n"):
        label, tab, value = line.partition(b"\t")
        if tab and label and label != b"Checksum" and not label.startswith(b":"):
            records.append((label.decode("latin-1"), value.decode("latin-1")))
    return records


def starts_snapshot(chunk: bytes) -> bool:
    """Return True when a chunk's first record is ``PID`` (a device starts a new cycle)."""
    records = parse_records(chunk)
    return bool(records) and records[0][0] == "PID"


def group_cycles(chunks: list[bytes]) -> list[tuple[list[bytes], float]]:
    """Group chunks into device cycles of (chunks, period in seconds).

    A cycle starts at a block whose first record is PID and lasts one second, its
    blocks spread evenly over it (BMV: main + history = 2 per second). A capture
    without any PID block plays one chunk per 0.5 s.
    """
    if not any(starts_snapshot(c) for c in chunks):
        return [([c], NO_PID_INTERVAL_S) for c in chunks]
    cycles: list[list[bytes]] = []
    for chunk in chunks:
        if not cycles or starts_snapshot(chunk):
            cycles.append([])
        cycles[-1].append(chunk)
    return [(cycle, 1.0) for cycle in cycles]


def load_cycles(path: Path) -> list[tuple[list[bytes], float]]:
    """Read a capture file and return its device cycles."""
    return group_cycles(split_blocks(path.read_bytes()))
