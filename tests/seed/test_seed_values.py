"""Contract: values typed as vemonitor_m8 wrote them (legacy serial inputs).

Expected values were produced by the seed's own code (vemonitor_m8/core/data_checker.py,
DataChecker.check_input_columns with its victronDeviceData.yaml points, and ve_utils'
UType.format_by_type) from the same wire text; CI cannot run that code, so they are
copied here. Rule copied: float -> round(float(wire), 3) then * floatpoint rounded to 3;
int -> int(wire); intBool -> 1 for ON else 0; str -> the wire text.
"""

from __future__ import annotations

import pytest

from vemonitor.seed_values import seed_value, seed_values
from vemonitor.vedirect.fields import decode_fields

# (label, wire text, what the seed wrote)
SEED_WROTE = [
    ("V", "12800", 12.8), ("V", "0", 0.0), ("I", "-1000", -1.0), ("I", "21212", 21.212),
    ("P", "-12", -12.0), ("P", "295", 295.0), ("CE", "-5000", -5.0), ("SOC", "876", 87.6),
    ("SOC", "1000", 100.0), ("TTG", "-1", -1), ("Alarm", "OFF", 0), ("Alarm", "ON", 1),
    ("Relay", "OFF", 0), ("Relay", "ON", 1), ("LOAD", "ON", 1), ("AR", "5", 5),
    ("H2", "-82854", -82.854), ("H4", "12", 12), ("H9", "86400", 86400),
    ("H17", "6843", 68.43), ("H18", "8527", 85.27), ("H19", "1234", 12.34),
    ("H21", "345", 345), ("H23", "300", 300), ("T", "-3", -3), ("PPV", "120", 120),
    ("VPV", "35123", 35.123), ("IL", "300", 0.3), ("WARN", "4", 4),
    # The seed's own scales where the protocol's differ (kept: its consumers read these).
    ("DM", "-12", -0.012), ("CS", "3", 0.003), ("ERR", "17", 0.017), ("HSDS", "12", 0.012),
    ("PID", "0x203", "0x203"), ("PID", "0xA042", "0xA042"), ("FW", "159", "159"),
    ("SER#", "HQ1234ABCDE", "HQ1234ABCDE"), ("AC_OUT_V", "23001", 230.01),
    ("AC_OUT_I", "12", 1.2),
]


@pytest.mark.parametrize(("label", "wire", "expected"), SEED_WROTE)
def test_value_typed_as_the_seed_wrote_it(label: str, wire: str, expected: object) -> None:
    """Same value and same JSON type (never bool, float where the seed had float)."""
    value = seed_values(decode_fields({label: wire}))[label]
    assert value == expected
    assert type(value) is type(expected)


def test_labels_the_seed_did_not_know_keep_vemonitor_values() -> None:
    """MPPT, OR, FWE... had no seed data point: vemonitor's value (codes as integers)."""
    values = seed_values(decode_fields({"MPPT": "2", "OR": "0x00000001", "FWE": "0316FF"}))
    assert values == {"MPPT": 2, "OR": 1, "FWE": "3.16"}


def test_missing_and_undecodable_values_are_kept_not_guessed() -> None:
    """'---' stays null; text that did not decode is passed on as it came."""
    assert seed_value("V", None) is None
    assert seed_value("V", "garbage") == "garbage"
