"""The VE.Direct HEX register table: one row per register, as data (HEX.md §3, §4).

Each :class:`RegisterSpec` says how a register sits on the wire (its type, width,
"not available" value), who may touch it (R/RW, non-volatile), which device
families have it, and how its value is presented. Presentation is not repeated
here: a scalar register carries a :class:`vemonitor.vedirect.fields.FieldSpec`
(label = the register's name), so the unit, scale, Home Assistant device_class
and state_class, and the code/bit names go through exactly the same machinery as
a TEXT label (``fields.DECODERS``; MQTT discovery and the HA sensors read FieldSpecs).

Sources, by the keys of HEX.md: VR (Victron's ve_regs.h: ids, types, scales,
not-available values), GV (koestler/go-victron, recorded sessions), KR (krahabb's
ESPHome component: R/RW), PM (BMV register list), OD (OpenDTU-OnBattery). The
source of each group is named above it.

Decisions written down here:

* Not available. HEX.md Q6: VR marks the type's extreme as "not available"
  (0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF unsigned; 0x7F, 0x7FFF, 0x7FFFFFFF signed).
  Every numeric register uses that value unless its row says otherwise, so a
  device never shows 382.2 °C (0xEDEC = 0xFFFF) or 327.67 V (0xED7D = 0x7FFF) as GV
  does. The exceptions are registers where the extreme is a real value:
  0xEDF1 battery type (0xFF = user defined, VR), bitmasks (all bits may be set).
* Names are snake_case and unique; they are what a config names as a column.
* Structured registers (0x0100 product block, 0xEDCE voltage range, history
  records) have no FieldSpec: :mod:`vemonitor.vedirect.hex` decodes them to
  dataclasses.
* Device families: ``mppt`` (BlueSolar/SmartSolar chargers), ``bmv`` (BMV-70x/712),
  ``shunt`` (SmartShunt). BMV-60x cannot take HEX (HEX.md B5): it is no family here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vemonitor.vedirect import tables
from vemonitor.vedirect.fields import FieldSpec

# Wire types: integer width in bytes and signedness (VR's un8/sn16/...).
INT_TYPES: dict[str, tuple[int, bool]] = {
    "u8": (1, False), "s8": (1, True), "u16": (2, False), "s16": (2, True),
    "u24": (3, False), "u32": (4, False), "s32": (4, True),
}
# Structured types, decoded by vemonitor.vedirect.hex (sizes: HEX.md §3.1, §3.2, §4.1).
STRUCT_TYPES: dict[str, int] = {
    "product": 4,  # u8 id, u16 PID LE, u8 flags
    "u8pair": 2,  # 0xEDCE voltage settings range: u8 min, u8 max
    "history_day": 34,
    "history_total": 19,  # documented size; devices send 34 (the rest is kept raw)
}
WIRE_TYPES = frozenset({*INT_TYPES, *STRUCT_TYPES, "string"})

MPPT, BMV, SHUNT = "mppt", "bmv", "shunt"
ALL = frozenset({MPPT, BMV, SHUNT})
CHARGERS = frozenset({MPPT})
MONITORS = frozenset({BMV, SHUNT})

DEFAULT_NA = -1  # marker: use the wire type's "not available" value


def type_na(wire: str) -> int | None:
    """Return VR's "not available" value of an integer wire type (None for other types)."""
    if wire not in INT_TYPES:
        return None
    size, signed = INT_TYPES[wire]
    bits = size * 8
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """One HEX register: wire layout, access, devices and (for scalars) its FieldSpec."""

    id: int
    name: str
    wire: str  # a key of INT_TYPES or STRUCT_TYPES, or "string"
    na: int | None  # raw value meaning "not available", None when every value is real
    access: str  # "R" or "RW"
    nv: bool  # written to non-volatile memory (wear: HEX.md Q2)
    devices: frozenset[str]
    field: FieldSpec | None  # presentation of a scalar; None for structured registers
    offset: float = 0.0  # added after scaling (0.01 K -> °C: -273.15)

    @property
    def size(self) -> int | None:
        """Return the value width in bytes, or None for variable-width strings."""
        if self.wire in INT_TYPES:
            return INT_TYPES[self.wire][0]
        return STRUCT_TYPES.get(self.wire)

    @property
    def unit(self) -> str | None:
        """Return the user unit of the decoded value."""
        return self.field.unit if self.field is not None else None

    @property
    def writable(self) -> bool:
        """Return True when the device accepts a Set of this register."""
        return self.access == "RW"


