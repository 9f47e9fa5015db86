"""The HEX codec against recorded real traffic, every reply shape, every not-available value.

Recorded sessions: koestler/go-victron (MIT), ``vedirectapi/registerApi_test.go``
(sessions "Solar Lab" = SmartSolar MPPT 100/30 0xA056 FW 1.61, "Solar Piegn Main" =
SmartSolar MPPT 250/70 rev2 0xA069, "BMV Piegn Main" = SmartShunt 500A/50mV 0xA389)
and ``vedirect/vedirect_test.go``. The request/reply strings below are those
devices' bytes; the expected values are what the register table (VR scales)
makes of them, not GV's output (GV prints 382.2 °C and 327.67 V for "not available").
Also HEX.md §2.3/§4.2 (digitalprj/vedirect-2mqtt4j ``testdata_mppt_01.bin``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vemonitor.vedirect import hex as h
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.events import Block, HexMessage
from vemonitor.vedirect.fields import DECODERS, Code, Flags
from vemonitor.vedirect.hex_registers import (
    HEX_FIELD_BY_NAME,
    REGISTER_BY_ID,
    REGISTER_BY_NAME,
    REGISTERS,
    family_of,
    lookup,
    type_na,
)

# (request, reply, register name, value in user units) -- GV registerApi_test.go "Solar Lab".
SOLAR_LAB = [
    (":7F0ED0071", ":7F0ED002C0144", "battery_max_current", 30.0),
    (":7FBED0066", ":7FBED0058020C", "absorption_time_limit", 6.0),
    (":7F7ED006A", ":7F7ED00A005C5", "absorption_voltage", 14.4),
    (":7F6ED006B", ":7F6ED00640502", "float_voltage", 13.8),
    (":7F4ED006D", ":7F4ED00540613", "equalisation_voltage", 16.2),
    (":7F2ED006F", ":7F2ED00ACF9CA", "temperature_compensation", -16.2),
    (":7EFED0072", ":7EFED000C66", "battery_voltage_setting", 12),
    (":7E7ED007A", ":7E7ED00140066", "tail_current", 2.0),
    (":72EED0033", ":72EED0028000B", "rebulk_offset", 0.4),
    (":7E0ED0081", ":7E0ED00F4018C", "low_temperature_cutoff", 5.0),
    (":7ECED0075", ":7ECED00FFFF77", "battery_temperature", None),  # GV: "382.2 °C"
    (":7DFED0082", ":7DFED002C0155", "charger_max_current", 30.0),
    (":7DDED0084", ":7DDED00D734000079", "yield_system", 135.27),
    (":7DCED0085", ":7DCED00C3120000B0", "yield_user", 48.03),
    (":7DBED0086", ":7DBED00680B13", "internal_temperature", 29.2),
    (":7D7ED008A", ":7D7ED0000008A", "charger_current", 0.0),
    (":7D5ED008C", ":7D5ED00A404E4", "charger_voltage", 11.88),
    (":7D3ED008E", ":7D3ED0000008E", "yield_today", 0.0),
    (":7BCED00A5", ":7BCED0000000000A5", "panel_power", 0.0),
    (":7BBED00A6", ":7BBED000100A5", "panel_voltage", 0.01),
    (":7B8ED00A9", ":7B8ED0074270E", "panel_max_voltage", 101.0),
    (":70A010043", ":70A01004851313934393952484335000000000088", "serial_number", "HQ19499RHC5"),
    (":70B010042", ":70B0100536D617274536F6C61722043686172676572204D505054203130302F333000BA",
     "model_name", "SmartSolar Charger MPPT 100/30"),
    (":70002004C", ":7000200014B", "device_mode", 1),
    (":70102004B", ":7010200004B", "device_state", 0),
    (":7F1ED0070", ":7F1ED00036D", "battery_type", 3),
    (":7DAED0087", ":7DAED000087", "charger_error", 0),
    (":7B3ED00AE", ":7B3ED0000AE", "tracker_mode", 0),
    (":707020045", ":70702000100000044", "off_reason", 1),
    (":704010049", ":70401000A3F", "group_id", 10),
]
# GV "Solar Piegn Main" (0xA069): a real battery temperature, and async lines before replies.
PIEGN_MAIN = [
    (":7ECED0075", ":7ECED00316FD5", "battery_temperature", 11.5),  # 28465 * 0.01 K
    (":7F0ED0071", ":7F0ED00BC02B3", "battery_max_current", 70.0),
    (":7D3ED008E", ":7D3ED0014007A", "yield_today", 0.2),
    (":7D2ED008F", ":7D2ED008D0002", "max_power_today", 141),
    (":7D1ED0090", ":A032000FF7FAA\n:7D1ED0043004D", "yield_yesterday", 0.67),
    (":7D0ED0091", ":A2720007837000055\n:7D0ED0042014E", "max_power_yesterday", 322),
    (":7BCED00A5", ":A132000FFFFFF7F9C\n:7BCED0095360000DA", "panel_power", 139.73),
    (":7BDED00A4", ":ABBED00C52AB4\n:ABCED008B360000E1\n:AD7ED00310056\n:7BDED000C0098",
     "panel_current", 1.2),
    (":7B3ED00AE", ":7B3ED0002AC", "tracker_mode", 2),
]
# GV "BMV Piegn Main": a SmartShunt (0xA389, ping 0x4414).
SHUNT_MAIN = [
    (":72001002D", ":7200100732D3E004F", "uptime", 4074867),
    (":78EED00D3", ":78EED00FCFFD8", "power", -4),
    (":78CED00D5", ":78CED006AFFFFFF6E", "current_high_res", -0.15),
    (":78DED00D4", ":78DED006D0A5D", "main_voltage", 26.69),
    (":77DED00E4", ":77DED00FF7F66", "aux_voltage", None),  # GV: "327.67 V"
    (":7FFEE0061", ":7FFEE00FAFAFFFF6F", "consumed_ah", -128.6),
    (":7FF0F0040", ":7FF0F004F1BD6", "soc", 69.91),
    (":7FE0F0041", ":7FE0F004038C9", "time_to_go", 14400),
    (":7ECED0075", ":7ECED00FFFF77", "battery_temperature", None),
    (":7820300C9", ":7820300FFFFCB", "mid_voltage", None),  # GV: "655.35 V"
    (":7830300C8", ":7830300FF7F4A", "mid_deviation", None),  # GV: "3276.7 %"
    (":70003004B", ":70003003EF0FFFF1F", "deepest_discharge", -403.4),
    (":705030046", ":70503004F11FDFFEA", "cumulative_ah", -19217.7),
    (":706030045", ":7060300C20800007B", "min_voltage", 22.42),
    (":708030043", ":70803008FF70300BA", "seconds_since_full", 259983),
    (":71003003B", ":710030048C600002D", "discharged_energy", 507.6),
    (":71103003A", ":711030050C9000021", "charged_energy", 515.36),
    (":70A010043", ":70A01004851323131374E54565834000000000000000000000000005B",
     "serial_number", "HQ2117NTVX4"),
    (":70B010042", ":70B0100424D562D536D6172745368756E7420353030412F35306D5600CA",
     "model_name", "BMV-SmartShunt 500A/50mV"),
    (":7B6EE00AA", ":7B6EE0001A9", "synchronised", 1),
]
RECORDED = SOLAR_LAB + PIEGN_MAIN + SHUNT_MAIN


def _replies(text: str) -> list[h.Response]:
    """Return the parsed lines of a recorded reply string (one or more lines)."""
    return [h.parse_response(line[1:].encode()) for line in text.split("\n")]


@pytest.mark.parametrize(("request_line", "reply", "name", "expected"), RECORDED)
def test_recorded_get_is_encoded_and_decoded(request_line: str, reply: str, name: str,
                                             expected: object) -> None:
    """Our Get line is byte-identical to the recorded one; the matching reply decodes right."""
    spec = REGISTER_BY_NAME[name]
    assert h.encode_get(spec.id) == request_line.encode() + b"\n"
    messages = _replies(reply)
    matching = [m for m in messages if isinstance(m, h.RegisterMessage)
                and m.code == h.GET_REPLY and m.register == spec.id]
    assert len(matching) == 1  # async lines before it are never taken as the reply
    reading = h.reading_of(matching[0])
    assert reading.error == ""
    assert reading.value == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_async_lines_between_request_and_reply_are_register_messages() -> None:
    """GV "Solar Piegn Main": :A lines arrive before the reply; each is an Async message."""
    messages = _replies(":ABBED00C52AB4\n:ABCED008B360000E1\n:AD7ED00310056\n:7BDED000C0098")
    assert [m.code for m in messages] == [h.ASYNC] * 3 + [h.GET_REPLY]
    values = {h.reading_of(m).name: h.reading_of(m).value for m in messages}
    assert values == {"panel_voltage": 109.49, "panel_power": 139.63, "charger_current": 4.9,
                      "panel_current": 1.2}
    network = h.reading_of(_replies(":A2720007837000055")[0])
    assert (network.name, network.value) == ("network_input_power", 142.0)


def test_identity_commands_recorded() -> None:
    """Ping, product id and 0x0100 as recorded by GV (MPPT 100/30, SmartShunt)."""
    assert h.encode(h.PING) == b":154\n"
    assert h.encode(h.PRODUCT_ID) == b":451\n"
    assert h.encode(h.APP_VERSION) == b":352\n"
    assert _replies(":51641F9") == [h.WordMessage(h.PING_REPLY, 0x4116)]
    assert _replies(":51444F8") == [h.WordMessage(h.PING_REPLY, 0x4414)]
    assert _replies(":156A05E") == [h.WordMessage(h.DONE, 0xA056)]
    assert _replies(":189A328") == [h.WordMessage(h.DONE, 0xA389)]
    block = h.reading_of(_replies(":70001000089A3FE23")[0]).value
    assert block == h.ProductBlock(0, 0xA389, 0xFE)  # not GV's u32 4272130304


def test_unknown_register_reply_has_no_value() -> None:
    """GV vedirect_test.go: Get 0x7777 -> :77777015F, flags 1, no value bytes."""
    assert h.encode_get(0x7777) == b":777770060\n"
    (msg,) = _replies(":77777015F")
    assert isinstance(msg, h.RegisterMessage)
    assert (msg.register, msg.flags, msg.value, msg.refused) == (0x7777, 1, b"", True)
    assert h.reading_of(msg).error == "unknown id"


@pytest.mark.parametrize(("flags", "error", "refused"), [
    (1, "unknown id", True), (2, "not supported", True), (4, "parameter error", False),
    (0x80, "flags 0x80", False), (0x03, "unknown id, not supported", True)])
def test_every_flag_is_an_error(flags: int, error: str, refused: bool) -> None:
    """Any non-zero flag means no value (GV ignores unknown flags: HEX.md §2.2)."""
    line = h.encode_register_reply(h.GET_REPLY, 0xEDF0, flags, b"\x96\x00")
    (msg,) = _replies(line.decode().strip())
    reading = h.reading_of(msg)  # type: ignore[arg-type]
    assert (reading.value, reading.error, msg.refused) == (None, error, refused)  # type: ignore[union-attr]


def test_worked_examples_of_hex_md() -> None:
    """HEX.md §2.3: every frame there, built by our encoder."""
    assert h.encode_set(0x2015, (125).to_bytes(2, "little")) == b":81520007D009B\n"
    assert h.encode_set(0xEDAB, b"\x04") == b":8ABED0004B1\n"
    assert h.encode_set(0xEDAB, b"\x00") == b":8ABED0000B5\n"
    assert h.encode_set(0x0200, b"\x01") == b":8000200014A\n"
    assert h.encode_set(0x034E, b"\x01") == b":84E030001FB\n"
    assert h.encode(h.RESTART) == b":64F\n"
    for reg, line in [(0x0100, ":70001004D"), (0x0140, ":74001000D"), (0x104F, ":74F1000EF"),
                      (0x1050, ":7501000EE"), (0x106E, ":76E1000D0"), (0x2015, ":715200019"),
                      (0xEDAB, ":7ABED00B6"), (0x0202, ":70202004A"), (0xEDCE, ":7CEED0093")]:
        assert h.encode_get(reg) == line.encode() + b"\n"
    spec = REGISTER_BY_NAME["charge_current_limit"]
    assert h.encode_value(spec, 12.5) == (125).to_bytes(2, "little")
    assert h.encode_value(REGISTER_BY_NAME["battery_max_current"], 15.0) == b"\x96\x00"


def test_error_replies() -> None:
    """:4AAAAFD is a frame error; 3 is unknown command (not Done, not ping)."""
    (frame_error,) = _replies(":4AAAAFD")
    assert isinstance(frame_error, h.ErrorMessage) and frame_error.frame_error
    assert h.encode(h.ERROR, b"\xaa\xaa") == h.FRAME_ERROR_LINE
    unknown = h.parse_response(h.encode(h.UNKNOWN_COMMAND, b"\x05\x00")[1:-1])
    assert isinstance(unknown, h.ErrorMessage) and not unknown.frame_error
    odd = h.parse_response(b"305004D")  # pmarches' unexplained frame: code 3 = unknown command
    assert odd == h.ErrorMessage(3, b"\x05\x00")
    assert h.parse_response(h.encode(0xB, b"\x01")[1:-1]) == h.Frame(0xB, b"\x01")


@pytest.mark.parametrize(("body", "reason"), [
    (b"4AAAAFE", "check byte"), (b"154A", "not an odd count of hex digits"),
    (b"", "not an odd count of hex digits"), (b"1", "not an odd count of hex digits"),
    (b"7F0ED00G1", "not an odd count of hex digits"), (b"A" * 101, "too long"),
    (b"A07020000000", "not an odd count of hex digits"),  # pmarches' truncated frame
    (b"715", "register payload shorter than 3 bytes")])
def test_malformed_lines(body: bytes, reason: str) -> None:
    """Bad lines are reported with a reason, never raised."""
    if reason.startswith("register"):
        body = h.encode(h.GET_REPLY, b"\x15")[1:-1]
    result = h.parse_response(body)
    assert isinstance(result, h.Malformed) and result.reason == reason


def test_lowercase_and_stray_cr_are_accepted() -> None:
    """HEX.md §2.1: accept lowercase digits and a '\\r' before '\\n'."""
    assert h.parse_response(b"7f0ed009600db\r") == h.RegisterMessage(7, 0xEDF0, 0, b"\x96\x00")
    assert h.parse_request(b"154\r") == h.Command(h.PING)


def test_requests_parse_on_the_device_side() -> None:
    """The simulator's direction: commands, Get, Set, and what a device must refuse."""
    assert h.parse_request(b"7F0ED0071") == h.RegisterMessage(7, 0xEDF0, 0, b"")
    assert h.parse_request(b"81520007D009B") == h.RegisterMessage(8, 0x2015, 0, b"\x7d\x00")
    # VC 49788: ':8ABED00B5' lacks the flags byte, so its last byte is read as flags: no value.
    assert h.parse_request(b"8ABED00B5") == h.Malformed("set without a value", b"8ABED00B5")
    assert isinstance(h.parse_request(h.encode(0x9)[1:-1]), h.Malformed)
    assert isinstance(h.parse_request(h.encode(h.GET, b"\xf0\xed\x00\x01")[1:-1]), h.Malformed)


