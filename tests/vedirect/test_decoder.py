"""Decoder behaviour on the protocol's hard cases (PROTOCOL.md), one case per test."""

from __future__ import annotations

import pytest

from vemonitor.vedirect import Block, Decoder, HexMessage, Rejected, decode_bytes
from vemonitor.vedirect.encoder import checksum_byte, encode_block, encode_hex
from vemonitor.vedirect.events import Event

MAIN = [("PID", "0x203"), ("V", "12800"), ("I", "-1500"), ("SOC", "950"), ("Alarm", "OFF")]


def _block_with_checksum(records: list[tuple[str, str]], target: int) -> bytes:
    """Return a valid block whose checksum byte is ``target``, by choosing a pad value."""
    alphabet = [c for c in range(0x21, 0x7F) if c != 0x3A]
    for first in alphabet:
        base = encode_block([*records, ("PAD", chr(first) + "!!")])
        # Raising the two '!' pad chars by d in total lowers the checksum by d.
        d = (base[-1] - target) & 0xFF
        second, third = 0x21 + min(d, 0x59), 0x21 + max(d - 0x59, 0)
        if third <= 0x7A:
            data = encode_block([*records, ("PAD", chr(first) + chr(second) + chr(third))])
            assert data[-1] == target
            return data
    raise AssertionError("no pad found")


def _kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ if not isinstance(e, Rejected) else e.reason for e in events]


@pytest.mark.parametrize("target", [0x3A, 0x0D, 0x0A, 0x09, 0x00, 0xFF, 0x80])
def test_any_checksum_byte_value_is_taken(target: int) -> None:
    """A checksum byte of ':' '\\r' '\\n' '\\t' NUL or >= 0x80 ends the block; the next block decodes."""
    first = _block_with_checksum(MAIN, target)
    stream = first + encode_block(MAIN) + encode_block(MAIN)
    for size in (1, 5, len(stream)):
        events = decode_bytes(stream, size)
        assert _kinds(events) == ["Block", "Block", "Block"], size
        assert events[0].end == len(first)


def test_hex_line_between_blocks_is_left_out_of_checksum() -> None:
    """An async HEX line right after a checksum byte is reported and the next block stays valid."""
    hexline = encode_hex(0xA, bytes([0x4F, 0xED, 0x00, 0x02]))
    stream = encode_block(MAIN) + hexline + encode_block(MAIN)
    events = decode_bytes(stream, 3)
    assert _kinds(events) == ["Block", "HexMessage", "Block"]
    assert isinstance(events[1], HexMessage) and events[1].valid


def test_hex_line_mid_block_and_mid_value_resumes_text_state() -> None:
    """A HEX line inside a block (between records, or inside a value) does not break the block."""
    block = encode_block(MAIN)
    hexline = encode_hex(0xA, b"\x01\x02")
    between = block.index(b"\r\nV\t")
    inside_value = block.index(b"12800") + 2
    for at in (between, inside_value):
        stream = block[:at] + hexline + block[at:]
        for size in (1, 4, len(stream)):
            events = decode_bytes(stream, size)
            assert _kinds(events) == ["HexMessage", "Block"], (at, size)
            assert isinstance(events[1], Block) and events[1].fields["V"] == "12800"


def test_invalid_hex_line_is_flagged_not_fatal() -> None:
    """A HEX line whose check byte is wrong is reported invalid; text decoding goes on."""
    stream = encode_block(MAIN) + b":A0102FF\n" + encode_block(MAIN)
    events = decode_bytes(stream)
    assert _kinds(events) == ["Block", "HexMessage", "Block"]
    assert isinstance(events[1], HexMessage) and not events[1].valid


def test_unterminated_hex_line_is_capped_and_resynchronised() -> None:
    """A ':' followed by 200 bytes without '\\n' is cut at the cap; later blocks decode."""
    noise = b":" + b"A" * 200
    stream = encode_block(MAIN) + noise + encode_block(MAIN) + encode_block(MAIN)
    events = decode_bytes(stream, 7)
    kinds = _kinds(events)
    assert kinds[0] == "Block" and "hex_oversize" in kinds
    assert kinds[-1] == "Block"
    assert decode_bytes(stream, 1) == events


def test_bad_checksum_is_rejected_and_next_block_recovers() -> None:
    """A flipped byte fails the checksum; the following block is valid again."""
    bad = bytearray(encode_block(MAIN))
    bad[10] ^= 0x01
    events = decode_bytes(bytes(bad) + encode_block(MAIN))
    assert _kinds(events) == ["checksum", "Block"]
    assert events[0].start == 0 and events[0].end == len(bad)


@pytest.mark.parametrize(("records", "reason"), [
    ([("PID", "0x203"), ("V", "12a00")], "bad_value"),
    ([("PID", "0x203"), ("V", "1\x0100")], "value_chars"),
    ([("PI-D", "0x203")], "label_chars"),
    ([("PID", "0x203"), ("V", "1"), ("V", "2")], "framing"),
    ([("PID", "0x203"), ("LONGLABELLONGLABEL", "1")], "label_oversize"),
    ([("PID", "0x203"), ("X", "9" * 60)], "value_oversize"),
    ([(f"L{i}", "1") for i in range(45)], "too_many_records"),
    ([], "empty"),
])
def test_blocks_with_valid_checksum_but_bad_content_are_rejected(
        records: list[tuple[str, str]], reason: str) -> None:
    """Content checks back up the weak checksum: each bad content has its reason."""
    stream = encode_block(records) + encode_block(MAIN)
    for size in (1, len(stream)):
        assert _kinds(decode_bytes(stream, size)) == [reason, "Block"]


