"""The VE.Direct field table: one row per label, as data (PROTOCOL.md).

Each :class:`FieldSpec` says how a raw wire value becomes a typed value in user
units, and how Home Assistant should present it. Decoding is a table lookup;
there is no per-field branch anywhere else in the code.

Decisions written down here:

* ``---`` (not available) decodes to ``None`` for every field; :func:`decode_fields`
  leaves such fields out (an absent reading).
* Codes (CS, ERR, MPPT, MODE, MON) decode to :class:`Code`, an ``int`` that keeps
  the raw code (what numeric sinks such as EmonCms store) and carries its name.
* Bitmasks (AR, WARN, OR) decode to :class:`Flags`, an ``int`` with the names of
  the bits set.
* PID decodes to :class:`Code` with the product name; unknown ids pass through as
  ``unknown 0x....``.
* ``TTG = -1`` (infinite) is kept as -1 minutes, as the device sends it.
* Unknown labels are kept as their raw strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vemonitor.vedirect import tables

Value = None | bool | int | float | str


class Code(int):
    """An integer code that also carries its human-readable name."""

    name: str

    def __new__(cls, code: int, name: str) -> Code:
        obj = super().__new__(cls, code)
        obj.name = name
        return obj

    def __repr__(self) -> str:
        return f"Code({int(self)}, {self.name!r})"

    def __str__(self) -> str:
        return self.name


class Flags(int):
    """A bitmask that also carries the names of the bits that are set."""

    names: tuple[str, ...]

    def __new__(cls, mask: int, names: tuple[str, ...]) -> Flags:
        obj = super().__new__(cls, mask)
        obj.names = names
        return obj

    def __repr__(self) -> str:
        return f"Flags(0x{int(self):X}, {self.names!r})"

    def __str__(self) -> str:
        return ", ".join(self.names) if self.names else "none"


# Wire patterns used by the decoder to reject blocks whose known fields do not parse.
# Lengths are bounded (no counter has 20 digits) so a pattern alone keeps a value
# short and clean; MAX_PATTERN_LENGTH is the longest value any of them accepts.
_INT = rb"(?:-?[0-9]{1,20}|---)"
_HEXNUM = rb"(?:0[xX][0-9A-Fa-f]{1,16}|---)"
_ONOFF = rb"(?:ON|OFF|On|Off|on|off|---)"
_INT_OR_HEX = rb"(?:-?[0-9]{1,20}|0[xX][0-9A-Fa-f]{1,16}|---)"
MAX_PATTERN_LENGTH = 21


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one label is decoded and presented."""

    label: str
    description: str
    kind: str  # a key of DECODERS
    unit: str | None = None  # user unit after scaling
    scale: float = 1.0  # user value = wire value * scale
    ha_device_class: str | None = None
    ha_state_class: str | None = None
    codes: Mapping[int, str] | None = None  # for kind "code" and "flags"

    @property
    def wire_pattern(self) -> bytes | None:
        """Return the regex a wire value must match, or None when any text is fine."""
        return _WIRE_PATTERNS.get(self.kind)


_WIRE_PATTERNS: dict[str, bytes] = {
    "int": _INT,
    "scaled": _INT,
    "onoff": _ONOFF,
    "code": _INT,
    "flags": _INT_OR_HEX,
    "pid": _HEXNUM,
}

_M = "measurement"
_TI = "total_increasing"


def _f(label: str, description: str, kind: str, unit: str | None = None, scale: float = 1.0,
       dc: str | None = None, sc: str | None = None,
       codes: Mapping[int, str] | None = None) -> FieldSpec:
    """Build a FieldSpec row (short name keeps the table readable)."""
    return FieldSpec(label, description, kind, unit, scale, dc, sc, codes)