def test_line_splitter_resyncs_and_caps() -> None:
    """GV recorded a cut frame '30084\\n' before two good lines; ':' inside a line restarts."""
    splitter = h.LineSplitter()
    out = splitter.feed(b"30084\n:AD5ED009309ED\n:7DBED0")
    out += splitter.feed(b"0B608C8\r\n:A07020000000:154\n" + b":" + b"A" * 150 + b"\n:352\n")
    bodies = [o for o in out if isinstance(o, bytes)]
    bad = [o for o in out if isinstance(o, h.Malformed)]
    assert bodies == [b"AD5ED009309ED", b"7DBED00B608C8\r", b"154", b"352"]
    assert [b.reason for b in bad] == ["cut by ':'", "too long"]


def test_text_decoder_hands_over_hex_lines_after_a_checksum_byte() -> None:
    """GV: a TEXT block, its binary checksum byte 0x87, then the reply on the same line."""
    stream = (b"\r\nPID\t0xA069\r\nFW\t161\r\nSER#\tHQ2104VESU7\r\nV\t27350\r\nI\t5100\r\nVPV\t"
              b"106630\r\nPPV\t142\r\nCS\t3\r\nMPPT\t2\r\nOR\t0x00000000\r\nERR\t0\r\nLOAD\tOFF\r\n"
              b"Relay\tOFF\r\nH19\t62753\r\nH20\t20\r\nH21\t141\r\nH22\t67\r\nH23\t322\r\nHSDS\t259"
              b"\r\nChecksum\t\x87:7E6ED0000007B\n")
    events = Decoder().feed(stream)
    assert isinstance(events[0], Block) and events[0].fields["HSDS"] == "259"
    assert isinstance(events[1], HexMessage)
    assert h.parse_response(events[1].raw) == h.RegisterMessage(7, 0xEDE6, 0, b"\x00\x00")


