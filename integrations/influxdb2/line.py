"""InfluxDB line protocol: one point per row, tags for identity, typed fields.

``measurement,tag=v,... field=v,... timestamp`` (docs.influxdata.com, "Line
protocol"): measurement escapes ``,`` and space; tag keys/values and field keys
escape ``,``, ``=`` and space; string field values are double-quoted with ``"``
and ``\\`` escaped; integers end in ``i``; booleans are ``true``/``false``; a NaN or
infinity cannot be written and is left out. Tags are sorted by key (the order
InfluxDB stores, and the cheapest for it to parse). A point is identified by
measurement + tag set + timestamp, so writing a row twice stores it once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vemonitor.api import Row

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": " "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " "})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": " "})


@dataclass
class Encoded:
    """The lines of a batch and what was left out (counted per reason)."""

    lines: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def body(self) -> bytes:
        """Return the request body (newline-terminated lines, UTF-8)."""
        return ("\n".join(self.lines) + "\n").encode("utf-8") if self.lines else b""


def field_value(value: Any, as_string: bool) -> str | None:
    """Return a field value in line protocol, or None when it cannot or should not be written."""
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str) and as_string:
        return f'"{value.translate(_STRING)}"'
    return None


def timestamp(time: float, per_second: int) -> int:
    """Return a row time in the precision's unit (rounded, so a resend gives the same)."""
    return round(time * per_second)


def encode_point(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any],
                 string_fields: frozenset[str], per_second: int, time: float,
                 skipped: Counter[str]) -> str | None:
    """Return one point's line, or None when it has no field to write."""
    parts = []
    for key, value in fields.items():
        text = field_value(value, key in string_fields)
        if text is None:
            skipped["text" if isinstance(value, str) else "null_or_nan"] += 1
            continue
        parts.append(f"{key.translate(_KEY)}={text}")
    if not parts:
        return None
    tag_text = "".join(f",{k.translate(_KEY)}={v.translate(_KEY)}"
                       for k, v in sorted(tags.items()) if v != "")
    return (f"{measurement.translate(_MEASUREMENT)}{tag_text} {','.join(parts)} "
            f"{timestamp(time, per_second)}")


def split_row(row: Row, tag_columns: Mapping[str, str],
              base_tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Return a row's tags (base tags, then its tag columns) and its remaining fields."""
    tags = dict(base_tags)
    fields: dict[str, Any] = {}
    for column, value in row.values.items():
        key = tag_columns.get(column)
        if key is None:
            fields[column] = value
        elif value is not None and value != "":
            tags[key] = str(value)
    return tags, fields
