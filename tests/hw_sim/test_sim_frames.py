"""Device profiles render real wire frames; faults do exactly what they claim."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_sim.devices import PROFILES, make_serial, render
from hw_sim.faults import FaultConfig, apply_faults, parse_faults
from hw_sim.physics import World
from tests.hw_sim.sim_helpers import checksum_ok, hex_lines, text_of, valid_blocks
from vemonitor.vedirect.encoder import encode_block

# Field order per device, copied from PROTOCOL.md (what real devices send).
EXPECTED_ORDER = {
    "bmv700": [
        ["PID", "V", "I", "P", "CE", "SOC", "TTG", "Alarm", "Relay", "AR", "BMV", "FW"],
        ["H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "H9", "H10", "H11", "H12", "H17", "H18"],
    ],
    "mppt": [
        ["PID", "FW", "SER#", "V", "I", "VPV", "PPV", "CS", "MPPT", "OR", "ERR", "LOAD", "IL",
         "H19", "H20", "H21", "H22", "H23", "HSDS"],
    ],
    "mppt_fwe": [
        ["PID", "FWE", "SER#", "V", "I", "VPV", "PPV", "MPPT", "CS", "OR"],
        ["ERR", "LOAD", "Relay", "H19", "H20", "H21", "H22", "H23", "HSDS"],
    ],
}
INT = r"-?\d+"
WIRE_FORMAT = {
    "PID": r"0x[0-9A-F]+", "FW": r"\d{3,4}", "FWE": r"[0-9A-F]{5}", "SER#": r"HQ\d{4}[A-Z0-9]{5}",
    "OR": r"0x[0-9A-F]{8}", "LOAD": "ON|OFF", "Alarm": "ON|OFF", "Relay": "ON|OFF", "BMV": "700",
}


def cycle(kind: str, hour: float = 12.0) -> list[list[tuple[str, str]]]:
    """Return one rendered cycle of a device kind at a given hour."""
    chargers = {k: p.charger for k, p in PROFILES.items() if p.charger is not None}
    world = World(0.0, chargers, soc=0.5, utc_offset_s=0.0)
    world.advance(hour * 3600)
    profile = PROFILES[kind]
    reading = (world.bmv_reading() if profile.charger is None
               else world.charger_reading(kind))
    return render(profile, reading, make_serial(kind))


@pytest.mark.parametrize("kind", sorted(EXPECTED_ORDER))
@pytest.mark.parametrize("hour", [3.0, 12.0])
def test_profile_blocks_have_exact_label_order_and_wire_formats(kind: str, hour: float) -> None:
    """Each profile sends its blocks in the real device's order, values as on the wire."""
    blocks = cycle(kind, hour)
    assert [[label for label, _ in b] for b in blocks] == EXPECTED_ORDER[kind]
    for label, value in (r for b in blocks for r in b):
        assert re.fullmatch(WIRE_FORMAT.get(label, INT), value), (label, value)


@pytest.mark.parametrize("kind", sorted(EXPECTED_ORDER))
def test_encoded_blocks_pass_checksum_and_decode_back(kind: str) -> None:
    """Encoded blocks have valid checksums and decode to the same fields."""
    blocks = cycle(kind)
    stream = b"".join(encode_block(b) for b in blocks)
    assert all(checksum_ok(encode_block(b)) for b in blocks)
    assert valid_blocks(stream) == [dict(b) for b in blocks]


def test_identity_fields_are_the_real_products() -> None:
    """PIDs and firmware fields match the documented products."""
    first = {kind: dict(cycle(kind)[0]) for kind in EXPECTED_ORDER}
    assert (first["bmv700"]["PID"], first["bmv700"]["FW"]) == ("0x203", "0308")
    assert first["mppt"]["PID"] == "0xA053"
    assert (first["mppt_fwe"]["PID"], first["mppt_fwe"]["FWE"]) == ("0xA06C", "316FF")


