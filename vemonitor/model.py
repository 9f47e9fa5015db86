"""The data that flows through the engine: rows and batches."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vemonitor.vedirect.fields import Value


@dataclass(frozen=True, slots=True)
class Row:
    """One input's values at one tick.

    ``time`` is the tick time (epoch seconds, a multiple of the input's
    time_interval); ``input`` is the input's name (the "node" for EmonCms,
    Redis and MQTT); ``age`` is how old the device snapshot behind it was.
    """

    time: float
    input: str
    values: Mapping[str, Value]
    age: float = 0.0

    @property
    def source(self) -> str:
        """Deprecated: the field's old name (issue 16: "source" meant four things).

        Kept, read-only and warning, so plugins written against the old contract still
        run; construct rows positionally, ``Row(time, input, values, age)``, which both
        versions accept.
        """
        warnings.warn("Row.source is deprecated: use Row.input", DeprecationWarning,
                      stacklevel=2)
        return self.input


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows an output sends at once, oldest first."""

    output: str
    rows: tuple[Row, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def points(self) -> int:
        """Return the number of values in the batch."""
        return sum(len(row.values) for row in self.rows)



class DropRow(Exception):
    """Raised by a middleware to drop a row; ``reason`` is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