_M = "measurement"
_TI = "total_increasing"


def _r(rid: int, name: str, description: str, wire: str, kind: str = "int",
       unit: str | None = None, scale: float = 1.0, *, dc: str | None = None,
       sc: str | None = None, codes: Mapping[int, str] | None = None,
       na: int | None = DEFAULT_NA, access: str = "R", nv: bool = False,
       devices: frozenset[str] = ALL, offset: float = 0.0) -> RegisterSpec:
    """Build a RegisterSpec row (short name keeps the table readable)."""
    if wire not in WIRE_TYPES:
        raise ValueError(f"register 0x{rid:04X}: unknown wire type {wire!r}")
    field = None if wire in STRUCT_TYPES else FieldSpec(
        label=name, description=description, kind=kind, unit=unit, scale=scale,
        ha_device_class=dc, ha_state_class=sc, codes=codes)
    real_na = type_na(wire) if na == DEFAULT_NA else na
    return RegisterSpec(rid, name, wire, real_na, access, nv, devices, field, offset)


# 0x0200 device mode (KR enum; MPPT uses 1 = on, 4 = off: HEX.md §3.2).
DEVICE_MODE: dict[int, str] = {0: "Off", 1: "Charger on", 2: "Inverter on", 3: "On",
                               4: "Off", 5: "Eco", 0xFD: "Hibernate"}
# 0xEDAB load output control, bits 0-3 (FS citing the BlueSolar HEX PDF; VC 49788).
LOAD_OUTPUT_MODE: dict[int, str] = {0: "Off", 1: "Auto (BatteryLife)", 2: "Alternative 1",
                                    3: "Alternative 2", 4: "On", 5: "User 1", 6: "User 2",
                                    7: "Automatic energy selector"}
# 0xEDA8 load output state (VR, GV, KR).
LOAD_OUTPUT_STATE: dict[int, str] = {0: "Off", 1: "On", 2: "Scheduled", 3: "Attempting"}
# 0x0140 capabilities bit order (VR).
CAPABILITY_BITS: dict[int, str] = {
    1 << 0: "Load output", 1 << 2: "History", 1 << 8: "Remote on/off",
    1 << 13: "Panel current", 1 << 14: "BMS", 1 << 15: "External control",
    1 << 17: "Alarm relay", 1 << 19: "Virtual load output", 1 << 20: "Virtual relay",
    1 << 29: "AC-out VA",
}
# 0x0202 remote control used: bit 1 = remote on/off (VR).
REMOTE_BITS: dict[int, str] = {1 << 1: "Remote on/off"}
# 0xEDF1 battery type: 0xFF = user defined (VR); preset numbers differ by model.
BATTERY_TYPE: dict[int, str] = {0xFF: "User defined"}
BOOL: dict[int, str] = {0: "No", 1: "Yes"}

V, A, W = "voltage", "current", "power"