def test_stripped_carriage_returns_give_framing_errors() -> None:
    """Blocks with '\\n' only never pass, and the reader recovers when '\\r\\n' comes back."""
    stripped = encode_block(MAIN).replace(b"\r", b"")
    events = decode_bytes(stripped * 3 + encode_block(MAIN) + encode_block(MAIN))
    assert _kinds(events) == ["framing", "framing", "framing", "Block", "Block"]


def test_stream_starting_mid_block_rejects_the_partial_first_block() -> None:
    """Opening a port mid-block: the first (partial) block fails, the next is valid."""
    stream = encode_block(MAIN)[17:] + encode_block(MAIN)
    assert _kinds(decode_bytes(stream)) == ["framing", "Block"]


def test_gap_inside_a_block_resynchronises() -> None:
    """A pause longer than the gap timeout drops the partial block; the next block decodes."""
    decoder = Decoder(gap_timeout=0.5)
    partial = encode_block(MAIN)[:30]
    assert decoder.feed(partial, now=100.0) == []
    events = decoder.feed(encode_block(MAIN), now=101.0)
    assert _kinds(events) == ["gap_timeout", "Block"]
    assert events[0].start == 0 and events[0].end == 30


def test_empty_feeds_do_not_hide_a_gap() -> None:
    """The gap is the time between bytes. The reader also feeds nothing when it wakes
    for another reason (to send a HEX request, every few ms while a controller or a
    poller asks; a poll timeout): those wake-ups must not restart the gap clock, or a
    block the device abandoned half-way merges with the next one and both are lost
    (seen in the HEX soak: one BMV block lost per minute with requests waking the reader)."""
    decoder = Decoder(gap_timeout=0.5)
    assert decoder.feed(encode_block(MAIN)[:30], now=100.0) == []
    events: list[Event] = []
    for tick in range(1, 10):  # woken every 0.1 s, no byte: the gap shows at 100.6
        events += decoder.feed(b"", now=100.0 + tick * 0.1)
    assert _kinds(events) == ["gap_timeout"]
    assert _kinds(decoder.feed(encode_block(MAIN), now=101.0)) == ["Block"]


def test_short_pauses_inside_a_block_do_not_resynchronise() -> None:
    """Bytes arriving 0.1 s apart keep building the same block."""
    decoder = Decoder(gap_timeout=0.5)
    block = encode_block(MAIN)
    events: list[Event] = []
    for i, byte in enumerate(block):
        events += decoder.feed(bytes([byte]), now=100.0 + i * 0.1)
    assert _kinds(events) == ["Block"]


def test_pure_noise_is_reported_in_bounded_runs() -> None:
    """Megabytes without a checksum give a bounded number of rejections and little memory."""
    decoder = Decoder()
    events: list[Event] = []
    for _ in range(256):
        events += decoder.feed(b"\xaa\x55" * 2048)
    assert all(isinstance(e, Rejected) for e in events)
    assert 100 < len(events) <= (1 << 20) // decoder.limits.discard_run + 1
    assert decoder.pending < decoder.limits.discard_run


def test_truncated_tail_is_reported_by_finish() -> None:
    """A partial block at the end of a file is reported as truncated, not as valid."""
    decoder = Decoder()
    assert _kinds(decoder.feed(encode_block(MAIN) + b"\r\nPID\t0x2")) == ["Block"]
    assert _kinds(decoder.finish()) == ["truncated"]
    assert decoder.finish() == []


def test_checksum_helper_never_yields_256() -> None:
    """The checksum is (-sum) & 0xFF: a payload already summing to 0 gets 0, not 256."""
    assert checksum_byte(b"") == 0
    assert checksum_byte(bytes([0x80, 0x80])) == 0
    assert checksum_byte(b"\x01") == 0xFF


def test_offsets_are_absolute_across_feeds() -> None:
    """Block offsets count every byte fed since the decoder was created."""
    decoder = Decoder()
    first = encode_block(MAIN)
    decoder.feed(first)
    events = decoder.feed(encode_block(MAIN))
    assert isinstance(events[0], Block)
    assert (events[0].start, events[0].end) == (len(first), 2 * len(first))
    assert decoder.offset == 2 * len(first)


def test_tight_limits_apply_equally_on_both_paths() -> None:
    """With a value cap below the field patterns' lengths, both paths reject the same block."""
    from vemonitor.vedirect import Limits
    stream = encode_block([("PID", "0x203"), ("V", "1234567890")]) + encode_block(MAIN)
    limits = Limits(value=8)
    for fast in (True, False):
        decoder = Decoder(limits=limits, fast_path=fast)
        assert _kinds(decoder.feed(stream) + decoder.finish()) == ["value_oversize", "Block"]
