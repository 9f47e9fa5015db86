"""Every real capture decodes to exactly what its README says, whatever the chunking."""

from __future__ import annotations

import pytest

from tests.shared import CAPTURES, require_shared
from vemonitor.vedirect import Block, HexMessage, Rejected, decode_bytes
from vemonitor.vedirect.events import Event
from vemonitor.vedirect.snapshot import SnapshotAssembler

# capture -> (valid blocks, rejected blocks, valid hex, invalid hex, snapshots)
EXPECTED = {
    "bmv700_fw308.dump": (906, 0, 0, 0, 453),
    "bluesolar_75_15_fw123.dump": (247, 1, 7, 0, 247),
    "smartsolar_100_20_fw139.dump": (493, 1, 2, 0, 493),
    "negative_bmv700_cr_stripped.dump": (0, 906, 0, 0, 0),
    "negative_bad_packets.dump": (0, 4, 0, 0, 0),
}
CHUNKINGS = [1, 2, 3, 7, 13, 64, 255, 1024, 4096, 1 << 30]


def _read(name: str) -> bytes:
    return (require_shared(CAPTURES) / name).read_bytes()


def _counts(events: list[Event]) -> tuple[int, int, int, int, int]:
    blocks = [e for e in events if isinstance(e, Block)]
    rejected = [e for e in events if isinstance(e, Rejected) and e.reason != "truncated"]
    hexes = [e for e in events if isinstance(e, HexMessage)]
    assembler = SnapshotAssembler()
    snapshots = assembler.feed(events) + assembler.flush()
    return (len(blocks), len(rejected), sum(h.valid for h in hexes),
            sum(not h.valid for h in hexes), len(snapshots))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_counts_match_readme(name: str) -> None:
    """Each capture gives the README's valid/rejected block, HEX and snapshot counts."""
    assert _counts(decode_bytes(_read(name), 4096)) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_results_do_not_depend_on_chunking(name: str) -> None:
    """Chunks of 1 byte up to the whole file give identical events, fast path on or off."""
    data = _read(name)
    reference = decode_bytes(data, len(data) or 1)
    for size in CHUNKINGS:
        assert decode_bytes(data, size) == reference, f"chunk size {size}"
    assert decode_bytes(data, 4096, fast_path=False) == reference


def test_bmv_blocks_alternate_main_and_history_with_colon_checksums() -> None:
    """The BMV capture alternates PID..FW / H1..H18 and 7 blocks end in a ':' checksum."""
    data = _read("bmv700_fw308.dump")
    blocks = [e for e in decode_bytes(data) if isinstance(e, Block)]
    firsts = [next(iter(b.fields)) for b in blocks]
    assert firsts == ["PID", "H1"] * 453
    assert list(blocks[0].fields) == ["PID", "V", "I", "P", "CE", "SOC", "TTG", "Alarm", "Relay",
                                      "AR", "BMV", "FW"]
    assert sum(data[b.end - 1] == ord(":") for b in blocks) == 7


def test_blocks_cover_the_stream_without_gaps() -> None:
    """Consecutive valid blocks are contiguous: each starts after the previous checksum byte."""
    data = _read("bmv700_fw308.dump")
    blocks = [e for e in decode_bytes(data) if isinstance(e, Block)]
    for prev, cur in zip(blocks, blocks[1:]):
        assert cur.start == prev.end
        assert sum(data[cur.start:cur.end]) % 256 == 0


def test_hex_lines_sit_right_after_checksum_bytes() -> None:
    """The BlueSolar HEX lines follow a checksum byte and are not part of any block."""
    data = _read("bluesolar_75_15_fw123.dump")
    events = decode_bytes(data)
    ends = {e.end for e in events if isinstance(e, (Block, Rejected))}
    hexes = [e for e in events if isinstance(e, HexMessage)]
    assert len(hexes) == 7
    for message in hexes:
        assert message.start in ends
        assert data[message.start:message.start + 2] == b":A"
        assert message.command == 0xA


@pytest.mark.parametrize("name", ["bmv700_fw308.dump", "smartsolar_100_20_fw139.dump"])
def test_capture_values_decode_to_user_units(name: str) -> None:
    """Snapshots carry typed values in V / A / % / kWh with the product name from PID."""
    events = decode_bytes(_read(name))
    snapshot = SnapshotAssembler().feed(events)[0]
    values = snapshot.values
    assert 10.0 < values["V"] < 16.0
    assert isinstance(values["I"], float)
    if name.startswith("bmv"):
        assert snapshot.product == "BMV-700"
        assert snapshot.firmware == "3.08"
        assert values["SOC"] == pytest.approx(83.9)
        assert values["H17"] == pytest.approx(68.43)
    else:
        assert snapshot.product == "SmartSolar MPPT 100/20"
        assert snapshot.serial == "HQ18486U2B4"
        assert str(values["CS"]) in {"Off", "Bulk", "Absorption", "Float"}