# --------------------------------------------------------------- history records
# HEX.md §4.2: SmartSolar 100/20 48V (0xA060, FW 1.59), digitalprj/vedirect-2mqtt4j
# testdata_mppt_01.bin; the same capture's TEXT says H20 81, H21 247, HSDS 195, H19 6262.
DAY_LINE = ":A501000005100000001000000670B84090000000000140180006000F700000055007911C3000C"


def test_recorded_day_record_decodes_as_its_text_block_says() -> None:
    """Yield 0.81 kWh (H20 81), max power 247 W (H21), day 195 (HSDS), VR layout."""
    (msg,) = _replies(DAY_LINE)
    reading = h.reading_of(msg)  # type: ignore[arg-type]
    assert reading.name == "history_day_00" and msg.code == h.ASYNC  # type: ignore[union-attr]
    assert reading.value == h.DayRecord(
        version=0, yield_kwh=0.81, consumed_kwh=0.01, battery_v_max=29.19, battery_v_min=24.36,
        error_db=0, errors=(0, 0, 0, 0), bulk_min=276, absorption_min=128, float_min=96,
        max_power_w=247, battery_i_max=8.5, pv_v_max=44.73, day_seq=195)


def _total_bytes(days: int = 30) -> bytes:
    """Return a 34-byte total record as devices send it (HEX.md §4.2 decode of :A4F10)."""
    return (b"\x01\x00\x00\x00\x00\x00" + (6262).to_bytes(4, "little") * 2
            + (4791).to_bytes(2, "little") + (2934).to_bytes(2, "little") + bytes([days])
            + (2436).to_bytes(2, "little") + b"\xff" * 13)


