"""The VE.Direct HEX protocol codec: frames, commands, replies, values, history records.

Pure functions over bytes (HEX.md §2, §4); no I/O. What it follows:

* A line is ``:`` + one command/response digit + payload bytes as two hex digits
  each + a check byte + ``\\n``; command + payload + check sum to 0x55 mod 256.
* Lowercase digits are accepted; a ``\\r`` before the ``\\n`` is tolerated (HEX.md
  §2.1); we always send uppercase.
* Multi-byte numbers are little-endian. Get/Set/Async payloads are
  ``register u16, flags u8, value``; the flags byte is mandatory in requests.
* A reply whose flags are non-zero carries no usable value; any non-zero flag is an
  error (GV ignores unknown flags: a bug HEX.md says to avoid).
* :class:`LineSplitter` cuts a byte stream into lines: it resyncs on every ``:``
  and caps a line at :data:`MAX_LINE` characters (OD ``VE_MAX_HEX_LEN``). The TEXT
  decoder (:mod:`vemonitor.vedirect.decoder`) does the same for the device side
  and hands its :class:`HexMessage` bodies to :func:`parse_response`.
* Nothing here raises on bad input: parsing returns :class:`Malformed`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass

from vemonitor.vedirect import fields
from vemonitor.vedirect.encoder import encode_hex
from vemonitor.vedirect.hex_registers import INT_TYPES, REGISTER_BY_ID, RegisterSpec

# Host -> device commands (HEX.md §2.2).
ENTER_BOOT, PING, APP_VERSION, PRODUCT_ID, RESTART, GET, SET = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
# Device -> host response codes. Beware: 1 = Done, 3 = Unknown command, 4 = Error.
DONE, UNKNOWN_COMMAND, ERROR, PING_REPLY, GET_REPLY, SET_REPLY, ASYNC = (
    0x1, 0x3, 0x4, 0x5, 0x7, 0x8, 0xA)
# What each command is answered with (GV ResponseForCommand, KR). Restart: none.
REPLY_CODE: dict[int, int] = {PING: PING_REPLY, APP_VERSION: DONE, PRODUCT_ID: DONE,
                              GET: GET_REPLY, SET: SET_REPLY}
COMMAND_NAMES: dict[int, str] = {ENTER_BOOT: "enter boot", PING: "ping",
                                 APP_VERSION: "app version", PRODUCT_ID: "product id",
                                 RESTART: "restart", GET: "get", SET: "set"}
REGISTER_CODES = frozenset({GET_REPLY, SET_REPLY, ASYNC})

# Flags of Get/Set/Async replies (GV definitions.go, error.go).
FLAG_OK, FLAG_UNKNOWN_ID, FLAG_NOT_SUPPORTED, FLAG_PARAMETER_ERROR = 0x00, 0x01, 0x02, 0x04
FLAG_NAMES: dict[int, str] = {FLAG_UNKNOWN_ID: "unknown id", FLAG_NOT_SUPPORTED: "not supported",
                              FLAG_PARAMETER_ERROR: "parameter error"}
# Error reply payloads (PY, "Error Payload Meanings").
ERROR_FRAME, ERROR_BOOT = 0xAAAA, 0x0000
FRAME_ERROR_LINE = b":4AAAAFD\n"  # what a device answers to a line it cannot parse

MAX_LINE = 100  # characters after ':' before a line is cut (OD VE_MAX_HEX_LEN)
_BODY = re.compile(rb"[0-9A-Fa-f](?:[0-9A-Fa-f]{2})+")


# ------------------------------------------------------------------- messages
@dataclass(frozen=True, slots=True)
class Frame:
    """One checked HEX line: the command/response digit and the payload bytes."""

    code: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class RegisterMessage:
    """A Get/Set request or a Get/Set/Async reply: register, flags and raw value bytes."""

    code: int
    register: int
    flags: int
    value: bytes

    @property
    def ok(self) -> bool:
        """Return True when the flags say the value is valid."""
        return self.flags == FLAG_OK

    @property
    def refused(self) -> bool:
        """Return True when the device does not know or support the register (flags 1, 2)."""
        return bool(self.flags & (FLAG_UNKNOWN_ID | FLAG_NOT_SUPPORTED))


@dataclass(frozen=True, slots=True)
class WordMessage:
    """A reply carrying one u16: ping (5) and Done (1) for app version and product id."""

    code: int
    value: int


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """Unknown command (3) or Error (4, payload 0xAAAA = frame error)."""

    code: int
    payload: bytes

    @property
    def frame_error(self) -> bool:
        """Return True for ``:4AAAAFD``: the device could not parse what it received."""
        return self.code == ERROR and self.payload == ERROR_FRAME.to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class Command:
    """A host -> device command without a register (ping, app version, product id...)."""

    code: int


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that is not a valid HEX frame, with the reason."""

    reason: str
    raw: bytes


