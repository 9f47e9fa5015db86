"""Incremental VE.Direct text-protocol decoder.

Feed it byte chunks of any size; it returns events (:class:`Block`,
:class:`HexMessage`, :class:`Rejected`). The results do not depend on how the
stream is chunked, and no byte sequence can make it raise.

How it follows PROTOCOL.md:

* A block is every text byte from the byte after the previous checksum byte up
  to and including its own checksum byte; it is valid when they sum to 0 mod 256.
* After ``Checksum\\t`` exactly one byte is taken, whatever its value.
* A ``:`` anywhere else starts a HEX line, read up to ``\\n`` and left out of the
  text checksum; the text state resumes after it.
* On a framing or size error the rest of the block is skipped up to the next
  ``Checksum\\t`` + byte (the only safe boundary) and reported once.
* After a pause longer than ``gap_timeout`` inside a block, the partial block is
  reported and the next byte is taken as the start of a new block.
* A partial block at the very end of a stream is reported by :meth:`Decoder.finish`
  as ``truncated`` (a reason of its own, not a protocol error).

Which check costs what (docs/vedirect.md, "Which check is which"):

* The whole block is rejected only when the evidence concerns the whole block:
  its checksum, its framing (a record that is not ``\r\n LABEL \t VALUE``, a label
  twice, sizes), bytes that are not text, or a known field whose value does not
  parse as its type (``bad_value``: the bytes are not what the device meant to
  send, so no field of the block can be trusted).
* A value that parses but lies outside its label's physical range
  (``fields.BOUNDS``) costs that field only: it is left out of ``Block.fields``
  and listed in ``Block.out_of_range``; the block's other fields are kept.

Two paths, one behaviour: clean blocks that sit whole in a chunk are matched by a
single regular expression (the fast path); everything else goes through a
token-level state machine. The fast path only accepts what the state machine
would accept the same way; tests check both give identical events.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from dataclasses import dataclass

from vemonitor.vedirect.events import Block, Event, HexMessage, Rejected
from vemonitor.vedirect.fields import (
    BOUNDS,
    FIELD_BY_LABEL,
    MAX_PATTERN_LENGTH,
    NOT_AVAILABLE,
    VALUE_PATTERNS,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Size caps; PROTOCOL.md documents label <= 8, value <= 32, 22 records, ~200 bytes.

    The caps are set about twice the documented sizes so new firmware labels pass,
    while noise is still cut off quickly.
    """

    label: int = 16
    value: int = 48
    records: int = 40
    block: int = 1024
    hex_line: int = 100
    discard_run: int = 4096


# Text states of the state machine.
_CR, _LF, _LABEL, _VALUE, _CHECKSUM, _DISCARD, _DISCARD_CS = range(7)

_CHECKSUM_LABEL = b"Checksum"
_CHECKSUM_TAG = b"Checksum\t"
_LABEL_RUN = re.compile(rb"[^\t:\r\n]*")
_VALUE_RUN = re.compile(rb"[^\r\n:]*")
_HEX_RUN = re.compile(rb"[^\n]*")
_LABEL_OK = re.compile(rb"[A-Za-z0-9_#]+")
_VALUE_OK = re.compile(rb"[\x20-\x7e]*")
_HEX_OK = re.compile(rb"[0-9A-Fa-f](?:[0-9A-Fa-f]{2})+")


def _fast_block_re(limits: Limits) -> re.Pattern[bytes]:
    """Return the regex matching one clean block (records, then the checksum byte)."""
    record = (
        rb"\r\n(?!Checksum\t)[A-Za-z0-9_#]{1,%d}\t[\x20-\x39\x3b-\x7e]{0,%d}"
        % (limits.label, limits.value)
    )
    return re.compile(rb"(?:%s)+\r\nChecksum\t." % record, re.DOTALL)


_CLEAN_VALUE = rb"[\x20-\x39\x3b-\x7e]"
_VALUE_PATTERNS_STR = {label.decode(): re.compile(p.pattern.decode()) for label, p in
                       VALUE_PATTERNS.items()}
_SHAPE_CACHE = 8  # block layouts remembered per decoder (a BMV has 2, an MPPT 1 or 2)


