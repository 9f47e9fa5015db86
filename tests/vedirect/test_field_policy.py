"""Issue 21: a reading outside its range costs that reading, never the whole block.

Streams are built with the project's encoder from a real SmartShunt 500A/50mV block
layout (PID 0xA389; PROTOCOL.md: as the BMV-712 without Relay and MON), with the
values a real one sends when nothing is connected to its aux input (VS -14 mV,
H15 -22 mV, issue 21).
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import pytest

from hw_sim import Simulator
from hw_sim.records import SMARTSHUNT_HISTORY, SMARTSHUNT_MAIN
from vemonitor.decode_cli import Summary, iter_items
from vemonitor.exit_summary import summary_lines
from vemonitor.serial_reader import SerialReader
from vemonitor.vedirect import Block, Rejected, decode_bytes, encode_block
from vemonitor.vedirect.snapshot import Snapshot, SnapshotAssembler

MAIN = SMARTSHUNT_MAIN
HISTORY = SMARTSHUNT_HISTORY
LABELS = [label for label, _ in MAIN + HISTORY]
CYCLES = 6
CHUNKINGS = [1, 7, 64, 4096, 1 << 20]


def _stream(history: list[tuple[str, str]] = HISTORY, cycles: int = CYCLES) -> bytes:
    return (encode_block(MAIN) + encode_block(history)) * cycles


def _snapshots(data: bytes, chunk: int, fast: bool = True) -> list[Snapshot]:
    events = decode_bytes(data, chunk, fast_path=fast)
    assert not [e for e in events if isinstance(e, Rejected)]
    assembler = SnapshotAssembler()
    return assembler.feed(events) + assembler.flush()


def _absurd_h7() -> list[tuple[str, str]]:
    return [(k, "999999999" if k == "H7" else v) for k, v in HISTORY]  # 999999.999 V


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_smartshunt_with_unconnected_aux_gives_full_snapshots(chunk: int, fast: bool) -> None:
    """VS -0.014 V and H15 -0.022 V are real readings: every cycle is a complete snapshot
    with every label, V, I, SOC included (before: every block rejected as out_of_range)."""
    snapshots = _snapshots(_stream(), chunk, fast)
    assert len(snapshots) == CYCLES
    for snap in snapshots:
        assert snap.complete and not snap.out_of_range
        assert list(snap.values) == LABELS
        assert snap.values["VS"] == -0.014 and snap.values["H15"] == -0.022
        assert snap.values["V"] == 13.259 and snap.values["SOC"] == 99.0
        assert snap.product == "SmartShunt 500A/50mV"


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_one_absurd_value_costs_only_its_field(chunk: int, fast: bool) -> None:
    """H7 = 999999.999 V: each history block is valid and keeps its 15 other fields; H7 is
    listed as left out; snapshots stay complete, without H7."""
    data = _stream(_absurd_h7())
    blocks = [e for e in decode_bytes(data, chunk, fast_path=fast) if isinstance(e, Block)]
    assert len(blocks) == 2 * CYCLES
    history = blocks[1::2]
    assert all(b.out_of_range == (("H7", "999999999"),) for b in history)
    assert all(list(b.fields) == [k for k, _ in HISTORY if k != "H7"] for b in history)
    for snap in _snapshots(data, chunk, fast):
        assert snap.complete and snap.out_of_range == {"H7": "999999999"}
        assert list(snap.values) == [label for label in LABELS if label != "H7"]
        assert "H7" not in snap.raw


def test_both_paths_agree_on_fields_left_out() -> None:
    """The fast path leaves out exactly what the state machine leaves out (same events)."""
    rows = [(k, v) for k, v in MAIN] + [("VM", "-5000"), ("DM", "-1200"), ("T", "---")]
    data = encode_block(rows) * 3 + _stream(_absurd_h7(), 2)
    assert decode_bytes(data, 4096) == decode_bytes(data, 4096, fast_path=False)
    first = decode_bytes(data)[0]
    assert isinstance(first, Block)
    assert first.out_of_range == (("VM", "-5000"), ("DM", "-1200"))


def test_not_available_is_an_absent_field_not_out_of_range() -> None:
    """`T ---` and `SOC ---`: absent from the snapshot's values, not counted as out of range."""
    main = [(k, "---" if k == "SOC" else v) for k, v in MAIN] + [("T", "---")]
    data = (encode_block(main) + encode_block(HISTORY)) * 2
    snap = _snapshots(data, 4096)[0]
    assert "SOC" not in snap.values and "T" not in snap.values
    assert snap.values["V"] == 13.259 and not snap.out_of_range and snap.complete


