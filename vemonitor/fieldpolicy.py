"""The per-field policy: a reading that cannot be true costs that reading, never its row.

This is the one place where single fields are judged, left out, counted and logged:

* A *field rule* looks at one field (label, value) and returns the reason it must be
  left out (``"out_of_range"``), or None. :data:`RULES` lists the rules every input's
  rows go through (the engine applies them in :class:`vemonitor.engine.workers.InputWorker`
  before any middleware). A new rule, such as "a value of the wrong kind", is one
  function added to :data:`RULES` with its text in :data:`REASONS`; counting, logging,
  metrics and the exit summary follow by themselves.
* :class:`FieldDrops` counts the fields left out, per (reason, label), for one device or
  one input, and logs each (reason, label) once an hour with the value seen, so a
  device that sends an impossible value every second says so once, not 3600 times.
* A column's kind is fixed by the field table (:data:`COLUMN_KINDS`, from each label's
  decoder kind in :mod:`vemonitor.vedirect.fields`): :func:`typed` converts what is
  plainly the same value (an int where a float belongs: ``"V": 12`` -> 12.0; an integral
  float where an int belongs; 0/1 or "ON"/"OFF" for an on/off field; "0x203" for PID)
  and leaves out, as ``wrong_kind``, a value of another kind. So a store keyed by field
  (InfluxDB fixes a field's type at its first point) never sees two types for one
  field, whatever a site of a fleet sends. Labels the table does not know keep the kind
  they come with (only scalars: a list or object is ``wrong_kind``).
* NaN and ±inf are never a reading (``not_finite``), in any column, bounded or not; an
  int beyond 64 bits or a string longer than :data:`MAX_STRING` is ``too_large``. No
  encoder downstream (JSON with allow_nan=False, line protocol, SQLite) sees one.
* The VE.Direct decoder checks ranges itself, in wire units (it is the hot path, see
  :mod:`vemonitor.vedirect.decoder`); the serial reader reports the fields it left out
  to its device's :class:`FieldDrops`, so a device's counts and log lines read the same.

Whole rows or blocks are still dropped where the evidence concerns the whole: a block's
checksum or framing, a value that does not parse as its type (docs/vedirect.md, "Which
check is which"), a row from outside that is not a JSON object (:mod:`vemonitor.outside`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vemonitor.vedirect.fields import BOUNDS, FIELD_BY_LABEL, Value

log = logging.getLogger(__name__)

FieldRule = Callable[[str, Value], "str | None"]
LOG_EVERY = 3600.0  # seconds between two log lines for the same device/input and label
MAX_STRING = 256  # characters of one string value (the longest VE.Direct value is ~40)
INT64 = 2 ** 63  # every store's integer is a signed 64-bit one (InfluxDB, SQLite, JSON users)


class _Wrong:
    """The result of a conversion that found a value of the wrong kind."""


WRONG = _Wrong()


def _as_float(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return WRONG
    return float(value) if isinstance(value, int) and abs(value) < INT64 else value


def _as_int(value: Any) -> Any:
    if isinstance(value, bool):
        return WRONG
    if isinstance(value, int):
        return value  # a Code or Flags stays itself (it carries its names)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value if isinstance(value, float) and not math.isfinite(value) else WRONG


_ON_OFF = {"on": True, "off": False, "1": True, "0": False, "true": True, "false": False}


def _as_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # the seed's intBool
        return bool(value)
    if isinstance(value, str):
        return _ON_OFF.get(value.lower(), WRONG)
    return WRONG


def _as_str(value: Any) -> Any:
    return value if isinstance(value, str) else WRONG


def _as_pid(value: Any) -> Any:
    if isinstance(value, str):  # the seed's "0x203"
        try:
            return int(value, 16)
        except ValueError:
            return WRONG
    return _as_int(value)


def _as_scalar(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) else WRONG


# The field table's decoder kind -> the conversion to that column's one kind of value.
COLUMN_KINDS: dict[str, Callable[[Any], Any]] = {
    "scaled": _as_float, "int": _as_int, "code": _as_int, "flags": _as_int,
    "pid": _as_pid, "onoff": _as_bool, "fw16": _as_str, "fw24": _as_str, "text": _as_str,
}


def typed(label: str, value: Any) -> Any:
    """Return ``value`` as its column's kind (field table), or :data:`WRONG`.

    None (an absent reading) passes; a label the table does not know keeps its kind.
    """
    if value is None:
        return None
    spec = FIELD_BY_LABEL.get(label)
    convert = COLUMN_KINDS.get(spec.kind, _as_scalar) if spec is not None else _as_scalar
    return convert(value)


def finite(label: str, value: Value) -> str | None:
    """Leave out NaN and ±inf: no device measures them and encoders refuse them."""
    return "not_finite" if isinstance(value, float) and not math.isfinite(value) else None


def bounded_size(label: str, value: Value) -> str | None:
    """Leave out an int beyond 64 bits or an over-long string (no store keeps them)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT64:
        return "too_large"
    return "too_large" if isinstance(value, str) and len(value) > MAX_STRING else None