REGISTERS: tuple[RegisterSpec, ...] = (
    # --- identity, all devices (HEX.md §3.1: VR, GV recordings, VS) ---------------
    _r(0x0100, "product_block", "Product id block (id, PID, flags)", "product"),
    _r(0x0102, "app_version", "Firmware version (24 bit)", "u24", "fw24", na=None),
    _r(0x0104, "group_id", "Group id", "u8"),
    _r(0x010A, "serial_number", "Serial number", "string", "text"),
    _r(0x010B, "model_name", "Model name", "string", "text"),
    _r(0x0120, "uptime", "Uptime", "u32", "int", "s", dc="duration", sc=_M, devices=MONITORS),
    _r(0x0140, "capabilities", "Capabilities", "u32", "flags", codes=CAPABILITY_BITS, na=None),
    # --- MPPT state and control (HEX.md §3.2: VR, GV, KR, FS, VC) ------------------
    _r(0x0200, "device_mode", "Device mode", "u8", "code", dc="enum", codes=DEVICE_MODE,
       access="RW", devices=CHARGERS),
    _r(0x0201, "device_state", "Device state", "u8", "code", dc="enum", codes=tables.CS,
       devices=CHARGERS),
    _r(0x0202, "remote_control_used", "Remote control used", "u32", "flags",
       codes=REMOTE_BITS, na=None, access="RW", devices=CHARGERS),
    _r(0x0207, "off_reason", "Off reason", "u32", "flags", codes=tables.OFF_REASON_BITS,
       na=None, devices=CHARGERS),
    _r(0xEDDA, "charger_error", "Charger error", "u8", "code", dc="enum", codes=tables.ERR,
       devices=CHARGERS),
    _r(0xEDB3, "tracker_mode", "Tracker mode", "u8", "code", dc="enum", codes=tables.MPPT,
       devices=CHARGERS),
    # 0x2015 is volatile: the device drops it after ~60 s (HEX.md Q1).
    _r(0x2015, "charge_current_limit", "Charge current limit", "u16", "scaled", "A", 0.1,
       dc=A, sc=_M, access="RW", devices=CHARGERS),
    _r(0xEDAB, "load_output_control", "Load output control", "u8", "code", dc="enum",
       codes=LOAD_OUTPUT_MODE, na=None, access="RW", nv=True, devices=CHARGERS),
    _r(0xEDA8, "load_output_state", "Load output state", "u8", "code", dc="enum",
       codes=LOAD_OUTPUT_STATE, devices=CHARGERS),
    _r(0xEDAD, "load_current", "Load current", "u16", "scaled", "A", 0.1, dc=A, sc=_M,
       devices=CHARGERS),
    _r(0x034E, "relay_control", "Relay control", "u8", "code", codes=BOOL, access="RW",
       devices=frozenset({MPPT, BMV})),  # SmartShunt has no relay (HEX.md B4)
    _r(0x034F, "relay_mode", "Relay mode", "u8", devices=frozenset({MPPT, BMV})),
    # --- MPPT measurements and yields (VR, GV, KR, OD) ----------------------------
    _r(0xEDBB, "panel_voltage", "Panel voltage", "u16", "scaled", "V", 0.01, dc=V, sc=_M,
       devices=CHARGERS),
    _r(0xEDBC, "panel_power", "Panel power", "u32", "scaled", "W", 0.01, dc=W, sc=_M,
       devices=CHARGERS),
    _r(0xEDBD, "panel_current", "Panel current", "u16", "scaled", "A", 0.1, dc=A, sc=_M,
       devices=CHARGERS),  # absent on 10/15/20 A models (GV): they answer flags 1
    _r(0xEDD5, "charger_voltage", "Charger (battery) voltage", "u16", "scaled", "V", 0.01,
       dc=V, sc=_M, devices=CHARGERS),
    _r(0xEDD7, "charger_current", "Charger current", "u16", "scaled", "A", 0.1, dc=A, sc=_M,
       devices=CHARGERS),  # not 0xED8F on MPPTs (VS)
    _r(0xEDDB, "internal_temperature", "Charger internal temperature", "s16", "scaled", "°C",
       0.01, dc="temperature", sc=_M, devices=CHARGERS),
    # 0.01 K on the wire (VR): 28465 -> 11.5 °C (GV recording).
    _r(0xEDEC, "battery_temperature", "Battery temperature", "u16", "scaled", "°C", 0.01,
       dc="temperature", sc=_M, offset=-273.15),
    _r(0x2027, "network_input_power", "VE.Smart network total DC input power", "u32",
       "scaled", "W", 0.01, dc=W, sc=_M, devices=CHARGERS),
    _r(0xEDD3, "yield_today", "Yield today", "u16", "scaled", "kWh", 0.01, dc="energy",
       sc=_TI, devices=CHARGERS),
    # Yesterday's values step once a day: no state class (as TEXT H22/H23 in fields.py).
    _r(0xEDD1, "yield_yesterday", "Yield yesterday", "u16", "scaled", "kWh", 0.01,
       dc="energy", devices=CHARGERS),
    _r(0xEDD2, "max_power_today", "Maximum power today", "u16", "int", "W", dc=W, sc=_M,
       devices=CHARGERS),
    _r(0xEDD0, "max_power_yesterday", "Maximum power yesterday", "u16", "int", "W", dc=W,
       devices=CHARGERS),
    _r(0xEDDC, "yield_user", "Yield total (user resettable)", "u32", "scaled", "kWh", 0.01,
       dc="energy", sc=_TI, devices=CHARGERS),
    _r(0xEDDD, "yield_system", "Yield total (system)", "u32", "scaled", "kWh", 0.01,
       dc="energy", sc=_TI, devices=CHARGERS),
    # --- MPPT limits, read once (VR, GV) -----------------------------------------
    _r(0xEDDF, "charger_max_current", "Charger maximum current (rating)", "u16", "scaled",
       "A", 0.1, dc=A, devices=CHARGERS),
    _r(0xEDCE, "voltage_settings_range", "Voltage settings range (min, max V)", "u8pair",
       devices=CHARGERS),
    _r(0xEDEF, "battery_voltage_setting", "Battery system voltage", "u8", "int", "V", dc=V,
       devices=CHARGERS),
    _r(0xEDB8, "panel_max_voltage", "Panel maximum voltage", "u16", "scaled", "V", 0.01,
       dc=V, devices=CHARGERS),
    # --- MPPT battery settings, NV (VR, GV, KR; phase 2 writes only) --------------
    _r(0xEDF0, "battery_max_current", "Battery maximum current", "u16", "scaled", "A", 0.1,
       dc=A, access="RW", nv=True, devices=CHARGERS),
    _r(0xEDF1, "battery_type", "Battery type", "u8", "code", codes=BATTERY_TYPE, na=None,
       access="RW", nv=True, devices=CHARGERS),
    _r(0xEDF7, "absorption_voltage", "Absorption voltage", "u16", "scaled", "V", 0.01, dc=V,
       access="RW", nv=True, devices=CHARGERS),
    _r(0xEDF6, "float_voltage", "Float voltage", "u16", "scaled", "V", 0.01, dc=V,
       access="RW", nv=True, devices=CHARGERS),
    _r(0xEDF5, "storage_voltage", "Storage voltage", "u16", "scaled", "V", 0.01, dc=V,
       access="RW", nv=True, devices=CHARGERS),
    _r(0xEDF4, "equalisation_voltage", "Equalisation voltage", "u16", "scaled", "V", 0.01,
       dc=V, access="RW", nv=True, devices=CHARGERS),
    _r(0xEDF2, "temperature_compensation", "Temperature compensation", "s16", "scaled",
       "mV/K", 0.01, access="RW", nv=True, devices=CHARGERS),
    _r(0xEDFB, "absorption_time_limit", "Absorption time limit", "u16", "scaled", "h", 0.01,
       dc="duration", access="RW", nv=True, devices=CHARGERS),
    _r(0xEDFC, "bulk_time_limit", "Bulk time limit", "u16", "scaled", "h", 0.01,
       dc="duration", access="RW", nv=True, devices=CHARGERS),
    _r(0xEDE7, "tail_current", "Tail current", "u16", "scaled", "A", 0.1, dc=A,
       access="RW", nv=True, devices=CHARGERS),
    _r(0xEDE0, "low_temperature_cutoff", "Low-temperature charge cut-off", "s16", "scaled",
       "°C", 0.01, dc="temperature", access="RW", nv=True, devices=CHARGERS),
    # 0xED2E, not KR's 0xEDE2 (deprecated in VR): HEX.md §3.2.
    _r(0xED2E, "rebulk_offset", "Re-bulk voltage offset", "u16", "scaled", "V", 0.01, dc=V,
       access="RW", nv=True, devices=CHARGERS),
    # --- MPPT history (VR layout, HEX.md §4.1) -------------------------------------
    _r(0x104F, "history_total", "History: totals", "history_total", devices=CHARGERS),
    *(_r(0x1050 + n, f"history_day_{n:02d}", f"History: {n} days ago", "history_day",
         devices=CHARGERS) for n in range(31)),
    # --- BMV / SmartShunt live values (HEX.md §3.3: VR, GV, PM) --------------------
    _r(0xED8D, "main_voltage", "Main (battery) voltage", "s16", "scaled", "V", 0.01, dc=V,
       sc=_M, devices=MONITORS),
    _r(0xED8F, "current", "Current", "s16", "scaled", "A", 0.1, dc=A, sc=_M,
       devices=MONITORS),
    _r(0xED8C, "current_high_res", "Current (high resolution)", "s32", "scaled", "A", 0.001,
       dc=A, sc=_M, devices=MONITORS),
    _r(0xED8E, "power", "Power", "s16", "int", "W", dc=W, sc=_M, devices=MONITORS),
    _r(0xEEFF, "consumed_ah", "Consumed Amp Hours", "s32", "scaled", "Ah", 0.1, sc=_M,
       devices=MONITORS),
    _r(0x0FFF, "soc", "State of charge", "u16", "scaled", "%", 0.01, dc="battery", sc=_M,
       devices=MONITORS),
    _r(0x0FFE, "time_to_go", "Time to go", "u16", "int", "min", dc="duration", sc=_M,
       devices=MONITORS),
    _r(0xED7D, "aux_voltage", "Auxiliary (starter) voltage", "s16", "scaled", "V", 0.01,
       dc=V, sc=_M, devices=MONITORS),
    _r(0x0382, "mid_voltage", "Mid-point voltage", "u16", "scaled", "V", 0.01, dc=V, sc=_M,
       devices=MONITORS),
    _r(0x0383, "mid_deviation", "Mid-point deviation", "s16", "scaled", "%", 0.1, sc=_M,
       devices=MONITORS),
    _r(0xEEB6, "synchronised", "Synchronisation state", "u8", "code", codes=BOOL,
       devices=MONITORS),
    # 0x034D inverts the relay; listed so it can be named and denied (HEX.md §3.3, §8).
    _r(0x034D, "relay_invert", "Relay invert", "u8", "code", codes=BOOL, access="RW",
       nv=True, devices=frozenset({BMV})),
    # --- BMV / SmartShunt settings, NV (PM ranges; phase 2 writes only) ------------
    _r(0x1000, "capacity", "Battery capacity", "u16", "int", "Ah", access="RW", nv=True,
       devices=MONITORS),
    _r(0x1001, "charged_voltage", "Charged voltage", "u16", "scaled", "V", 0.1, dc=V,
       access="RW", nv=True, devices=MONITORS),  # 0.1 V on BMV (HEX.md B2)
    _r(0x1002, "tail_current_pct", "Tail current", "u16", "scaled", "%", 0.1, access="RW",
       nv=True, devices=MONITORS),
    _r(0x1003, "charged_detection_time", "Charged detection time", "u16", "int", "min",
       access="RW", nv=True, devices=MONITORS),
    _r(0x1004, "charge_efficiency", "Charge efficiency factor", "u16", "int", "%",
       access="RW", nv=True, devices=MONITORS),
    _r(0x1005, "peukert_exponent", "Peukert exponent", "u16", "scaled", None, 0.01,
       access="RW", nv=True, devices=MONITORS),
    _r(0x1006, "current_threshold", "Current threshold", "u16", "scaled", "A", 0.01,
       access="RW", nv=True, devices=MONITORS),
    _r(0x1007, "ttg_delta_t", "Time-to-go averaging period", "u16", "int", "min",
       access="RW", nv=True, devices=MONITORS),
    _r(0x1008, "discharge_floor", "Discharge floor", "u16", "scaled", "%", 0.1, access="RW",
       nv=True, devices=MONITORS),
    # --- BMV / SmartShunt history H1..H18 (VR, GV recordings, PM) -------------------
    _r(0x0300, "deepest_discharge", "Depth of the deepest discharge", "s32", "scaled", "Ah",
       0.1, sc=_M, devices=MONITORS),
    _r(0x0301, "last_discharge", "Depth of the last discharge", "s32", "scaled", "Ah", 0.1,
       sc=_M, devices=MONITORS),
    _r(0x0302, "average_discharge", "Depth of the average discharge", "s32", "scaled", "Ah",
       0.1, sc=_M, devices=MONITORS),
    _r(0x0303, "charge_cycles", "Number of charge cycles", "s32", devices=MONITORS),
    _r(0x0304, "full_discharges", "Number of full discharges", "s32", devices=MONITORS),
    _r(0x0305, "cumulative_ah", "Cumulative Amp Hours drawn", "s32", "scaled", "Ah", 0.1,
       sc=_M, devices=MONITORS),
    _r(0x0306, "min_voltage", "Minimum main voltage", "s32", "scaled", "V", 0.01, dc=V,
       sc=_M, devices=MONITORS),
    _r(0x0307, "max_voltage", "Maximum main voltage", "s32", "scaled", "V", 0.01, dc=V,
       sc=_M, devices=MONITORS),
    _r(0x0308, "seconds_since_full", "Seconds since last full charge", "s32", "int", "s",
       dc="duration", sc=_M, devices=MONITORS),
    _r(0x0309, "automatic_syncs", "Number of automatic synchronisations", "s32",
       devices=MONITORS),
    _r(0x030A, "low_voltage_alarms", "Number of low main voltage alarms", "s32",
       devices=MONITORS),
    _r(0x030B, "high_voltage_alarms", "Number of high main voltage alarms", "s32",
       devices=MONITORS),
    _r(0x030C, "low_aux_voltage_alarms", "Number of low auxiliary voltage alarms", "s32",
       devices=MONITORS),
    _r(0x030D, "high_aux_voltage_alarms", "Number of high auxiliary voltage alarms", "s32",
       devices=MONITORS),
    _r(0x030E, "min_aux_voltage", "Minimum auxiliary voltage", "s32", "scaled", "V", 0.01,
       dc=V, sc=_M, devices=MONITORS),
    _r(0x030F, "max_aux_voltage", "Maximum auxiliary voltage", "s32", "scaled", "V", 0.01,
       dc=V, sc=_M, devices=MONITORS),
    _r(0x0310, "discharged_energy", "Amount of discharged energy", "u32", "scaled", "kWh",
       0.01, dc="energy", sc=_TI, devices=MONITORS),
    _r(0x0311, "charged_energy", "Amount of charged energy", "u32", "scaled", "kWh", 0.01,
       dc="energy", sc=_TI, devices=MONITORS),
)

