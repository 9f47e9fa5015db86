"""Events produced by the VE.Direct decoder.

Events are plain slotted dataclasses (not frozen: a frozen one costs a third of
the decoder's time per block); treat them as immutable.

Offsets are absolute byte offsets in the stream fed to one decoder since it was
created (``start`` inclusive, ``end`` exclusive), so a user can find the exact
bytes in a capture file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Block:
    """One checksum-valid text block: labels in wire order mapped to raw values.

    ``out_of_range`` holds the (label, raw value) pairs the decoder left out of
    ``fields`` because the value is outside its label's physical range
    (``fields.BOUNDS``): one impossible reading costs that reading, not the block.
    """

    fields: dict[str, str]
    start: int
    end: int
    out_of_range: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class HexMessage:
    """One HEX line (``:`` ... ``\\n``) found in the text stream.

    ``raw`` is the line without the leading ``:`` and the trailing ``\\n``.
    ``valid`` is true when it is well formed and command + bytes sum to 0x55.
    """

    raw: bytes
    valid: bool
    start: int
    end: int

    @property
    def command(self) -> int | None:
        """Return the command nibble, or None when the line does not start with a hex digit."""
        if not self.raw:
            return None
        try:
            return int(self.raw[:1], 16)
        except ValueError:
            return None


@dataclass(slots=True)
class Rejected:
    """Bytes discarded by the decoder, with the reason (see ``REJECT_REASONS``)."""

    reason: str
    start: int
    end: int
    detail: str = ""


Event = Block | HexMessage | Rejected

# Every reason a decoder can give, with what it means. Counters and docs use this.
REJECT_REASONS: dict[str, str] = {
    "checksum": "block bytes do not sum to 0 mod 256",
    "framing": "a record is not '\\r\\n' LABEL '\\t' VALUE",
    "label_chars": "a label has a byte outside [A-Za-z0-9_#]",
    "label_oversize": "a label is longer than the protocol allows",
    "value_chars": "a value has a control, NUL or non-ASCII byte",
    "value_oversize": "a value is longer than the protocol allows",
    "bad_value": "a value does not parse for its known field",
    "too_many_records": "a block has more records than the protocol allows",
    "block_oversize": "no checksum within the largest block size",
    "empty": "a block with no record before its checksum",
    "gap_timeout": "the stream paused inside a block",
    "hex_oversize": "a HEX line without '\\n' within the size cap",
}
