"""Snapshot assembly: blocks of one device cycle merge; nothing leaks across cycles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from vemonitor.vedirect import Block, Rejected, snapshot
from vemonitor.vedirect.snapshot import SnapshotAssembler

MAIN = {"PID": "0x203", "V": "12800", "SOC": "950"}
HIST = {"H1": "-1000", "H17": "100"}


def _block(fields: dict[str, str], at: int = 0) -> Block:
    return Block(dict(fields), at, at + 10)


def test_bmv_main_and_history_merge_into_one_snapshot() -> None:
    """PID..FW + H1..H18 make one snapshot with both sets of fields."""
    asm = SnapshotAssembler()
    out = asm.feed([_block(MAIN), _block(HIST), _block(MAIN)])
    assert len(out) == 1
    assert set(out[0].raw) == set(MAIN) | set(HIST)
    assert out[0].complete and out[0].blocks == 2


def test_cycle_length_is_learned_so_snapshots_are_not_one_cycle_late() -> None:
    """After one full cycle, a snapshot is emitted as soon as its last block arrives."""
    asm = SnapshotAssembler()
    asm.feed([_block(MAIN), _block(HIST)])
    asm.feed([_block(MAIN)])  # closes cycle 1, learns 2 blocks per cycle
    out = asm.feed([_block(HIST)])
    assert len(out) == 1 and out[0].complete


def test_rejected_block_makes_cycle_incomplete_and_values_do_not_leak() -> None:
    """A rejected history block: the snapshot lacks H fields rather than reusing old ones."""
    asm = SnapshotAssembler()
    asm.feed([_block(MAIN), _block(HIST), _block(MAIN), _block(HIST)])
    out = asm.feed([_block({**MAIN, "V": "13000"}), Rejected("checksum", 0, 5), _block(MAIN)])
    assert len(out) == 1
    assert not out[0].complete
    assert out[0].raw["V"] == "13000" and "H1" not in out[0].raw


def test_blocks_after_a_lost_pid_block_are_orphans() -> None:
    """When the PID block of a cycle is lost, its history block is not merged into the last cycle."""
    asm = SnapshotAssembler()
    asm.feed([_block(MAIN), _block(HIST), _block(MAIN), _block(HIST)])
    out = asm.feed([Rejected("checksum", 0, 5), _block({"H1": "-5"})])
    assert out == []
    assert asm.orphan_blocks == 1
    nxt = asm.feed([_block(MAIN), _block(HIST)])
    assert len(nxt) == 1 and nxt[0].raw["H1"] == "-1000"


def test_history_before_first_pid_is_dropped() -> None:
    """Joining a stream at its history block: no snapshot without a device identity."""
    asm = SnapshotAssembler()
    assert asm.feed([_block(HIST)]) == []
    assert asm.orphan_blocks == 1


def test_single_block_devices_give_one_snapshot_per_block() -> None:
    """An MPPT sending one block per cycle yields one snapshot per block once learned."""
    asm = SnapshotAssembler()
    mppt = {"PID": "0xA053", "V": "13200", "CS": "3"}
    out = asm.feed([_block(mppt)] * 5)
    # The first is emitted when the second arrives (which teaches 1 block per cycle);
    # from then on each block is emitted at once.
    assert len(out) == 5
    assert out[-1].values["CS"] == 3 and str(out[-1].values["CS"]) == "Bulk"
    assert len(asm.flush()) == 0


def test_device_growing_a_block_is_merged_and_relearned() -> None:
    """A block beyond the learned cycle length is merged and the snapshot re-emitted."""
    asm = SnapshotAssembler()
    asm.feed([_block(MAIN), _block(MAIN)])  # learns 1 block per cycle
    out = asm.feed([_block(HIST)])
    assert len(out) == 1 and "H1" in out[0].raw and "PID" in out[0].raw


def test_first_cycle_ends_at_a_cycle_end_label_without_waiting_for_the_next_pid() -> None:
    """H18 (battery monitors) and HSDS (chargers) only end a cycle: emit it at once."""
    asm = SnapshotAssembler()
    out = asm.feed([_block(MAIN), _block({**HIST, "H18": "200"})])
    assert len(out) == 1 and out[0].complete and "H18" in out[0].raw
    solar = SnapshotAssembler().feed([_block({"PID": "0xA053", "PPV": "5", "HSDS": "12"})])
    assert len(solar) == 1 and solar[0].complete


def test_fields_are_decoded_as_decode_fields_does_only_when_their_text_changed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots hold exactly ``decode_fields(raw)``, in the wire's order, cycle after
    cycle (a value changing, becoming "---" and coming back), while only the fields whose
    text changed are decoded again (issue 24g: decoding was half of a block's handling)."""
    decoded: list[str] = []
    real = snapshot.decode_fields

    def counting(raw: Mapping[str, str]) -> dict[str, Any]:
        decoded.extend(raw)
        return real(raw)

    monkeypatch.setattr(snapshot, "decode_fields", counting)
    asm = SnapshotAssembler()
    cycles = [MAIN, {**MAIN, "V": "12810"}, {**MAIN, "V": "---"}, {**MAIN, "SOC": "949"},
              MAIN]
    out = []
    for main in cycles:
        out += asm.feed([_block(main), _block(HIST)])
    assert [s.values for s in out] == [real({**main, **HIST}) for main in cycles]
    assert [list(s.values) for s in out][0] == list({**MAIN, **HIST})
    assert "V" not in out[2].values  # not available: absent, never a stale value
    # First cycle: all 5 fields; then V; V; V and SOC; SOC.
    assert sorted(decoded) == sorted([*MAIN, *HIST, "V", "V", "V", "SOC", "SOC"])
