"""Values from outside (a Redis hash, a stream, a broker) are data, never code paths.

An input that reads rows another program wrote cannot trust them: a value may
be ``Infinity`` or ``NaN`` (Python's ``json`` accepts both), a list or object
nested 200,000 deep (a RecursionError), a huge string, or a type no sink can
carry. :func:`parse_values` turns one row's text into a flat mapping of scalar
values or raises :class:`BadRow` with a short reason; the input drops that one
row, counts the reason and goes on.

Decision: a row with any bad value is dropped whole (not the value alone), as
the decoder drops a whole block on one bad field: half a row of a device would
be a row nobody measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from vemonitor.vedirect.fields import Value

MAX_TEXT = 64 * 1024  # bytes of JSON per row (a VE.Direct row is under 2 KB)
MAX_STRING = 256  # characters of one string value (the longest VE.Direct value is ~40)
MAX_KEYS = 512


class BadRow(ValueError):
    """A row from outside that cannot be used; ``reason`` is a short counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _refuse_constant(name: str) -> Any:
    raise BadRow("non_finite", name)


def loads(text: str | bytes) -> Any:
    """Parse JSON refusing NaN/Infinity and bounding size; raise BadRow."""
    if len(text) > MAX_TEXT:
        raise BadRow("too_large", f"{len(text)} bytes")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadRow("too_deep") from None
    except BadRow:
        raise
    except (ValueError, TypeError) as err:
        raise BadRow("not_json", str(err).splitlines()[0][:80]) from None


def check_value(key: str, value: Any) -> Value:
    """Return a scalar value fit for every sink, or raise BadRow."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise BadRow("too_large", key)
        return value
    if isinstance(value, int):
        if abs(value) >= 2 ** 63:
            raise BadRow("out_of_range", key)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRow("non_finite", key)
        return value
    raise BadRow("wrong_type", f"{key} is {type(value).__name__}")


def check_values(values: Mapping[Any, Any]) -> dict[str, Value]:
    """Return a row's values checked one by one (keys are strings), or raise BadRow."""
    if len(values) > MAX_KEYS:
        raise BadRow("too_large", f"{len(values)} keys")
    out: dict[str, Value] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > MAX_STRING:
            raise BadRow("wrong_type", "key")
        out[key] = check_value(key, value)
    return out


def parse_values(text: str | bytes) -> dict[str, Value]:
    """Return the values of a JSON object of scalars, or raise BadRow."""
    data = loads(text)
    if not isinstance(data, dict):
        raise BadRow("wrong_type", f"expected an object, got {type(data).__name__}")
    return check_values(data)


def parse_fields(fields: Mapping[str, str]) -> dict[str, Value]:
    """Return the values of flat field -> JSON value pairs, or raise BadRow."""
    if len(fields) > MAX_KEYS:
        raise BadRow("too_large", f"{len(fields)} keys")
    return check_values({key: loads(text) for key, text in fields.items()})