FIELDS: tuple[FieldSpec, ...] = (
    _f("V", "Main (battery) voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("V2", "Channel 2 (battery) voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("V3", "Channel 3 (battery) voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("VS", "Auxiliary (starter) voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("VM", "Mid-point voltage of the battery bank", "scaled", "V", 0.001, "voltage", _M),
    _f("DM", "Mid-point deviation of the battery bank", "scaled", "%", 0.1, None, _M),
    _f("VPV", "Panel voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("PPV", "Panel power", "int", "W", 1, "power", _M),
    _f("I", "Main (battery) current", "scaled", "A", 0.001, "current", _M),
    _f("I2", "Channel 2 battery current", "scaled", "A", 0.001, "current", _M),
    _f("I3", "Channel 3 battery current", "scaled", "A", 0.001, "current", _M),
    _f("IL", "Load current", "scaled", "A", 0.001, "current", _M),
    _f("LOAD", "Load output state", "onoff"),
    _f("T", "Battery temperature", "int", "°C", 1, "temperature", _M),
    _f("P", "Instantaneous power", "int", "W", 1, "power", _M),
    _f("CE", "Consumed Amp Hours", "scaled", "Ah", 0.001, None, _M),
    _f("SOC", "State-of-charge", "scaled", "%", 0.1, "battery", _M),
    _f("TTG", "Time-to-go (-1 = infinite)", "int", "min", 1, "duration", _M),
    _f("Alarm", "Alarm condition active", "onoff"),
    _f("Relay", "Relay state", "onoff"),
    _f("AR", "Alarm reason", "flags", codes=tables.ALARM_BITS),
    _f("WARN", "Warning reason", "flags", codes=tables.ALARM_BITS),
    _f("OR", "Off reason", "flags", codes=tables.OFF_REASON_BITS),
    _f("H1", "Depth of the deepest discharge", "scaled", "Ah", 0.001, None, _M),
    _f("H2", "Depth of the last discharge", "scaled", "Ah", 0.001, None, _M),
    _f("H3", "Depth of the average discharge", "scaled", "Ah", 0.001, None, _M),
    _f("H4", "Number of charge cycles", "int"),
    _f("H5", "Number of full discharges", "int"),
    _f("H6", "Cumulative Amp Hours drawn", "scaled", "Ah", 0.001, None, _M),
    _f("H7", "Minimum main (battery) voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("H8", "Maximum main (battery) voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("H9", "Number of seconds since last full charge", "int", "s", 1, "duration", _M),
    _f("H10", "Number of automatic synchronizations", "int"),
    _f("H11", "Number of low main voltage alarms", "int"),
    _f("H12", "Number of high main voltage alarms", "int"),
    _f("H13", "Number of low auxiliary voltage alarms", "int"),
    _f("H14", "Number of high auxiliary voltage alarms", "int"),
    _f("H15", "Minimum auxiliary (battery) voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("H16", "Maximum auxiliary (battery) voltage", "scaled", "V", 0.001, "voltage", _M),
    _f("H17", "Amount of discharged energy", "scaled", "kWh", 0.01, "energy", _TI),
    _f("H18", "Amount of charged energy", "scaled", "kWh", 0.01, "energy", _TI),
    _f("H19", "Yield total (user resettable counter)", "scaled", "kWh", 0.01, "energy", _TI),
    _f("H20", "Yield today", "scaled", "kWh", 0.01, "energy", _TI),
    _f("H21", "Maximum power today", "int", "W", 1, "power", _M),
    # Yesterday's values change once a day, when the charger starts its next day (at first
    # light, not at midnight: vemonitor/vedirect/days.py): no state class (as a
    # total_increasing, each new day's value would be counted as energy again and corrupt
    # the Energy dashboard; as a measurement, a daily step is no statistic worth keeping).
    _f("H22", "Yield yesterday", "scaled", "kWh", 0.01, "energy"),
    _f("H23", "Maximum power yesterday", "int", "W", 1, "power"),
    _f("HSDS", "Day sequence number (0..364)", "int"),
    _f("ERR", "Error code", "code", dc="enum", codes=tables.ERR),
    _f("CS", "State of operation", "code", dc="enum", codes=tables.CS),
    _f("MPPT", "Tracker operation mode", "code", dc="enum", codes=tables.MPPT),
    _f("MODE", "Device mode", "code", dc="enum", codes=tables.MODE),
    _f("MON", "DC monitor mode", "code", dc="enum", codes=tables.MON),
    _f("AC_OUT_V", "AC output voltage", "scaled", "V", 0.01, "voltage", _M),
    _f("AC_OUT_I", "AC output current", "scaled", "A", 0.1, "current", _M),
    _f("AC_OUT_S", "AC output apparent power", "int", "VA", 1, "apparent_power", _M),
    _f("DC_IN_V", "DC input voltage", "scaled", "V", 0.01, "voltage", _M),
    _f("DC_IN_I", "DC input current", "scaled", "A", 0.1, "current", _M),
    _f("DC_IN_P", "DC input power", "int", "W", 1, "power", _M),
    _f("PID", "Product ID", "pid", codes=tables.PRODUCTS),
    _f("FW", "Firmware version (16 bit)", "fw16"),
    _f("FWE", "Firmware version (24 bit)", "fw24"),
    _f("SER#", "Serial number", "text"),
    _f("BMV", "Model description", "text"),
    _f("HC#", "Hardware revision", "text"),
)

FIELD_BY_LABEL: dict[str, FieldSpec] = {spec.label: spec for spec in FIELDS}
# Identity fields describe the device (product, firmware, serial, model): they go into a
# device registry (MQTT discovery's device block, Home Assistant's device), not entities.
IDENTITY_LABELS = frozenset({"PID", "FW", "FWE", "SER#", "BMV", "HC#"})

# Physical range of every numeric label, in user units (after scaling).
#
# A value outside its range cannot be a real reading (a corrupted block that passed
# the weak checksum, or data forged upstream). Such a FIELD is left out of the
# snapshot or row, counted and logged (docs/vedirect.md, "Which check is which");
# the rest of its block or row is kept. So a range only has to exclude the
# impossible: it must never exclude what a real device sends. Sources, named on
# each line:
#   [P] ../shared/PROTOCOL.md (units, "CE <= 0", "TTG -1 = infinite", "HSDS 0..364");
#   [C] ../shared/captures (BMV-700 FW 308, BlueSolar 75/15, SmartSolar 100/20);
#   [S] real devices: a SmartShunt 500A/50mV (PID 0xA389, FW 0405) with nothing on
#       its aux input: VS -14, H15 -22 (mV), issue 21; public records of real devices
#       quoted in other VE.Direct readers' sources: a SmartShunt 0xA389 FW 0407 (H15
#       -27, H6 -3928992, H1 -264148, TTG 2052, H17 5148) and a Phoenix inverter
#       0xA261 FW 0114 (AC_OUT_I -3, i.e. -0.3 A while idle, AC_OUT_V 23004);
#   [D] Victron datasheets: BMV/SmartShunt supply 6.5-70 V, shunts up to 2000 A
#       (140 kW at 70 V), MPPT PV inputs up to 450 V (MPPT RS), Orion XS input up to
#       60 V, Phoenix inverters 230/120 V AC;
#   [W] the wire: values are 32-bit integers (counters in 0.01 kWh reach 2.1e7 kWh).
# A value of "---" (not available, [P]) is no reading at all: an absent field,
# never an out-of-range one (NOT_AVAILABLE below).
_VOLTS = (0.0, 100.0)  # a device's own supply / battery input: never below 0 [D]
# An input that may have nothing connected (aux/starter, mid-point, a charger's 2nd
# and 3rd output, a panel at night, an idle DC input) reads a few mV either side of
# 0 [S]; -1 V leaves room for offsets while 999999 V or -50 V stay out.
_INPUT_VOLTS = (-1.0, 100.0)
_COUNT = (0.0, 10_000_000.0)  # events counted since the last reset: never negative [P]
_ENERGY = (0.0, 10_000_000.0)  # kWh: 32-bit wire counters in 0.01 kWh reach 2.1e7 [W]
_DEPTH = (-10_000_000.0, 0.0)  # Ah drawn from the battery are negative [P][S]
_AMPS = (-10_000.0, 10_000.0)  # shunts up to 2000 A, charge peaks above it [D]
_WATTS = (-500_000.0, 500_000.0)  # 2000 A at 70 V is 140 kW [D]
BOUNDS: dict[str, tuple[float, float]] = {
    "V": _VOLTS, "V2": _INPUT_VOLTS, "V3": _INPUT_VOLTS,  # [P][D]
    "VS": _INPUT_VOLTS, "VM": _INPUT_VOLTS,  # aux/mid-point may be unconnected [S]
    # Mid-point deviation: VM unconnected (0 V, or a few mV below) gives -100 % and a
    # little more; a shorted half bank +100 %.
    "DM": (-110.0, 110.0),  # [P][S]
    "VPV": (-1.0, 500.0),  # PV up to 450 V (MPPT RS); ~0 at night [D][C]
    "PPV": (0.0, 100_000.0),  # panel power is only produced, never drawn [P][C]
    "I": _AMPS, "I2": _AMPS, "I3": _AMPS,  # signed battery current [P][C][D]
    "IL": (-1000.0, 1000.0),  # an MPPT load output: tens of A at most [D][C]
    "T": (-60.0, 150.0),  # battery temperature sensors: -40..+85 degC and margin [D]
    "P": _WATTS,  # signed [P][D]
    "CE": (-1_000_000.0, 0.0),  # consumed charge is <= 0 [P][C]
    "SOC": (0.0, 100.0),  # per mille 0..1000 [P][C]
    "TTG": (-1.0, 144_000.0),  # minutes; -1 = infinite [P]; 100 days is beyond any estimate
    "H1": _DEPTH, "H2": _DEPTH, "H3": _DEPTH, "H6": _DEPTH,  # [P][C][S]
    "H4": _COUNT, "H5": _COUNT, "H10": _COUNT, "H11": _COUNT, "H12": _COUNT,  # [P][C]
    "H13": _COUNT, "H14": _COUNT,  # [P]
    "H7": _VOLTS, "H8": _VOLTS,  # min/max of the main (supply) voltage [P][C][D]
    "H9": (0.0, 20 * 365 * 86400.0),  # seconds since a full charge: 20 years [P][C]
    "H15": _INPUT_VOLTS, "H16": _INPUT_VOLTS,  # min/max aux voltage, maybe unconnected [S]
    "H17": _ENERGY, "H18": _ENERGY, "H19": _ENERGY,  # [P][C][W]
    "H20": (0.0, 100_000.0), "H22": (0.0, 100_000.0),  # kWh in one day [P][C]
    "H21": (0.0, 100_000.0), "H23": (0.0, 100_000.0),  # W, a day's maximum [P][C]
    "HSDS": (0.0, 365.0),  # day sequence 0..364 [P][C] (+1: a leap year's last day)
    "AC_OUT_V": (0.0, 400.0),  # 230/120 V inverters; 0 when off [S][D]
    "AC_OUT_I": (-1000.0, 1000.0),  # a small negative current while idle [S][D]
    "AC_OUT_S": (0.0, 100_000.0),  # [D]
    "DC_IN_V": (-1.0, 200.0),  # Orion XS input up to 60 V; ~0 when idle [D]
    "DC_IN_I": (-1000.0, 1000.0), "DC_IN_P": (-100_000.0, 100_000.0),  # [D]
}

# Wire values meaning "not available" [P]: the field is absent, not out of range. A
# device sends "---" for a reading it does not have (no temperature sensor, SOC
# before the first synchronisation). Numeric sentinels belong only to the HEX
# protocol (../shared/HEX.md), not to text blocks.
NOT_AVAILABLE = frozenset({"---"})

VALUE_PATTERNS: dict[bytes, re.Pattern[bytes]] = {
    spec.label.encode("ascii"): re.compile(pattern)
    for spec in FIELDS
    if (pattern := spec.wire_pattern) is not None
}


# --------------------------------------------------------------------- decoders
def _wire_int(raw: str) -> int:
    """Parse a decimal or 0x-hex wire integer."""
    return int(raw, 16) if raw[:2] in ("0x", "0X") else int(raw)


def _scaled(spec: FieldSpec, raw: str) -> Value:
    """Return the wire integer in user units, rounded to hide float noise."""
    return round(int(raw) * spec.scale, 6)


def _code(spec: FieldSpec, raw: str) -> Value:
    """Return the code with its name (unknown codes are named 'unknown N')."""
    code = int(raw)
    return Code(code, (spec.codes or {}).get(code, f"unknown {code}"))


def _flags(spec: FieldSpec, raw: str) -> Value:
    """Return the bitmask with the names of its set bits."""
    mask = _wire_int(raw)
    table = spec.codes or {}
    names = tuple(name for bit, name in sorted(table.items()) if mask & bit)
    return Flags(mask, names)


def _pid(spec: FieldSpec, raw: str) -> Value:
    """Return the product id with the product name."""
    pid = int(raw, 16)
    return Code(pid, tables.PRODUCTS.get(pid, f"unknown 0x{pid:04X}"))


def _fw16(spec: FieldSpec, raw: str) -> Value:
    """Return FW ('0308', '156') as a version string ('3.08', '1.56')."""
    digits = raw.lstrip("0") or "0"
    if not digits.isdigit():
        return raw
    return f"{int(digits) // 100}.{int(digits) % 100:02d}"


def _fw24(spec: FieldSpec, raw: str) -> Value:
    """Return FWE ('316FF') as '3.16' (a release tag other than FF is appended)."""
    text = raw.upper()
    if len(text) < 3 or not all(c in "0123456789ABCDEF" for c in text):
        return raw
    version, tag = text[:-2], text[-2:]
    base = _fw16(spec, version)
    return base if tag == "FF" else f"{base}-{tag}"


DECODERS: dict[str, Callable[[FieldSpec, str], Value]] = {
    "int": lambda spec, raw: int(raw),
    "scaled": _scaled,
    "onoff": lambda spec, raw: raw.upper() == "ON",
    "code": _code,
    "flags": _flags,
    "pid": _pid,
    "fw16": _fw16,
    "fw24": _fw24,
    "text": lambda spec, raw: raw,
}


def decode_value(label: str, raw: str) -> Value:
    """Return the typed value of one field in user units (raw string for unknown labels)."""
    spec = FIELD_BY_LABEL.get(label)
    if spec is None:
        return raw
    if raw == "---":
        return None
    try:
        return DECODERS[spec.kind](spec, raw)
    except ValueError:
        # The decoder already rejects blocks whose numeric fields do not parse;
        # this guards direct callers: keep the raw text rather than guess.
        return raw


def decode_fields(raw: Mapping[str, str]) -> dict[str, Value]:
    """Return the available fields of a block or snapshot decoded with :func:`decode_value`.

    A "not available" value (``---``) is left out: an absent reading, which every
    output shows as absent (never as a stale value or a 0).
    """
    return {label: decode_value(label, value) for label, value in raw.items()
            if value not in NOT_AVAILABLE}


def jsonable(value: Any) -> Any:
    """Return a JSON-friendly form: codes and flags become their integer."""
    if isinstance(value, (Code, Flags)):
        return int(value)
    return value