def test_decode_summary_counts_fields_out_of_range_on_their_own() -> None:
    """`vemonitor-decode --summary`: the blocks count as valid, H7 has its own counter."""
    summary = Summary()
    for item in iter_items(io.BytesIO(_stream(_absurd_h7())), summary):
        summary.count(item)
    counts = summary.as_dict()
    assert counts["blocks_valid"] == 2 * CYCLES and counts["blocks_rejected"] == {}
    assert counts["fields_out_of_range"] == {"H7": CYCLES}
    assert counts["snapshots"] == CYCLES


def test_decode_json_names_the_field_left_out(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """--json: each history block and snapshot says which field was left out, with its value."""
    from vemonitor.decode_cli import main

    path = tmp_path / "shunt.dump"
    path.write_bytes(_stream(_absurd_h7(), 1))
    assert main([str(path), "--json"]) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [i["out_of_range"] for i in items] == [{}, {"H7": "999999999"}, {"H7": "999999999"}]
    assert "H7" not in items[-1]["values"] and items[-1]["values"]["H8"] == 14.592


def test_reader_counts_each_field_left_out_and_logs_it_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Through a real pty: snapshots keep V, SOC, H8...; H7 is counted once per block and
    logged once (with the value seen), not once per block."""
    caplog.set_level(logging.WARNING, "vemonitor.fieldpolicy")
    capture = tmp_path / "shunt.dump"
    capture.write_bytes(_stream(_absurd_h7()))
    seen: list[Snapshot] = []
    with Simulator([], tmp_path / "sim", replays={"shunt": capture}, speed=20,
                   autostart=False) as sim:
        reader = SerialReader("shunt", str(sim.path("shunt")))
        reader.subscribe(lambda _name, snap: seen.append(snap))
        reader.start()
        time.sleep(0.5)  # the reader has the port open before the first byte
        sim.start()
        deadline = time.monotonic() + 30
        while reader.stats.frames_ok < 2 * CYCLES and time.monotonic() < deadline:
            time.sleep(0.05)
        reader.close()
    assert reader.stats.frames_ok == 2 * CYCLES and not reader.stats.rejected
    assert reader.stats.fields.as_dict() == {"out_of_range": {"H7": CYCLES}}
    assert reader.latest is not None and "H7" not in reader.latest.values
    assert reader.latest.values["V"] == 13.259 and reader.latest.values["H8"] == 14.592
    lines = [r.getMessage() for r in caplog.records if r.name == "vemonitor.fieldpolicy"]
    assert lines == ["device shunt: H7=999999.999 (wire 999999999) is outside its range "
                     "0..100 V: that reading is left out, the other fields are kept (1 so far; "
                     "said once an hour)"]


def test_exit_summary_says_which_fields_were_left_out() -> None:
    """The exit summary's device and input lines name the fields left out, per label."""
    summary = {"block": "B", "seconds": 10.0,
               "inputs": {"shunt": {"rows": 9, "missed": 0, "dropped": {},
                                    "fields_dropped": {"out_of_range": {"H7": 9}}}},
               "devices": {"shunt": {"frames_ok": 18, "rejected": {}, "reconnects": 0,
                                     "fields_dropped": {"out_of_range": {"H7": 9, "VS": 2}}}},
               "outputs": {}}
    lines = summary_lines(summary)
    assert lines[1] == "  input  shunt: 9 rows, 0 missed; fields left out: out_of_range H7 9"
    assert lines[2] == ("  device shunt: 18 frames ok, 0 rejected, 0 reconnects; "
                        "fields left out: out_of_range H7 9, VS 2")


def test_range_patterns_match_exactly_the_integers_in_range() -> None:
    """The fast path's range patterns accept a canonical integer iff it is in range (checked
    at both ends and around 0 for every bounded label, plus the digit-count boundaries)."""
    import re

    from vemonitor.vedirect.decoder import WIRE_BOUNDS, _sure_in_range

    for label, (low, high) in WIRE_BOUNDS.items():
        pattern = re.compile(_sure_in_range(low, high))
        assert pattern.fullmatch("---"), label
        probes = {low - 1, low, low + 1, high - 1, high, high + 1, -1, 0, 1}
        probes |= {sign * 10 ** k + d for k in range(12) for d in (-1, 0, 1) for sign in (1, -1)}
        for value in probes:
            assert bool(pattern.fullmatch(str(value))) == (low <= value <= high), (label, value)


def test_every_range_names_its_source() -> None:
    """Each line of the BOUNDS table in fields.py carries a source tag ([P], [C], [S], [D],
    [W]: the sources listed above the table)."""
    import inspect

    from vemonitor.vedirect import fields

    source = inspect.getsource(fields)
    table = source[source.index("BOUNDS: dict"):source.index("\n}\n", source.index("BOUNDS: dict"))]
    tagged = ("[P]", "[C]", "[S]", "[D]", "[W]")
    for line in table.splitlines()[1:]:
        if line.strip().startswith("#") or not line.strip():
            continue
        assert any(tag in line for tag in tagged), line


def test_a_field_left_out_still_counts_as_sent_for_serial_tests() -> None:
    """A seed serialTest of type columns naming VS passes although VS was out of range:
    the device sent it, so it is still the device the configuration means."""
    from vemonitor.scan import matches

    main = [(k, "999999" if k == "VS" else v) for k, v in MAIN]
    snap = _snapshots((encode_block(main) + encode_block(HISTORY)) * 2, 4096)[0]
    assert "VS" not in snap.raw and "VS" in snap.out_of_range
    assert matches(snap, {"cols": {"typeTest": "columns", "columns": ["PID", "V", "VS"]}})
    assert not matches(snap, {"cols": {"typeTest": "columns", "columns": ["VM"]}})


# Records of real devices quoted in public VE.Direct readers' sources (fields.py, [S]).
REAL_RECORDS = {
    "SmartShunt 0xA389 FW 0407": [
        ("PID", "0xA389"), ("V", "13259"), ("VS", "12716"), ("I", "-7742"), ("P", "-103"),
        ("CE", "-2911"), ("SOC", "990"), ("TTG", "2052"), ("Alarm", "OFF"), ("AR", "0"),
        ("BMV", "SmartShunt 500A/50mV"), ("FW", "0407"), ("MON", "0"), ("H1", "-264148"),
        ("H2", "-2909"), ("H3", "-109417"), ("H4", "6"), ("H5", "1"), ("H6", "-3928992"),
        ("H7", "6200"), ("H8", "14592"), ("H9", "3331"), ("H10", "21"), ("H11", "0"),
        ("H12", "0"), ("H15", "-27"), ("H16", "14592"), ("H17", "5148"), ("H18", "5581")],
    "Phoenix inverter 0xA261 FW 0114": [
        ("PID", "0xA261"), ("FW", "0114"), ("SER#", "HQ1936HGQYH"), ("MODE", "2"), ("CS", "9"),
        ("AC_OUT_V", "23004"), ("AC_OUT_I", "-3"), ("V", "13232"), ("AR", "0"), ("WARN", "0")],
}


@pytest.mark.parametrize("name", sorted(REAL_RECORDS))
def test_real_device_records_keep_every_field(name: str) -> None:
    """What real devices sent (negative aux minimum, idle inverter current) is in range."""
    records = REAL_RECORDS[name]
    for fast in (True, False):
        blocks = [e for e in decode_bytes(encode_block(records) * 3, fast_path=fast)]
        assert all(isinstance(b, Block) and not b.out_of_range for b in blocks), blocks
        assert all(list(b.fields) == [k for k, _ in records] for b in blocks
                   if isinstance(b, Block))
