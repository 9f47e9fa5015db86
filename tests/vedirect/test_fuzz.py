"""Property-based fuzzing: no byte sequence raises, and no bad block is ever emitted."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.shared import CAPTURES
from vemonitor.vedirect import Block, Decoder, decode_bytes
from vemonitor.vedirect.decoder import Limits
from vemonitor.vedirect.encoder import encode_block, encode_hex

_SAMPLE = (CAPTURES / "smartsolar_100_20_fw139.dump")
REAL = _SAMPLE.read_bytes()[:6000] if _SAMPLE.exists() else (
    encode_block([("PID", "0xA05F"), ("V", "12730"), ("CS", "3")]) * 30)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_blocks(stream: bytes, events: list[object]) -> None:
    """Every emitted block sums to 0 mod 256 over its own bytes minus HEX lines."""
    hex_ranges = [(e.start, e.end) for e in events if type(e).__name__ == "HexMessage"]
    for event in events:
        if isinstance(event, Block):
            inside = [r for r in hex_ranges if event.start <= r[0] and r[1] <= event.end]
            total = sum(stream[event.start:event.end]) - sum(sum(stream[a:b]) for a, b in inside)
            assert total % 256 == 0
            assert stream[event.end - 10:event.end - 1] == b"Checksum\t"


def _feed_split(stream: bytes, cuts: list[int]) -> list[object]:
    decoder = Decoder()
    events: list[object] = []
    edges = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in zip(edges, edges[1:]):
        events += decoder.feed(stream[a:b])
    return events + decoder.finish()


@FUZZ
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=20))
def test_random_bytes_never_raise(stream: bytes, cuts: list[int]) -> None:
    """Random bytes, randomly split: no exception, identical events for any split."""
    events = _feed_split(stream, cuts)
    assert events == decode_bytes(stream, len(stream) or 1)
    _check_blocks(stream, events)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), max_size=12),
       st.lists(st.integers(0, len(REAL)), max_size=30))
def test_mutated_real_stream_never_emits_a_bad_block(mutations: list[tuple[int, int]],
                                                     cuts: list[int]) -> None:
    """A real capture with bytes overwritten: no exception, every block still checks."""
    stream = bytearray(REAL)
    for at, value in mutations:
        stream[at] = value
    data = bytes(stream)
    events = _feed_split(data, cuts)
    assert events == decode_bytes(data, 4096) == decode_bytes(data, 4096, fast_path=False)
    _check_blocks(data, events)


@FUZZ
@given(st.lists(st.sampled_from([
    encode_block([("PID", "0x203"), ("V", "12000"), ("I", "-100")]),
    encode_block([("H1", "-100"), ("H2", "0"), ("H17", "6843")]),
    encode_hex(0xA, b"\x4f\xed\x00"), b":A00\n", b"\x00", b"\r\n", b"Checksum\t", b":",
    b"\xff\xfe", b"\t", b"V\t1\r\n",
    # HEX lines at the decoder's line cap and one byte over it (the fast path's bound)
    b":" + b"A" * Limits().hex_line + b"\n", b":" + b"A" * (Limits().hex_line + 1) + b"\n",
]), max_size=40), st.lists(st.integers(0, 4000), max_size=20))
def test_spliced_fragments_decode_identically_on_both_paths(pieces: list[bytes],
                                                            cuts: list[int]) -> None:
    """Streams spliced from blocks, HEX lines and separators: fast path == state machine."""
    data = b"".join(pieces)
    events = _feed_split(data, cuts)
    assert events == decode_bytes(data, 1, fast_path=False)
    _check_blocks(data, events)