Response = RegisterMessage | WordMessage | ErrorMessage | Frame | Malformed
Request = RegisterMessage | Command | Malformed


# ---------------------------------------------------------------------- frames
def checksum_ok(code: int, payload: bytes) -> bool:
    """Return True when command + payload bytes + check byte sum to 0x55."""
    return (code + sum(payload)) & 0xFF == 0x55


def parse_frame(body: bytes) -> Frame | Malformed:
    """Parse a line body (after ``:``, without ``\\n``; a trailing ``\\r`` is tolerated)."""
    if body.endswith(b"\r"):
        body = body[:-1]
    if len(body) > MAX_LINE:
        return Malformed("too long", body[:MAX_LINE])
    if _BODY.fullmatch(body) is None:
        return Malformed("not an odd count of hex digits", body)
    code = int(body[:1], 16)
    data = bytes.fromhex(body[1:].decode("ascii"))
    if not checksum_ok(code, data):
        return Malformed("check byte", body)
    return Frame(code, data[:-1])


def encode(code: int, payload: bytes = b"") -> bytes:
    """Return one line ``:`` + code + payload + check byte + ``\\n``, upper case."""
    return encode_hex(code, payload)


@functools.lru_cache(maxsize=1024)  # a poller asks the same few registers every second
def encode_get(register: int) -> bytes:
    """Return a Get request line (flags byte 00 is mandatory: VC 49788)."""
    return encode(GET, register.to_bytes(2, "little") + b"\x00")


def encode_set(register: int, value: bytes) -> bytes:
    """Return a Set request line with the value's wire bytes."""
    return encode(SET, register.to_bytes(2, "little") + b"\x00" + value)


def encode_register_reply(code: int, register: int, flags: int, value: bytes = b"") -> bytes:
    """Return a Get/Set/Async reply line (a device's side; the simulator uses it)."""
    return encode(code, register.to_bytes(2, "little") + bytes([flags]) + value)


def encode_word(code: int, value: int) -> bytes:
    """Return a reply carrying one u16 (ping reply, Done)."""
    return encode(code, (value & 0xFFFF).to_bytes(2, "little"))


# ------------------------------------------------------------------- messages
def _register_message(frame: Frame) -> RegisterMessage | Malformed:
    """Split a register payload into register, flags and value."""
    if len(frame.payload) < 3:
        return Malformed("register payload shorter than 3 bytes", frame.payload.hex().encode())
    reg = int.from_bytes(frame.payload[:2], "little")
    return RegisterMessage(frame.code, reg, frame.payload[2], frame.payload[3:])


# A device answers the same bytes again and again (a polled register that did not
# change: a flag, a state of charge, a capacity), and every message and reading is
# immutable: the same line is parsed and decoded once, not at every poll.
REPEATED_LINES = 256


