"""Line protocol encoding: escaping, typed fields, tags, precision (docs.influxdata.com rules)."""

from __future__ import annotations

from collections import Counter

from vemonitor_integrations.influxdb2.line import encode_point, field_value, split_row
from vemonitor_integrations.influxdb2.schema import DEFAULT_TAG_COLUMNS

from vemonitor.model import Row


def test_fields_are_typed_ints_with_i_booleans_floats_and_strings_only_when_asked() -> None:
    """Integers end in i, booleans are true/false, NaN is left out, text only when asked."""
    assert field_value(12, False) == "12i"
    assert field_value(True, False) == "true"
    assert field_value(12.5, False) == "12.5"
    assert field_value(float("nan"), False) is None
    assert field_value("Bulk", False) is None
    assert field_value('say "hi" \\', True) == '"say \\"hi\\" \\\\"'


def test_point_escapes_measurement_tags_and_field_keys_and_sorts_tags() -> None:
    """Commas, spaces and '=' are escaped where line protocol says; tags come sorted."""
    skipped: Counter[str] = Counter()
    line = encode_point("my meas,x", {"site": "a b", "node": "n=1", "empty": ""},
                        {"V": 12.5, "I a": 3, "CS": "3"}, frozenset(), 1, 1700000000.4, skipped)
    assert line == r"my\ meas\,x,node=n\=1,site=a\ b V=12.5,I\ a=3i 1700000000"
    assert skipped == Counter({"text": 1})


def test_precision_scales_and_rounds_the_row_time() -> None:
    """Milliseconds keep the fraction; seconds round it (a resend gives the same time)."""
    skipped: Counter[str] = Counter()
    assert encode_point("m", {}, {"v": 1}, frozenset(), 1000, 1.2345, skipped) == "m v=1i 1234"
    assert encode_point("m", {}, {"v": 1}, frozenset(), 1, 1.6, skipped) == "m v=1i 2"


def test_a_row_without_writable_fields_gives_no_line() -> None:
    """A point needs at least one field: only-text rows are not written."""
    assert encode_point("m", {}, {"CS": "x", "V": None}, frozenset(), 1, 1.0, Counter()) is None


def test_identity_columns_become_tags_under_label_safe_keys() -> None:
    """SER# and PID of a row are the serial/pid tags (no '#': PromQL label names)."""
    row = Row(1.0, "bmv", {"SER#": "HQ1", "PID": "0x203", "V": 12.1, "site": "boat"})
    tags, fields = split_row(row, DEFAULT_TAG_COLUMNS, {"site": "home", "node": "bmv"})
    assert tags == {"serial": "HQ1", "pid": "0x203", "site": "boat", "node": "bmv"}
    assert fields == {"V": 12.1}