REGISTER_BY_ID: dict[int, RegisterSpec] = {spec.id: spec for spec in REGISTERS}
REGISTER_BY_NAME: dict[str, RegisterSpec] = {spec.name: spec for spec in REGISTERS}
# Field specs of the scalar registers, by name: what MQTT discovery and the HA sensors
# read for a TEXT label (fields.FIELD_BY_LABEL), for a HEX column.
HEX_FIELD_BY_NAME: dict[str, FieldSpec] = {
    spec.name: spec.field for spec in REGISTERS if spec.field is not None
}
# Identity registers describe the device (as fields.IDENTITY_LABELS): a device
# registry, not entities.
IDENTITY_REGISTERS = frozenset({"product_block", "app_version", "group_id", "serial_number",
                                "model_name", "capabilities"})

# The columns of a day-record row (a ``history: true`` input, one row per closed device
# day; HEX.md §4.1 fields). An entity of such an input shows the newest closed day:
# "yield yesterday" and the day's totals from the device's own record. No state class:
# the value steps once a day (as TEXT H22/H23 in fields.py).
DAY_RECORD_FIELDS: dict[str, FieldSpec] = {spec.label: spec for spec in (
    FieldSpec("day_seq", "Day sequence number (device day record)", "int"),
    FieldSpec("yield_kwh", "Yield of the last closed day (device record)", "scaled", "kWh",
              ha_device_class="energy"),
    FieldSpec("consumed_kwh", "Load consumption of the last closed day", "scaled", "kWh",
              ha_device_class="energy"),
    FieldSpec("max_power_w", "Maximum power of the last closed day", "int", "W",
              ha_device_class="power"),
    FieldSpec("bulk_min", "Time in bulk on the last closed day", "int", "min",
              ha_device_class="duration"),
    FieldSpec("absorption_min", "Time in absorption on the last closed day", "int", "min",
              ha_device_class="duration"),
    FieldSpec("float_min", "Time in float on the last closed day", "int", "min",
              ha_device_class="duration"),
    FieldSpec("battery_v_max", "Maximum battery voltage of the last closed day", "scaled",
              "V", ha_device_class="voltage"),
    FieldSpec("battery_v_min", "Minimum battery voltage of the last closed day", "scaled",
              "V", ha_device_class="voltage"),
    FieldSpec("battery_i_max", "Maximum battery current of the last closed day", "scaled",
              "A", ha_device_class="current"),
    FieldSpec("pv_v_max", "Maximum panel voltage of the last closed day", "scaled", "V",
              ha_device_class="voltage"),
    FieldSpec("errors", "Errors of the last closed day (ERR codes)", "text"),
)}