@functools.lru_cache(maxsize=REPEATED_LINES)
def parse_response(body: bytes) -> Response:
    """Return what a device line means (device -> host direction)."""
    frame = parse_frame(body)
    if isinstance(frame, Malformed):
        return frame
    if frame.code in REGISTER_CODES:
        return _register_message(frame)
    if frame.code in (PING_REPLY, DONE) and len(frame.payload) == 2:
        return WordMessage(frame.code, int.from_bytes(frame.payload, "little"))
    if frame.code in (UNKNOWN_COMMAND, ERROR):
        return ErrorMessage(frame.code, frame.payload)
    return frame  # a valid frame of a shape we do not interpret (e.g. pmarches' :305004D)


def parse_request(body: bytes) -> Request:
    """Return what a host line means (host -> device direction; the simulator's side)."""
    frame = parse_frame(body)
    if isinstance(frame, Malformed):
        return frame
    if frame.code in (GET, SET):
        msg = _register_message(frame)
        if isinstance(msg, RegisterMessage) and frame.code == GET and msg.value:
            return Malformed("get with a value", body)
        if isinstance(msg, RegisterMessage) and frame.code == SET and not msg.value:
            # A Set without a value byte (a user's ':8ABED00B5', VC 49788) does nothing.
            return Malformed("set without a value", body)
        return msg
    if frame.code in COMMAND_NAMES and not frame.payload:
        return Command(frame.code)
    return Malformed("unknown command %X" % frame.code, body)


# ----------------------------------------------------------------- line splitter
class LineSplitter:
    """Cut a byte stream into HEX line bodies: resync on ':', cap at MAX_LINE, drop noise.

    Bytes outside a line (before the first ``:``) are ignored; a ``:`` inside a
    line starts a new one (the cut piece is reported as malformed); a line longer
    than the cap is reported once and dropped up to its ``\\n``.
    """

    def __init__(self, cap: int = MAX_LINE) -> None:
        self.cap = cap
        self._line: bytearray | None = None
        self._overflow = False

    def feed(self, data: bytes) -> list[bytes | Malformed]:
        """Return the complete line bodies (and Malformed pieces) in ``data``."""
        out: list[bytes | Malformed] = []
        for byte in data:
            if byte == 0x3A:  # ':'
                if self._line is not None and not self._overflow:
                    out.append(Malformed("cut by ':'", bytes(self._line)))
                self._line, self._overflow = bytearray(), False
            elif self._line is None:
                continue
            elif byte == 0x0A:
                if not self._overflow:
                    out.append(bytes(self._line))
                self._line, self._overflow = None, False
            elif not self._overflow:
                self._line.append(byte)
                if len(self._line) > self.cap + 1:  # +1: a tolerated '\r'
                    out.append(Malformed("too long", bytes(self._line[:self.cap])))
                    self._overflow = True
        return out


# ---------------------------------------------------------------------- values
def unpack_int(wire: str, data: bytes) -> int | None:
    """Return the little-endian integer of an integer wire type, or None on a width mismatch."""
    size, signed = INT_TYPES[wire]
    if len(data) != size:
        return None
    return int.from_bytes(data, "little", signed=signed)


def pack_int(wire: str, value: int) -> bytes:
    """Return ``value`` as the wire bytes of an integer type; raise ValueError when it does not fit."""
    size, signed = INT_TYPES[wire]
    try:
        return value.to_bytes(size, "little", signed=signed)
    except OverflowError as err:
        raise ValueError(f"{value} does not fit {wire}") from err


def decode_string(data: bytes) -> str:
    """Return a NUL-padded string register as text (trailing NULs and spaces trimmed: GV)."""
    text = data.split(b"\x00", 1)[0].decode("latin-1")
    return text.rstrip(" ")


class DecodeError(ValueError):
    """A register value that cannot be decoded (wrong width); the reading is absent."""