def _wire_bounds() -> dict[str, tuple[int, int]]:
    """Return the physical ranges (fields.BOUNDS) as wire integers, for decimal labels."""
    out: dict[str, tuple[int, int]] = {}
    for label, (low, high) in BOUNDS.items():
        spec = FIELD_BY_LABEL[label]
        if spec.kind in ("int", "scaled"):
            out[label] = (math.floor(low / spec.scale + 1e-9), math.ceil(high / spec.scale - 1e-9))
    return out


WIRE_BOUNDS: dict[str, tuple[int, int]] = _wire_bounds()


def _digits_up_to(limit: int) -> str:
    """Return a regex of the digit strings of the integers 0..``limit`` (``limit`` >= 0).

    Built digit by digit (for 365: ``365``, one or two digits, ``[0-2]dd``,
    ``3[0-5]d``, ``36[0-4]``), so the usual values of a label never miss it.
    """
    text = str(limit)
    width = len(text)
    alternatives = []  # the shorter numbers first: they are the usual readings
    if width > 1:
        alternatives.append("[0-9]{1,%d}" % (width - 1))
    for k, digit in enumerate(text):
        if digit == "0":
            continue
        below = "0" if digit == "1" else "[0-%d]" % (int(digit) - 1)
        rest = width - 1 - k
        alternatives.append(text[:k] + below + ("[0-9]{%d}" % rest if rest else ""))
    alternatives.append(text)
    return "(?:%s)" % "|".join(alternatives)


def _sure_in_range(low: int, high: int) -> str:
    """Return a regex matching wire values within [low, high], or "not available".

    A value it misses (a value with leading zeros, or out of range) takes the exact
    check of :func:`split_out_of_range`. Put in a layout's regex, it makes the
    range check of a usual block cost nothing beyond the match the fast path does
    anyway.
    """
    parts = []  # numbers first, "not available" last: the usual readings match sooner
    if low <= 0 <= high:
        parts.append(_digits_up_to(high))
        if low < 0:
            parts.append("-" + _digits_up_to(-low))
    parts += [re.escape(value) for value in sorted(NOT_AVAILABLE)]
    return "(?:%s)" % "|".join(parts)


_SURE_PATTERNS = {label: _sure_in_range(*limit) for label, limit in WIRE_BOUNDS.items()}