HISTORY_TOTAL = 0x104F
HISTORY_DAY0 = 0x1050
HISTORY_DAYS = 31  # 0x1050 (today) .. 0x106E (30 days ago), VR

# Product id ranges -> device family (tables.PRODUCTS; HEX.md B5: HEX only for BMV PIDs
# 0x203-0x205 and 0xA38x; BMV-60x has no PID and cannot take HEX).
FAMILY_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0203, 0x0205, BMV), (0xA381, 0xA383, BMV), (0xA389, 0xA38F, SHUNT),
    (0x0300, 0x0300, MPPT), (0xA040, 0xA0FF, MPPT), (0xA100, 0xA1FF, MPPT),
)


def family_of(pid: int) -> str | None:
    """Return the device family of a product id, or None when HEX registers are unknown."""
    for low, high, family in FAMILY_RANGES:
        if low <= pid <= high:
            return family
    return None


def lookup(key: str) -> RegisterSpec | None:
    """Return the register named ``key`` or with id ``0xNNNN`` (None when unknown)."""
    if key.lower().startswith("0x"):
        try:
            return REGISTER_BY_ID.get(int(key, 16))
        except ValueError:
            return None
    return REGISTER_BY_NAME.get(key)


def _check_table() -> None:
    """Fail at import on a duplicate id or name (a table typo must not pass silently)."""
    if len(REGISTER_BY_ID) != len(REGISTERS) or len(REGISTER_BY_NAME) != len(REGISTERS):
        raise ValueError("duplicate register id or name in hex_registers.REGISTERS")


_check_table()