def in_range(limits: Mapping[str, tuple[float, float]] = BOUNDS) -> FieldRule:
    """Return the rule leaving out a number outside its label's physical range (NaN too)."""

    def rule(label: str, value: Value) -> str | None:
        limit = limits.get(label)
        if limit is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        return None if limit[0] <= value <= limit[1] else "out_of_range"  # NaN: never <=

    return rule


def _range_text(label: str) -> str:
    """Return ``outside its range LOW..HIGH UNIT`` for a bounded label."""
    low, high = BOUNDS[label]
    spec = FIELD_BY_LABEL.get(label)
    unit = f" {spec.unit}" if spec is not None and spec.unit else ""
    return f"outside its range {low:g}..{high:g}{unit}"


# Every reason a rule can give, with the words a log line uses for it.
REASONS: dict[str, Callable[[str], str]] = {
    "out_of_range": _range_text,
    "wrong_kind": lambda label: "of the wrong kind for its column (field table)",
    "not_finite": lambda label: "not a finite number",
    "too_large": lambda label: f"too large (beyond 64 bits or {MAX_STRING} characters)",
}
# In order: the first reason found is the one counted.
RULES: tuple[FieldRule, ...] = (finite, bounded_size, in_range())


def _shown(value: object) -> str:
    """Return a short, safe text of a value for a log line (a list or object by its type)."""
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:60] + "..."
    if isinstance(value, int) and abs(value) >= INT64:
        return f"<a {value.bit_length()}-bit int>"  # str() of a huge int costs or raises
    if value is None or isinstance(value, (bool, int, float)):
        text = str(value)
        return text if len(text) <= 40 else text[:40] + "..."
    return f"<{type(value).__name__}>"


@dataclass
class FieldDrops:
    """Fields left out for one device or input: counted by (reason, label), logged hourly."""

    where: str  # "device bmv700", "input bmv700": the start of its log lines
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    log_every: float = LOG_EVERY
    _logged_at: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)

    def add(self, reason: str, label: str, value: object, now: float) -> None:
        """Count one field left out at ``now`` (seconds); log it unless said within the hour."""
        key = (reason, label)
        self.counts[key] += 1
        last = self._logged_at.get(key)
        if last is not None and now - last < self.log_every:
            return
        self._logged_at[key] = now
        text = REASONS[reason](label) if reason in REASONS else reason
        log.warning("%s: %s=%s is %s: that reading is left out, the other fields are kept "
                    "(%d so far; said once an hour)", self.where, label, _shown(value), text,
                    self.counts[key])

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Return the counts as {reason: {label: count}} (summary.json, metrics)."""
        out: dict[str, dict[str, int]] = {}
        for (reason, label), count in sorted(self.counts.items()):
            out.setdefault(reason, {})[label] = count
        return out


def keep_good_fields(values: Mapping[str, Any], drops: FieldDrops, now: float,
                     rules: tuple[FieldRule, ...] = RULES) -> dict[str, Value]:
    """Return ``values`` typed by column (:func:`typed`) without the fields a rule refuses.

    Count and log the fields left out in ``drops``.
    """
    out: dict[str, Value] = {}
    for label, raw in values.items():
        value = typed(label, raw)
        if value is WRONG:
            drops.add("wrong_kind", label, raw, now)
            continue
        for rule in rules:
            reason = rule(label, value)
            if reason is not None:
                drops.add(reason, label, value, now)
                break
        else:
            out[label] = value
    return out