def test_total_record_decodes_and_keeps_the_undocumented_tail() -> None:
    """HEX.md §4.2: total yield 62.62 kWh (H19 6262), 47.91 V, 29.34 V, 30 days."""
    line = h.encode_register_reply(h.ASYNC, 0x104F, 0, _total_bytes())
    reading = h.reading_of(h.parse_response(line[1:-1]))  # type: ignore[arg-type]
    total = reading.value
    assert isinstance(total, h.TotalRecord)
    assert (total.yield_user_kwh, total.yield_system_kwh, total.pv_v_max, total.battery_v_max,
            total.days) == (62.62, 62.62, 47.91, 29.34, 30)
    assert len(total.extra) == 15 and total.extra[:2] == (2436).to_bytes(2, "little")


def test_not_available_day_fields_are_none() -> None:
    """Every VR 'not available' value of a day record is an absent reading."""
    data = bytearray(34)
    data[1:5] = data[5:9] = b"\xff" * 4
    data[9:13] = b"\xff" * 4
    data[13] = 0xFF
    data[18:24] = b"\xff" * 6
    data[24:28] = b"\xff" * 4
    data[28:32] = b"\xff" * 4
    day = h.decode_day(bytes(data))
    assert day is not None
    assert all(getattr(day, name) is None for name in (
        "yield_kwh", "consumed_kwh", "battery_v_max", "battery_v_min", "error_db", "bulk_min",
        "absorption_min", "float_min", "max_power_w", "battery_i_max", "pv_v_max"))
    assert h.decode_day(bytes(33)) is None and h.decode_total(bytes(18)) is None
    short = h.reading_of(h.RegisterMessage(h.GET_REPLY, 0x1051, 0, bytes(20)))
    assert short.value is None and "do not fit history_day" in short.error