def split_out_of_range(fields: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Remove the fields outside their physical range from ``fields``; return them.

    Every known field must already match its wire pattern (``bad_value`` is a
    whole-block matter, checked first), so a bounded value is an integer or
    "not available".
    """
    dropped = tuple(
        (label, value) for label, value in fields.items()
        if (limit := WIRE_BOUNDS.get(label)) is not None and value not in NOT_AVAILABLE
        and not limit[0] <= int(value) <= limit[1])
    for label, _ in dropped:
        del fields[label]
    return dropped


@functools.lru_cache(maxsize=64)  # a new decoder (a reopened port) relearns known layouts
def _shape_re(labels: tuple[str, ...], limits: Limits) -> re.Pattern[str]:
    """Return a regex for a clean block with exactly these labels, capturing each value.

    A bounded label's value must also be surely in range (``_SURE_PATTERNS``), any
    other known label's must parse as its type. When every label is an identifier,
    each group is named after its label, so ``groupdict()`` gives the block's fields
    in one call. It runs on the block decoded as latin-1 (every byte maps to one
    character).
    """
    clean = _CLEAN_VALUE.decode("ascii")
    named = all(label.isidentifier() for label in labels)
    parts = []
    for label in labels:
        known = _VALUE_PATTERNS_STR.get(label)
        pattern = _SURE_PATTERNS.get(label, known.pattern if known is not None else None)
        ahead = ""
        if pattern is None:
            pattern = r"%s{0,%d}" % (clean, limits.value)
        elif limits.value < MAX_PATTERN_LENGTH:  # tighter limits than the patterns
            ahead = r"(?=%s{0,%d}\r)" % (clean, limits.value)
        group = "(?P<%s>%s)" % (label, pattern) if named else "(%s)" % pattern
        parts.append(r"\r\n" + re.escape(label) + r"\t" + ahead + group)
    return re.compile("".join(parts) + r"\r\nChecksum\t.", re.DOTALL)


@dataclass(slots=True)
class _Shape:
    """A block layout seen before: its labels, its regex, and the layout that followed it."""

    labels: tuple[str, ...]
    regex: re.Pattern[str]
    next: _Shape | None = None
    named: bool = False  # groups named after the labels: groupdict() gives the fields

    def fields(self, match: re.Match[str]) -> dict[str, str]:
        """Return the block's fields from a match of this layout's regex."""
        return match.groupdict() if self.named else dict(zip(self.labels, match.groups()))


def _values_ok(fields: dict[str, str]) -> bool:
    """Return True when every known field's value matches its wire pattern."""
    for label, value in fields.items():
        pattern = _VALUE_PATTERNS_STR.get(label)
        if pattern is not None and pattern.fullmatch(value) is None:
            return False
    return True


class Decoder:
    """Turn a VE.Direct byte stream into Block / HexMessage / Rejected events."""

    def __init__(self, *, gap_timeout: float = 0.5, limits: Limits | None = None,
                 fast_path: bool = True) -> None:
        self.limits = limits or Limits()
        self.gap_timeout = gap_timeout
        self._fast = _fast_block_re(self.limits) if fast_path else None
        self._offset = 0  # absolute offset of the next byte to consume
        self._last_time: float | None = None
        self._hex: bytearray | None = None  # HEX line in progress
        self._hex_start = 0
        self._hex_return = _CR
        self._tail = b""  # last text bytes while discarding, to find 'Checksum\t' across chunks
        self._stash = b""  # start of a block held back until it can be matched whole
        # Layouts of the valid blocks seen, each with its regex (the fast path); the
        # layout of the last fast block, and the one expected next (devices repeat
        # their layouts in a fixed order: a BMV alternates main and history).
        self._shapes: list[_Shape] = []
        self._last: _Shape | None = None
        self._expect: _Shape | None = None
        self._text_of: bytes | None = None  # the chunk self._latin1_text was decoded from
        self._latin1_text = ""
        self._reset_block(_CR)

    # ----------------------------------------------------------------- public API
    @property
    def offset(self) -> int:
        """Return the number of bytes fed so far."""
        return self._offset

    @property
    def pending(self) -> int:
        """Return how many bytes of an unfinished block or HEX line are held."""
        held = self._offset - self._block_start if self._in_block() else 0
        return held

    @property
    def text_pending(self) -> int:
        """Return how many bytes of an unfinished TEXT block are held (0 in a HEX line)."""
        return 0 if self._hex is not None else self._offset - self._block_start

    def feed(self, data: bytes, now: float | None = None) -> list[Event]:
        """Consume ``data`` (received at time ``now``, if known) and return the events it completes."""
        events: list[Event] = []
        if now is not None:
            if (self._last_time is not None and now - self._last_time > self.gap_timeout
                    and self._in_block()):
                self._drain_stash(events)
                self._reject_partial(events, self._error_reason or "gap_timeout")
            if data:  # the gap is the time between bytes: an empty feed (a reader woken
                self._last_time = now  # to send HEX, a poll timeout) must not restart it
        if data:
            self._consume(bytes(data), events)
        return events

    def finish(self) -> list[Event]:
        """Report a trailing partial block as ``truncated`` and reset (end of a file)."""
        events: list[Event] = []
        self._drain_stash(events)
        if self._in_block():
            self._reject_partial(events, "truncated")
        return events

    # ------------------------------------------------------------------ internals
    def _reset_block(self, state: int) -> None:
        """Start a new block at the current offset in ``state``."""
        self._state = state
        self._block_start = self._offset
        self._sum = 0
        self._size = 0
        self._label = b""
        self._value = b""
        self._records: list[tuple[bytes, bytes]] = []
        self._error_reason: str | None = None
        self._error_detail = ""
        self._tail = b""

    def _in_block(self) -> bool:
        """Return True when bytes of an unfinished block or HEX line are held."""
        return self._hex is not None or self._offset > self._block_start

    def _reject_partial(self, events: list[Event], reason: str) -> None:
        """Report the unfinished block (and HEX line) and restart at a block boundary."""
        detail = self._error_detail if reason == self._error_reason else ""
        events.append(Rejected(reason, self._block_start, self._offset, detail))
        self._hex = None
        self._reset_block(_CR)

    def _fail(self, reason: str, detail: str) -> None:
        """Record the block's first error and skip to its checksum."""
        if self._error_reason is None:
            self._error_reason = reason
            self._error_detail = detail
        self._state = _DISCARD

    def _consume(self, data: bytes, events: list[Event], fast: bool = True) -> None:
        """Run the state machine over the held-back bytes plus ``data``."""
        base = self._offset - len(self._stash)
        if self._stash:
            data = self._stash + data
            self._stash = b""
        i = 0
        n = len(data)
        use_fast = fast and self._fast is not None
        while i < n:
            self._offset = base + i
            if self._hex is not None:
                i = self._on_hex(data, i, events)
            elif use_fast and self._state == _CR and self._size == 0:
                i = self._on_block_start(data, i, events)
            else:
                i = _HANDLERS[self._state](self, data, i, events)
        self._offset = base + n
        self._text_of, self._latin1_text = None, ""  # keep no reference to the chunk

    def _drain_stash(self, events: list[Event]) -> None:
        """Run held-back bytes through the state machine (before a gap or the end)."""
        if self._stash:
            self._consume(b"", events, fast=False)

    def _text(self, data: bytes, i: int, j: int) -> None:
        """Account text bytes data[i:j] to the block checksum and size."""
        self._sum += sum(data[i:j])
        self._size += j - i

    def _start_hex(self, i: int) -> int:
        """Begin a HEX line at data[i] == ':'."""
        self._hex = bytearray()
        self._hex_start = self._offset
        self._hex_return = self._state
        return i + 1

    def _on_hex(self, data: bytes, i: int, events: list[Event]) -> int:
        """Collect a HEX line up to '\\n' (or the size cap)."""
        assert self._hex is not None
        # Never take more than cap + 1 bytes, so the cut falls at the same byte
        # whatever the chunking.
        limit = min(len(data), i + self.limits.hex_line + 1 - len(self._hex))
        m = _HEX_RUN.match(data, i, limit)
        j = m.end() if m else i
        self._hex += data[i:j]
        if len(self._hex) > self.limits.hex_line:
            self._offset += j - i
            events.append(Rejected("hex_oversize", self._hex_start, self._offset,
                                   "no newline within %d bytes" % self.limits.hex_line))
            self._hex = None
            # The ':' was noise, not HEX: we are out of sync until the next checksum.
            self._state = self._hex_return
            if self._state == _CR and self._size == 0:
                self._block_start = self._offset
            self._fail("framing", "unterminated HEX line at offset %d" % self._hex_start)
            return j
        if j >= limit:
            return j
        if j >= len(data):
            return j
        raw = bytes(self._hex)
        self._hex = None
        events.append(HexMessage(raw, _hex_valid(raw), self._hex_start, self._offset + (j - i) + 1))
        self._state = self._hex_return
        if self._state == _CR and self._size == 0:
            # A HEX line between blocks belongs to neither: the next block starts after it.
            self._block_start = self._offset + (j - i) + 1
        return j + 1

    def _on_block_start(self, data: bytes, i: int, events: list[Event]) -> int:
        """Match whole clean blocks at once; hold back an incomplete one; else use the state machine.

        This is only an accelerator: a block is taken here only when the state
        machine would accept it too, the same way (same fields, same fields left
        out of range), and anything unusual (a HEX line, a bad checksum, a bad
        value) is handed to the state machine from the same byte.

        Its speed comes from doing per block only what must be done per block
        (benchmarks/bench_decoder.py, docs/vedirect.md "Speed"): one ``match`` of
        the layout expected next (it finds the checksum byte and checks every
        value's type and range), and the byte sum by ``adler32`` over a
        memoryview (no copy). Anything else goes through :meth:`_take_block`.
        """
        n = len(data)
        base = self._offset - i
        if data[i] == 0x3A and (after := self._hex_line(data, i, base, events)) > i:
            if after == n:  # a reply alone (the usual HEX wake-up): no text to match
                self._offset = base + n
                return n
            i = after
        limit = min(self.limits.block, 256)  # the expected-layout step sums by adler32
        text = self._latin1(data)
        view = memoryview(data)
        adler32 = zlib.adler32
        append = events.append
        # The per-block state lives in locals here (this loop is the decoder's hot path)
        # and is written back before anything else looks at it.
        expect, last, start = self._expect, self._last, self._block_start
        while i < n:
            # The usual case: the layout expected next matches here, and its match
            # ends at the checksum byte, so no search for the tag is needed.
            if expect is not None and (match := expect.regex.match(text, i)) is not None:
                end = match.end()
                # adler32's low half is 1 + the byte sum mod 65521 (< 65521 for 256 bytes).
                if end - i <= limit and not ((adler32(view[i:end]) & 0xFFFF) - 1) & 0xFF:
                    if last is not expect:
                        if last is not None:
                            last.next = expect
                        last = expect
                    expect = expect.next
                    fields = (match.groupdict() if last.named
                              else dict(zip(last.labels, match.groups())))
                    append(Block(fields, start, base + end))
                    start = base + end
                    i = end
                    continue
            self._expect, self._last, self._block_start = expect, last, start
            after = self._take_block(data, text, i, base, events)
            if after < 0:  # not a clean block: the state machine takes it from here
                self._offset = base + i
                return _on_cr(self, data, i, events)
            i = after
            expect, last, start = self._expect, self._last, self._block_start
        self._expect, self._last, self._block_start = expect, last, start
        self._offset = base + i
        return n

    def _hex_line(self, data: bytes, i: int, base: int, events: list[Event]) -> int:
        """Take a whole HEX line at data[i] == ':' between blocks; return the index after it.

        Return ``i`` when its ``\\n`` is not within the line cap in ``data`` (a line cut
        by the chunk, or an oversize one): the state machine takes it from the ':', byte
        by byte, with the same result. This is the path of every HEX reply and async
        line, so it does only what :meth:`_on_hex` would: one event, the next block
        starting after the line.
        """
        end = data.find(b"\n", i + 1, i + 2 + self.limits.hex_line)
        if end == -1:
            return i
        raw = data[i + 1:end]
        events.append(HexMessage(raw, _hex_valid(raw), base + i, base + end + 1))
        self._block_start = base + end + 1
        return end + 1

    def _take_block(self, data: bytes, text: str, i: int, base: int,
                    events: list[Event]) -> int:
        """Take one clean block at data[i] the general way; return the index after it.

        Return ``len(data)`` when an incomplete block is held back until more bytes
        come, and -1 when data[i:] is not a clean block (the state machine takes it).
        """
        n = len(data)
        limit = self.limits.block
        tag = data.find(b"\r\nChecksum\t", i, i + limit)
        end = tag + 12
        if tag == -1 or end > n:
            # Incomplete so far: hold it back, unless it already needs the state machine.
            if n - i < limit and data.find(b":", i, tag if tag != -1 else n) == -1:
                self._stash = data[i:]
                return n
            return -1
        size = end - i
        if size > limit:
            return -1
        if size > 256:
            if sum(data[i:end]) & 0xFF:
                return -1
        elif ((zlib.adler32(memoryview(data)[i:end]) & 0xFFFF) - 1) & 0xFF:
            return -1
        shape, match = self._find_shape(text, i, end)
        dropped: tuple[tuple[str, str], ...] = ()
        if shape is not None and match is not None:
            fields = shape.fields(match)
        else:
            learned = self._new_shape_fields(data, i, tag, end)
            if learned is None:
                return -1
            shape, fields = learned
            dropped = split_out_of_range(fields)
        if self._last is not None:
            self._last.next = shape
        self._last, self._expect = shape, shape.next
        events.append(Block(fields, self._block_start, base + end, dropped))
        self._block_start = base + end
        return end

    def _latin1(self, data: bytes) -> str:
        """Return ``data`` decoded as latin-1 (indexes stay the same), once per chunk."""
        if self._text_of is not data:
            self._text_of, self._latin1_text = data, data.decode("latin-1")
        return self._latin1_text

    def _find_shape(self, text: str, i: int, end: int) -> tuple[_Shape | None, re.Match[str] | None]:
        """Return the remembered layout text[i:end] matches, with the match (or None, None)."""
        for shape in self._shapes:
            match = shape.regex.fullmatch(text, i, end)
            if match is not None:
                return shape, match
        return None, None

    def _new_shape_fields(self, data: bytes, i: int, tag: int,
                          end: int) -> tuple[_Shape, dict[str, str]] | None:
        """Return the layout and fields of a clean block whose values parse, else None.

        A new layout is learned. A known layout lands here too when a value is not
        surely in range (the caller checks those exactly).
        """
        assert self._fast is not None
        if self._fast.fullmatch(data, i, end) is None:
            return None
        # Clean block: labels and values hold no '\t' or '\r\n', so splitting is exact.
        flat = data[i + 2:tag].decode("ascii").replace("\r\n", "\t").split("\t")
        fields = dict(zip(flat[0::2], flat[1::2]))
        if (len(fields) * 2 != len(flat) or len(fields) > self.limits.records
                or not _values_ok(fields)):
            return None
        labels = tuple(fields)
        for shape in self._shapes:
            if shape.labels == labels:
                return shape, fields
        regex = _shape_re(labels, self.limits)
        shape = _Shape(labels, regex, named=bool(regex.groupindex))
        self._shapes.insert(0, shape)
        del self._shapes[_SHAPE_CACHE:]
        return shape, fields

    def _complete(self, events: list[Event]) -> None:
        """Judge the finished block (offset is just past its checksum byte) and emit it."""
        reason, detail = self._error_reason, self._error_detail
        if reason is None:
            reason, detail = _judge(self._records, self._sum)
        if reason is None:
            fields = {label.decode("ascii"): value.decode("ascii") for label, value in self._records}
            dropped = split_out_of_range(fields)
            events.append(Block(fields, self._block_start, self._offset, dropped))
        else:
            events.append(Rejected(reason, self._block_start, self._offset, detail))
        self._reset_block(_CR)


def _judge(records: list[tuple[bytes, bytes]], total: int) -> tuple[str | None, str]:
    """Return the reason a structurally complete block is invalid, or (None, '')."""
    if not records:
        return "empty", ""
    if total & 0xFF:
        return "checksum", "sum is 0x%02X" % (total & 0xFF)
    seen: set[bytes] = set()
    for label, value in records:
        if _LABEL_OK.fullmatch(label) is None:
            return "label_chars", "label %r" % label
        if label in seen:
            return "framing", "label %s twice" % label.decode("ascii")
        seen.add(label)
        if _VALUE_OK.fullmatch(value) is None:
            return "value_chars", "value of %s: %r" % (label.decode("ascii"), value)
        pattern = VALUE_PATTERNS.get(label)
        if pattern is not None and pattern.fullmatch(value) is None:
            return "bad_value", "%s=%s" % (label.decode("ascii"), value.decode("ascii"))
    return None, ""


@functools.lru_cache(maxsize=256)  # a device repeats its lines (hex.parse_response)
def _hex_valid(raw: bytes) -> bool:
    """Return True when a HEX line body is well formed and sums to 0x55."""
    if _HEX_OK.fullmatch(raw) is None:
        return False
    total = int(raw[:1], 16) + sum(bytes.fromhex(raw[1:].decode("ascii")))
    return total & 0xFF == 0x55


# ----------------------------------------------------------------- state handlers
# Each handler consumes bytes from data[i:] in state ``self._state`` and returns the
# index of the first byte it did not consume. ``self._offset`` is base + i on entry.

def _on_cr(self: Decoder, data: bytes, i: int, events: list[Event]) -> int:
    """Expect the '\\r' that starts a record."""
    byte = data[i]
    if byte == 0x3A:  # ':'
        return self._start_hex(i)
    self._text(data, i, i + 1)
    if byte == 0x0D:
        self._state = _LF
    else:
        self._fail("framing", "expected '\\r' at offset %d, got 0x%02X" % (self._offset, byte))
    return i + 1


def _on_lf(self: Decoder, data: bytes, i: int, events: list[Event]) -> int:
    """Expect the '\\n' after '\\r'."""
    byte = data[i]
    if byte == 0x3A:
        return self._start_hex(i)
    self._text(data, i, i + 1)
    if byte == 0x0A:
        self._state = _LABEL
        self._label = b""
    else:
        self._fail("framing", "expected '\\n' at offset %d, got 0x%02X" % (self._offset, byte))
    return i + 1


def _on_label(self: Decoder, data: bytes, i: int, events: list[Event]) -> int:
    """Collect label bytes up to '\\t'."""
    m = _LABEL_RUN.match(data, i, min(len(data), i + self.limits.label + 1 - len(self._label)))
    j = m.end() if m else i
    if j > i:
        self._text(data, i, j)
        self._label += data[i:j]
        if len(self._label) > self.limits.label:
            self._fail("label_oversize", "label longer than %d bytes" % self.limits.label)
            return j
    if j >= len(data):
        return j
    byte = data[j]
    if byte == 0x3A:
        self._offset += j - i
        return self._start_hex(j)
    self._text(data, j, j + 1)
    if byte == 0x09:
        self._state = _CHECKSUM if self._label == _CHECKSUM_LABEL else _VALUE
        self._value = b""
    else:
        self._fail("framing", "line break inside label at offset %d" % (self._offset + j - i))
    return j + 1


def _on_value(self: Decoder, data: bytes, i: int, events: list[Event]) -> int:
    """Collect value bytes up to the '\\r' that starts the next record."""
    m = _VALUE_RUN.match(data, i, min(len(data), i + self.limits.value + 1 - len(self._value)))
    j = m.end() if m else i
    if j > i:
        self._text(data, i, j)
        self._value += data[i:j]
        if len(self._value) > self.limits.value:
            self._fail("value_oversize", "value longer than %d bytes" % self.limits.value)
            return j
    if j >= len(data):
        return j
    byte = data[j]
    if byte == 0x3A:
        self._offset += j - i
        return self._start_hex(j)
    self._text(data, j, j + 1)
    if byte == 0x0D:
        self._records.append((self._label, self._value))
        self._state = _LF
        if len(self._records) > self.limits.records:
            self._fail("too_many_records", "more than %d records" % self.limits.records)
        elif self._size > self.limits.block:
            self._fail("block_oversize", "no checksum within %d bytes" % self.limits.block)
    else:
        self._fail("framing", "'\\n' without '\\r' at offset %d" % (self._offset + j - i))
    return j + 1


def _on_checksum(self: Decoder, data: bytes, i: int, events: list[Event]) -> int:
    """Take the checksum byte, whatever its value, and finish the block."""
    self._text(data, i, i + 1)
    self._offset += 1
    self._complete(events)
    return i + 1


def _on_discard(self: Decoder, data: bytes, i: int, events: list[Event]) -> int:
    """Skip text up to the next 'Checksum\\t' (HEX lines are still recognised)."""
    room = self.limits.discard_run - self._size
    limit = min(len(data), i + max(room, 0))
    colon = data.find(b":", i, limit)
    stop = colon if colon != -1 else limit
    window = self._tail + data[i:stop]
    k = window.find(_CHECKSUM_TAG)
    if k != -1:
        j = i + k + len(_CHECKSUM_TAG) - len(self._tail)
        self._size += j - i
        self._tail = b""
        self._state = _DISCARD_CS
        return j
    self._size += stop - i
    self._tail = window[-(len(_CHECKSUM_TAG) - 1):]
    if self._size >= self.limits.discard_run:
        # Pure noise: report it in bounded runs so memory and counters stay sane.
        self._offset += stop - i
        reason = self._error_reason or "block_oversize"
        events.append(Rejected(reason, self._block_start, self._offset, self._error_detail))
        self._reset_block(_DISCARD)
        self._error_reason = "block_oversize"
        return stop
    if colon != -1:
        self._offset += stop - i
        return self._start_hex(stop)
    return stop


def _on_discard_cs(self: Decoder, data: bytes, i: int, events: list[Event]) -> int:
    """Take the checksum byte of a skipped block and report the block."""
    self._offset += 1
    events.append(Rejected(self._error_reason or "framing", self._block_start, self._offset,
                           self._error_detail))
    self._reset_block(_CR)
    return i + 1


_HANDLERS = {
    _CR: _on_cr,
    _LF: _on_lf,
    _LABEL: _on_label,
    _VALUE: _on_value,
    _CHECKSUM: _on_checksum,
    _DISCARD: _on_discard,
    _DISCARD_CS: _on_discard_cs,
}


def decode_bytes(data: bytes, chunk_size: int = 4096, *, fast_path: bool = True) -> list[Event]:
    """Decode a whole byte string in chunks of ``chunk_size``, including the final flush."""
    decoder = Decoder(fast_path=fast_path)
    events: list[Event] = []
    for start in range(0, len(data), max(chunk_size, 1)):
        events.extend(decoder.feed(data[start:start + chunk_size]))
    events.extend(decoder.finish())
    return events