def decode_value(spec: RegisterSpec, data: bytes) -> object:
    """Return the value of a register in user units; None when the device says not available.

    Scalars go through fields.DECODERS exactly as a TEXT label does (scaling, codes,
    flags, firmware strings); structured registers decode to their dataclass.
    Raise :class:`DecodeError` when the bytes do not fit the register's wire type.
    """
    if spec.wire == "string":
        return decode_string(data)
    if spec.wire in STRUCT_DECODERS:
        decoded = STRUCT_DECODERS[spec.wire](data)
        if decoded is None:
            raise DecodeError(f"0x{spec.id:04X}: {len(data)} bytes do not fit {spec.wire}")
        return decoded
    raw = unpack_int(spec.wire, data)
    if raw is None:
        raise DecodeError(f"0x{spec.id:04X}: {len(data)} bytes, {spec.wire} needs "
                          f"{INT_TYPES[spec.wire][0]}")
    if spec.na is not None and raw == spec.na:
        return None
    assert spec.field is not None
    text = f"{raw:X}" if spec.field.kind in ("fw24", "pid") else str(raw)
    value = fields.DECODERS[spec.field.kind](spec.field, text)
    if spec.offset and isinstance(value, (int, float)):
        value = round(value + spec.offset, 6)
    return value


def encode_value(spec: RegisterSpec, value: float) -> bytes:
    """Return the wire bytes of a value in user units (explicit rounding; ValueError if out of type)."""
    if spec.wire not in INT_TYPES or spec.field is None:
        raise ValueError(f"0x{spec.id:04X} ({spec.name}) is not a number register")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value} is not a finite number")
    raw = round((value - spec.offset) / spec.field.scale)
    if spec.na is not None and raw == spec.na:
        raise ValueError(f"{value} encodes to the not-available value")
    return pack_int(spec.wire, raw)


# ----------------------------------------------------------------- structures
@dataclass(frozen=True, slots=True)
class ProductBlock:
    """Register 0x0100: ``u8 id, u16 PID LE, u8 flags`` (HEX.md §3.1; GV's u32 decode is wrong)."""

    id: int
    pid: int
    flags: int


@dataclass(frozen=True, slots=True)
class DayRecord:
    """One day of MPPT history (0x1050 + n), VR layout, 34 bytes; None = not available."""

    version: int
    yield_kwh: float | None
    consumed_kwh: float | None
    battery_v_max: float | None
    battery_v_min: float | None
    error_db: int | None
    errors: tuple[int, int, int, int]
    bulk_min: int | None
    absorption_min: int | None
    float_min: int | None
    max_power_w: int | None
    battery_i_max: float | None
    pv_v_max: float | None
    day_seq: int


@dataclass(frozen=True, slots=True)
class TotalRecord:
    """MPPT history totals (0x104F), VR layout (19 documented bytes; devices send 34)."""

    version: int
    error_db: int | None
    errors: tuple[int, int, int, int]
    yield_user_kwh: float | None
    yield_system_kwh: float | None
    pv_v_max: float | None
    battery_v_max: float | None
    days: int
    extra: bytes  # bytes 19.. kept raw (19-20 looks like an all-time Vbat min: HEX.md §4.1)


def _field(data: bytes, offset: int, wire: str, scale: float = 1.0) -> float | int | None:
    """Return an unsigned little-endian field at ``offset``, scaled; None when all ones."""
    raw = unpack_int(wire, data[offset:offset + INT_TYPES[wire][0]])
    if raw is None or raw == (1 << (8 * INT_TYPES[wire][0])) - 1:
        return None
    return raw if scale == 1.0 else round(raw * scale, 6)


def _int_field(data: bytes, offset: int, wire: str) -> int | None:
    """Return an unscaled unsigned field (minutes, watts, ids); None when not available."""
    value = _field(data, offset, wire)
    return None if value is None else int(value)


