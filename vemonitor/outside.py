"""Values from outside (a Redis hash, a stream, a broker) are data, never code paths.

An input that reads rows another program wrote cannot trust them: a value may
be ``Infinity`` or ``NaN`` (Python's ``json`` accepts both), a list or object
nested 200,000 deep (a RecursionError), a huge string, or a type no sink can
carry. :func:`parse_values` turns one row's text into a flat mapping of its
fields or raises :class:`BadRow` with a short reason; the input drops that one
row, counts the reason and goes on.

Decision (issue 25, "typed fields"): what concerns the whole row drops the row
here (text too large, nested too deep, not JSON, not an object, too many keys, a
key that is not a short string); what concerns one value costs that value only,
judged in ONE place, :mod:`vemonitor.fieldpolicy`, which the engine applies to
every row of every input: NaN, ±inf (parsed here as floats), an int beyond 64
bits, an over-long string, a list or object, or a value of the wrong kind for its
column is left out and counted per (reason, label); the row keeps its other fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_TEXT = 64 * 1024  # bytes of JSON per row (a VE.Direct row is under 2 KB)
MAX_STRING = 256  # characters of one key (the longest VE.Direct label is 8)
MAX_KEYS = 512
# Containers ({ and [) one message may open: a row is a flat object (1); a few more are
# tolerated (a value the field policy then leaves out as a list). Counted with
# bytes.count before parsing (C speed), so a 100,000-deep message is never parsed.
MAX_CONTAINERS = 64


class BadRow(ValueError):
    """A row from outside that cannot be used; ``reason`` is a short counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def loads(text: str | bytes) -> Any:
    """Parse JSON bounding size and depth; raise BadRow (NaN/Infinity parse as floats)."""
    if len(text) > MAX_TEXT:
        raise BadRow("too_large", f"{len(text)} bytes")
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    if raw.count(b"{") + raw.count(b"[") > MAX_CONTAINERS:
        raise BadRow("too_deep", f"more than {MAX_CONTAINERS} objects or lists")
    try:
        return json.loads(text)
    except RecursionError:
        raise BadRow("too_deep") from None
    except BadRow:
        raise
    except (ValueError, TypeError) as err:
        raise BadRow("not_json", str(err).splitlines()[0][:80]) from None


def check_values(values: Mapping[Any, Any]) -> dict[str, Any]:
    """Return a row's fields (keys checked: short strings), or raise BadRow.

    The values are judged field by field by :func:`vemonitor.fieldpolicy.keep_good_fields`.
    """
    if len(values) > MAX_KEYS:
        raise BadRow("too_large", f"{len(values)} keys")
    for key in values:
        if not isinstance(key, str) or not key or len(key) > MAX_STRING:
            raise BadRow("wrong_type", "key")
    return dict(values)


def parse_values(text: str | bytes) -> dict[str, Any]:
    """Return the values of a JSON object of scalars, or raise BadRow."""
    data = loads(text)
    if not isinstance(data, dict):
        raise BadRow("wrong_type", f"expected an object, got {type(data).__name__}")
    return check_values(data)


def parse_fields(fields: Mapping[str, str]) -> dict[str, Any]:
    """Return the values of flat field -> JSON value pairs, or raise BadRow."""
    if len(fields) > MAX_KEYS:
        raise BadRow("too_large", f"{len(fields)} keys")
    return check_values({key: loads(text) for key, text in fields.items()})
