"""Capture replay splits at checksum boundaries and keeps device timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw_sim.replay import group_cycles, split_blocks


def test_split_keeps_every_byte_and_any_checksum_byte() -> None:
    """Splitting never loses bytes; a checksum byte of ':' '\\r' '\\n' is taken blindly."""
    data = b"".join(b"\r\nV\t1\r\nChecksum\t" + bytes([cs]) for cs in (0x3A, 0x0D, 0x0A, 0xFF))
    chunks = split_blocks(data + b"\r\nV\t2")
    assert b"".join(chunks) == data + b"\r\nV\t2"
    assert [c[-1] for c in chunks[:4]] == [0x3A, 0x0D, 0x0A, 0xFF]
    assert chunks[4] == b"\r\nV\t2"


def test_hex_lines_after_the_checksum_byte_stay_with_their_block() -> None:
    """HEX lines right after a checksum byte travel with that block; mid-block ones stay put."""
    a = b"\r\nPID\t0x1\r\n:A0102\n\r\nV\t1\r\nChecksum\tx"
    b = b"\r\nPID\t0x1\r\nChecksum\ty"
    chunks = split_blocks(a + b":ABCD\n:A00\n" + b)
    assert chunks == [a + b":ABCD\n:A00\n", b]


def test_bmv_capture_plays_two_blocks_per_second(captures_dir: Path) -> None:
    """The BMV capture groups main + history blocks into one-second cycles."""
    data = (captures_dir / "bmv700_fw308.dump").read_bytes()
    chunks = split_blocks(data)
    assert b"".join(chunks) == data and len(chunks) == 907  # 906 blocks + trailing partial
    cycles = group_cycles(chunks)
    assert all(period == 1.0 for _, period in cycles)
    assert sum(len(c) == 2 for c, _ in cycles) >= 452


@pytest.mark.parametrize("name,blocks,with_hex", [
    ("bluesolar_75_15_fw123.dump", 248, 7), ("smartsolar_100_20_fw139.dump", 494, 1)])
def test_mppt_captures_play_one_block_per_second(captures_dir: Path, name: str, blocks: int,
                                                  with_hex: int) -> None:
    """MPPT captures give one block per one-second cycle, HEX lines attached."""
    chunks = split_blocks((captures_dir / name).read_bytes())
    assert len(chunks) == blocks
    assert sum(b":A" in c for c in chunks) == with_hex
    assert all(len(c) == 1 for c, _ in group_cycles(chunks))


def test_capture_without_pid_plays_one_block_per_half_second() -> None:
    """Without any PID block the fallback cadence is one chunk per 0.5 s."""
    cycles = group_cycles([b"\r\nV\t1\r\nChecksum\tx", b"\r\nV\t2\r\nChecksum\ty"])
    assert [period for _, period in cycles] == [0.5, 0.5]
