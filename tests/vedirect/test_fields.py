"""The field table decodes wire values to typed values in user units."""

from __future__ import annotations

import json

import pytest

from vemonitor.vedirect.fields import FIELD_BY_LABEL, FIELDS, Code, Flags, decode_value, jsonable


@pytest.mark.parametrize(("label", "raw", "expected"), [
    ("V", "12065", 12.065), ("I", "-7625", -7.625), ("P", "-92", -92), ("CE", "-65473", -65.473),
    ("SOC", "839", 83.9), ("TTG", "-1", -1), ("H17", "6843", 68.43), ("H19", "8272", 82.72),
    ("AC_OUT_V", "23000", 230.0), ("AC_OUT_I", "15", 1.5), ("DC_IN_V", "1350", 13.5),
    ("T", "---", None), ("CE", "---", None), ("Alarm", "OFF", False), ("Relay", "On", True),
    ("FW", "0308", "3.08"), ("FW", "156", "1.56"), ("FWE", "316FF", "3.16"),
    ("FWE", "31604", "3.16-04"), ("SER#", "HQ1411MYIKN", "HQ1411MYIKN"),
    ("BMV", "SmartShunt 500A/50mV", "SmartShunt 500A/50mV"), ("NEWLBL", "x y", "x y"),
])
def test_decode_value(label: str, raw: str, expected: object) -> None:
    """Each field decodes to its documented unit and type."""
    value = decode_value(label, raw)
    assert value == expected
    assert type(value) is type(expected)


def test_codes_keep_raw_code_and_name() -> None:
    """CS/ERR/MPPT/MON/PID give an int code that also carries its name; JSON keeps the code."""
    cs = decode_value("CS", "3")
    assert isinstance(cs, Code) and cs == 3 and cs.name == "Bulk"
    assert decode_value("ERR", "33").name == "Input voltage too high (solar panel)"
    assert decode_value("MON", "-9").name == "Solar charger"
    assert decode_value("CS", "99").name == "unknown 99"
    assert decode_value("PID", "0xA3F0").name == "Orion XS 12V/12V-50A"
    assert decode_value("PID", "0xBEEF").name == "unknown 0xBEEF"
    assert json.dumps({"CS": jsonable(cs)}) == '{"CS": 3}'


def test_bitmasks_name_their_bits() -> None:
    """OR is 0x%08X hex, AR decimal; both name the bits set."""
    off = decode_value("OR", "0x00000005")
    assert isinstance(off, Flags) and off == 5
    assert off.names == ("No input power", "Switched off (device mode register)")
    assert decode_value("AR", "0").names == ()
    assert decode_value("AR", "66").names == ("High voltage", "High temperature")


def test_home_assistant_classes_follow_protocol_table() -> None:
    """Energy totals are total_increasing kWh; voltages measurement V; enums have no unit."""
    for label in ("H17", "H18", "H19", "H20"):
        spec = FIELD_BY_LABEL[label]
        assert (spec.ha_device_class, spec.unit, spec.ha_state_class) == (
            "energy", "kWh", "total_increasing")
    # Once-a-day values (yesterday's yield and maximum power): no state class, so the
    # Energy dashboard and long-term statistics never take a daily step as new energy.
    assert (FIELD_BY_LABEL["H22"].ha_device_class, FIELD_BY_LABEL["H22"].ha_state_class) == (
        "energy", None)
    assert (FIELD_BY_LABEL["H23"].ha_device_class, FIELD_BY_LABEL["H23"].ha_state_class) == (
        "power", None)
    assert FIELD_BY_LABEL["SOC"].ha_device_class == "battery"
    assert FIELD_BY_LABEL["CE"].ha_device_class is None and FIELD_BY_LABEL["CE"].unit == "Ah"
    assert FIELD_BY_LABEL["CS"].ha_device_class == "enum" and FIELD_BY_LABEL["CS"].unit is None
    assert len({spec.label for spec in FIELDS}) == len(FIELDS)