def decode_day(data: bytes) -> DayRecord | None:
    """Return a day record, or None when fewer than 34 bytes arrived (HEX.md §4.1)."""
    if len(data) < 34:
        return None
    errors = (data[14], data[15], data[16], data[17])
    return DayRecord(
        version=data[0], yield_kwh=_field(data, 1, "u32", 0.01),
        consumed_kwh=_field(data, 5, "u32", 0.01),
        battery_v_max=_field(data, 9, "u16", 0.01), battery_v_min=_field(data, 11, "u16", 0.01),
        error_db=_int_field(data, 13, "u8"), errors=errors,
        bulk_min=_int_field(data, 18, "u16"), absorption_min=_int_field(data, 20, "u16"),
        float_min=_int_field(data, 22, "u16"), max_power_w=_int_field(data, 24, "u32"),
        battery_i_max=_field(data, 28, "u16", 0.1), pv_v_max=_field(data, 30, "u16", 0.01),
        day_seq=int.from_bytes(data[32:34], "little"),
    )


def decode_total(data: bytes) -> TotalRecord | None:
    """Return the history totals, or None when fewer than 19 bytes arrived."""
    if len(data) < 19:
        return None
    return TotalRecord(
        version=data[0], error_db=_int_field(data, 1, "u8"),
        errors=(data[2], data[3], data[4], data[5]),
        yield_user_kwh=_field(data, 6, "u32", 0.01), yield_system_kwh=_field(data, 10, "u32", 0.01),
        pv_v_max=_field(data, 14, "u16", 0.01), battery_v_max=_field(data, 16, "u16", 0.01),
        days=data[18], extra=bytes(data[19:]),
    )


def decode_product(data: bytes) -> ProductBlock | None:
    """Return register 0x0100's parts, or None when it is not 4 bytes."""
    if len(data) != 4:
        return None
    return ProductBlock(data[0], int.from_bytes(data[1:3], "little"), data[3])


def decode_u8pair(data: bytes) -> tuple[int, int] | None:
    """Return 0xEDCE's (min, max) volts, or None when it is not 2 bytes."""
    return (data[0], data[1]) if len(data) == 2 else None


STRUCT_DECODERS = {
    "product": decode_product, "u8pair": decode_u8pair,
    "history_day": decode_day, "history_total": decode_total,
}


# -------------------------------------------------------------------- readings
@dataclass(frozen=True, slots=True)
class Reading:
    """A register reply decoded: value in user units (None = not available), or the error."""

    register: int
    spec: RegisterSpec | None
    flags: int
    value: object  # None when not available, refused or undecodable
    raw: bytes  # the value bytes as received
    error: str = ""  # "" when ok; else the flag names or the decode problem

    @property
    def name(self) -> str:
        """Return the register's name, or its id in hex when it is not in the table."""
        return self.spec.name if self.spec is not None else f"0x{self.register:04X}"


@functools.lru_cache(maxsize=REPEATED_LINES)  # see parse_response
def reading_of(message: RegisterMessage) -> Reading:
    """Decode a Get/Set/Async reply into a Reading; never raises."""
    spec = REGISTER_BY_ID.get(message.register)
    if message.flags != FLAG_OK:
        names = [name for bit, name in FLAG_NAMES.items() if message.flags & bit]
        other = message.flags & ~sum(FLAG_NAMES)
        if other:
            names.append("flags 0x%02X" % other)
        return Reading(message.register, spec, message.flags, None, message.value,
                       ", ".join(names))
    if spec is None:
        return Reading(message.register, None, 0, None, message.value, "unknown register")
    try:
        value = decode_value(spec, message.value)
    except DecodeError as err:
        return Reading(message.register, spec, 0, None, message.value, str(err))
    return Reading(message.register, spec, 0, value, message.value)


def describe(value: object) -> object:
    """Return a JSON-friendly form of a decoded value (codes -> int, records -> dict)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: describe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, tuple):
        return [describe(v) for v in value]
    return fields.jsonable(value)