def test_serial_is_stable_and_plausible() -> None:
    """A device name always gets the same HQyywwxxxxx serial; names differ."""
    assert make_serial("mppt") == make_serial("mppt")
    assert make_serial("mppt") != make_serial("mppt_fwe")
    assert re.fullmatch(r"HQ(1[5-9]|2[0-3])(0[1-9]|[1-4]\d|5[0-2])[A-Z0-9]{5}", make_serial("x"))


def test_unsynchronised_bmv_sends_dashes() -> None:
    """Before its first full charge a BMV sends '---' for CE, SOC and TTG."""
    world = World(0.0, {}, utc_offset_s=0.0)
    world.synchronised = False
    main = dict(render(PROFILES["bmv700"], world.bmv_reading(), "")[0])
    assert main["CE"] == main["SOC"] == main["TTG"] == "---"


RECORDS = cycle("mppt")[0]
BLOCK = encode_block(RECORDS)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_corrupted_block_always_fails_checksum(seed: int) -> None:
    """A block corrupted on purpose never passes the checksum (and keeps its framing)."""
    out = apply_faults(BLOCK, FaultConfig(corrupt=1.0), random.Random(seed))
    assert out.corrupted and not checksum_ok(out.data)
    assert out.data.count(b"\r\n") == BLOCK.count(b"\r\n") and len(out.data) == len(BLOCK)
    assert valid_blocks(out.data) == []


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_hex_lines_after_checksum_and_mid_block_keep_the_block_valid(seed: int) -> None:
    """Async HEX lines (after the checksum byte, between records) are valid; block stays valid."""
    out = apply_faults(BLOCK, FaultConfig(hex=1.0, hex_mid=1.0), random.Random(seed))
    assert len(out.hex_lines) == 2 and not out.corrupted
    mid, after = out.hex_lines
    assert out.data.endswith(b"Checksum\t" + BLOCK[-1:] + after)
    at = out.data.index(mid)
    assert at > BLOCK.index(b"\t") and out.data[at + len(mid):].startswith(b"\r\n")
    assert text_of(out.data) == BLOCK and checksum_ok(out.data)
    assert valid_blocks(out.data) == [dict(RECORDS)]
    assert hex_lines(out.data) == [mid, after]


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_noise_precedes_the_block_and_spoils_it(seed: int) -> None:
    """Noise bytes (never ':') come before the block, which then fails its checksum."""
    out = apply_faults(BLOCK, FaultConfig(noise=1.0, noise_max=8), random.Random(seed))
    assert 1 <= out.noise <= 8 and out.data.endswith(BLOCK)
    noise = out.data[: out.noise]
    assert b":" not in noise and sum(noise) % 256 != 0
    assert not checksum_ok(out.data)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_split_writes_rejoin_to_the_block(seed: int) -> None:
    """A split block is written in 2..5 pieces that join back to the same bytes."""
    out = apply_faults(BLOCK, FaultConfig(split=1.0), random.Random(seed))
    assert 2 <= len(out.pieces) <= 5 and all(out.pieces)
    assert out.data == BLOCK


def test_no_faults_leave_the_block_untouched() -> None:
    """A zero FaultConfig writes the block as is, in one piece."""
    out = apply_faults(BLOCK, FaultConfig(), random.Random(0))
    assert out.pieces == [BLOCK] and not out.corrupted and out.noise == 0 and not out.hex_lines


def test_parse_faults_reads_cli_syntax() -> None:
    """``corrupt=0.05,hex=0.2,...`` sets exactly those fields."""
    cfg = parse_faults("corrupt=0.05, hex=0.2,noise=0.1,split=0.5,stall_seconds=4,noise_max=3")
    assert (cfg.corrupt, cfg.hex, cfg.noise, cfg.split) == (0.05, 0.2, 0.1, 0.5)
    assert (cfg.stall_seconds, cfg.noise_max, cfg.hex_mid) == (4.0, 3, 0.0)


@pytest.mark.parametrize("spec", ["zap=1", "corrupt", "corrupt=x", "hex=1.5", "stall_seconds=-1"])
def test_parse_faults_rejects_bad_specs(spec: str) -> None:
    """Unknown keys, missing values, non-numbers and out-of-range rates are refused."""
    with pytest.raises(ValueError):
        parse_faults(spec)
