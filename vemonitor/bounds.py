"""Bounds of every numeric run-level, block and delivery key: one table, one check.

A number from a configuration file or the command line must be finite and in a
range that makes physical sense; anything else is a ConfigError naming the key
(exit 2), never a traceback or a run that silently does nothing
(``duration=nan`` never ends, ``retry_max=inf`` never retries,
``max_data_points=1e24`` allocates for ever, ``metrics.port=99999`` crashes at bind).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vemonitor.errors import ConfigError

DAY = 86400.0
YEAR = 365 * DAY


@dataclass(frozen=True)
class Bound:
    """The range of one numeric key; ``low_open`` makes the low end exclusive."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False


RUN = {
    "duration": Bound(0, 100 * YEAR, low_open=True),
    "stale_after": Bound(0, DAY, low_open=True),
    # A forwarded row further than this from the run's clock is refused (issue 25); never
    # 0 (every row would be refused); at most ten years (a deliberate archive import).
    "max_time_skew": Bound(0, 10 * YEAR, low_open=True),
    "metrics.port": Bound(1, 65535, integer=True),
}
BLOCK = {
    "max_data_points": Bound(1, 10_000_000, integer=True),
}
DELIVERY = {
    "retry_initial": Bound(0, DAY, low_open=True),
    "retry_max": Bound(0, 7 * DAY, low_open=True),
    "auth_retry": Bound(0, 7 * DAY, low_open=True),
    "drain_rows": Bound(1, 10_000_000, integer=True),
    "drain_interval": Bound(0, 3600),
    "max_rows": Bound(1, 1_000_000_000, integer=True),
    "max_bytes": Bound(1, 1 << 40, integer=True),
    "max_age": Bound(0, 10 * YEAR, low_open=True),
}


def problem(value: Any, bound: Bound) -> str | None:
    """Return what is wrong with ``value`` for ``bound`` (None when it is fine)."""
    low = ">" if bound.low_open else ">="
    kind = " (an integer)" if bound.integer else ""
    wanted = f"must be {low} {bound.low:g} and <= {bound.high:g}{kind}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{wanted}, got {type(value).__name__}"
    if not math.isfinite(value):
        return f"{wanted}, got {value}"
    if bound.integer and not float(value).is_integer():
        return f"{wanted}, got {value!r}"
    too_low = value <= bound.low if bound.low_open else value < bound.low
    if too_low or value > bound.high:
        return f"{wanted}, got {value:g}"
    return None


def check(node: Any, table: dict[str, Bound], prefix: str = "",
          file: str | None = None) -> None:
    """Raise ConfigError for the first key of ``table`` set in ``node`` out of its bound."""
    for dotted, bound in table.items():
        value = _get(node, dotted)
        if value is None:
            continue
        why = problem(value, bound)
        if why:
            raise ConfigError(why, file=file, key=f"{prefix}{dotted}")


def _get(node: Any, dotted: str) -> Any:
    """Return the value at a dotted path of nested mappings (None when absent)."""
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def non_finite(obj: Any, prefix: str = "") -> tuple[str, float] | None:
    """Return (dotted key, value) of the first NaN or infinite float in a dataclass tree."""
    for name in getattr(obj, "__dataclass_fields__", {}):
        value = getattr(obj, name, None)
        if isinstance(value, float) and not math.isfinite(value):
            return f"{prefix}{name}", value
        if hasattr(value, "__dataclass_fields__"):
            found = non_finite(value, f"{prefix}{name}.")
            if found is not None:
                return found
    return None