# ------------------------------------------------------------ the register table
NUMERIC = [spec for spec in REGISTERS if spec.field is not None and spec.field.kind != "text"]


@pytest.mark.parametrize("spec", [s for s in NUMERIC if s.na is not None], ids=lambda s: s.name)
def test_every_not_available_value_is_absent(spec: object) -> None:
    """HEX.md Q6: the type's not-available value decodes to None for every register."""
    from vemonitor.vedirect.hex_registers import RegisterSpec
    assert isinstance(spec, RegisterSpec) and spec.na is not None
    assert spec.na == type_na(spec.wire)  # every default is the type's extreme (VR)
    raw = spec.na.to_bytes(spec.size or 0, "little")
    reading = h.reading_of(h.RegisterMessage(h.GET_REPLY, spec.id, 0, raw))
    assert (reading.value, reading.error) == (None, "")
    one = h.reading_of(h.RegisterMessage(h.GET_REPLY, spec.id, 0, h.pack_int(spec.wire, 1)))
    assert one.value is not None


def test_not_available_exceptions_keep_their_extreme() -> None:
    """0xEDF1 battery type 0xFF means user defined (VR); bitmasks may have every bit set."""
    assert h.decode_value(REGISTER_BY_NAME["battery_type"], b"\xff") == Code(0xFF, "User defined")
    flags = h.decode_value(REGISTER_BY_NAME["off_reason"], b"\xff\xff\xff\xff")
    assert isinstance(flags, Flags) and int(flags) == 0xFFFFFFFF


