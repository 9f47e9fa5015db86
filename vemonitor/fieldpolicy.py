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
* The VE.Direct decoder checks ranges itself, in wire units (it is the hot path, see
  :mod:`vemonitor.vedirect.decoder`); the serial reader reports the fields it left out
  to its device's :class:`FieldDrops`, so a device's counts and log lines read the same.

Whole rows or blocks are still dropped where the evidence concerns the whole: a block's
checksum or framing, a value that does not parse as its type (docs/vedirect.md, "Which
check is which"), a row from outside that is not a JSON object (:mod:`vemonitor.outside`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vemonitor.vedirect.fields import BOUNDS, FIELD_BY_LABEL, Value

log = logging.getLogger(__name__)

FieldRule = Callable[[str, Value], "str | None"]
LOG_EVERY = 3600.0  # seconds between two log lines for the same device/input and label


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
}
RULES: tuple[FieldRule, ...] = (in_range(),)


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
                    "(%d so far; said once an hour)", self.where, label, value, text,
                    self.counts[key])

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Return the counts as {reason: {label: count}} (summary.json, metrics)."""
        out: dict[str, dict[str, int]] = {}
        for (reason, label), count in sorted(self.counts.items()):
            out.setdefault(reason, {})[label] = count
        return out


def keep_good_fields(values: Mapping[str, Value], drops: FieldDrops, now: float,
                     rules: tuple[FieldRule, ...] = RULES) -> dict[str, Value]:
    """Return ``values`` without the fields a rule refuses; count and log those in ``drops``."""
    out: dict[str, Value] = {}
    for label, value in values.items():
        for rule in rules:
            reason = rule(label, value)
            if reason is not None:
                drops.add(reason, label, value, now)
                break
        else:
            out[label] = value
    return out