def test_scalars_use_the_text_field_machinery() -> None:
    """Every scalar register has a FieldSpec named like it, decoded by fields.DECODERS."""
    for spec in REGISTERS:
        if spec.field is None:
            assert spec.wire in ("product", "u8pair", "history_day", "history_total")
            continue
        assert spec.field.label == spec.name and spec.field.kind in DECODERS
        assert HEX_FIELD_BY_NAME[spec.name] is spec.field
    temp = HEX_FIELD_BY_NAME["battery_temperature"]
    assert (temp.unit, temp.ha_device_class, temp.ha_state_class) == (
        "°C", "temperature", "measurement")
    state = h.decode_value(REGISTER_BY_NAME["device_state"], b"\x03")
    assert isinstance(state, Code) and state.name == "Bulk"
    assert h.decode_value(REGISTER_BY_NAME["app_version"], b"\xff\x59\x01") == "1.59"


def test_table_rows_are_consistent() -> None:
    """Ids and names unique; NV registers are writable; lookups by name and by 0xID agree."""
    assert len(REGISTER_BY_ID) == len(REGISTERS) == len(REGISTER_BY_NAME)
    assert all(spec.access in ("R", "RW") for spec in REGISTERS)
    assert all(spec.writable for spec in REGISTERS if spec.nv)
    assert lookup("0xEDF0") is lookup("0xedf0") is lookup("battery_max_current")
    assert lookup("0xZZ") is None and lookup("nope") is None
    assert [family_of(p) for p in (0x203, 0xA389, 0xA053, 0xA381, 0x0300, 0x1234)] == [
        "bmv", "shunt", "mppt", "bmv", "mppt", None]


def test_width_mismatch_is_an_error_not_a_value() -> None:
    """A 1-byte reply for a u16 register is reported, not decoded as something else."""
    reading = h.reading_of(h.RegisterMessage(h.GET_REPLY, 0xEDF0, 0, b"\x96"))
    assert reading.value is None and "u16 needs 2" in reading.error
    with pytest.raises(ValueError):
        h.encode_value(REGISTER_BY_NAME["charge_current_limit"], float("nan"))
    with pytest.raises(ValueError):
        h.encode_value(REGISTER_BY_NAME["charge_current_limit"], 7000.0)  # 70000 > u16


# ------------------------------------------------------------------------ fuzz
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=10))
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    """Splitter + parsers + reading_of never raise on any bytes, however they are cut."""
    splitter = h.LineSplitter()
    edges = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in zip(edges, edges[1:]):
        for item in splitter.feed(data[a:b]):
            if isinstance(item, bytes):
                assert len(item) <= h.MAX_LINE + 1
                msg = h.parse_response(item)
                h.parse_request(item)
                if isinstance(msg, h.RegisterMessage):
                    h.describe(h.reading_of(msg).value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REGISTERS), st.binary(max_size=40), st.integers(0, 255))
def test_any_value_bytes_for_any_register_never_raise(spec: object, value: bytes,
                                                      flags: int) -> None:
    """A valid frame with any value bytes and flags decodes to a value or an error."""
    from vemonitor.vedirect.hex_registers import RegisterSpec
    assert isinstance(spec, RegisterSpec)
    line = h.encode_register_reply(h.GET_REPLY, spec.id, flags, value)
    msg = h.parse_response(line[1:-1])
    assert isinstance(msg, h.RegisterMessage)
    reading = h.reading_of(msg)
    assert (reading.value is None) or reading.error == ""
