"""Turn rows into the ``data`` of emoncms's ``input/bulk`` API (pure functions, no I/O).

One entry per row: ``[time, "node", {"name": value}, {"name": value}, ...]``,
with the row's absolute epoch time in whole seconds (EmonCms is told
``time=0``, see timing.py). Each object holds ONE input: EmonCms >= 11.0.5 stores
every key of an object (``foreach``), but older servers read only the first one
(``key()``/``current()``), where ``{"V": 1, "I": 2}`` would store V alone; one
object per input works on both.

Values: numbers as numbers; booleans as 1/0; codes and flags as their integer.
``None``, NaN/infinity and text are not sent: emoncms inputs are numeric and it
would store ``null`` or text as 0 (and NaN is not JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from vemonitor_integrations.emoncms.names import input_warning, name_problem, node_warning

from vemonitor.api import Row
from vemonitor.vedirect.fields import Value

Number = int | float
Entry = list[object]


@dataclass
class Encoded:
    """The bulk entries of a batch and what was left out of them."""

    entries: list[Entry] = field(default_factory=list)
    points: int = 0
    skipped_names: int = 0  # values of nodes or inputs whose names emoncms would not keep
    skipped_values: int = 0  # None, NaN and text values
    warnings: dict[str, str] = field(default_factory=dict)  # name key -> warning
    text_inputs: set[tuple[str, str]] = field(default_factory=set)  # (node, name)


def numeric(value: Value) -> Number | None:
    """Return the number emoncms should store for a value, or None when it cannot."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value)  # a Code or Flags becomes a plain int
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def encode_rows(rows: Iterable[Row], *, output: str | None, node_prefix: str = "",
                node_max: int | None = None, name_max: int | None = None) -> Encoded:
    """Return the bulk entries of ``rows``, leaving out names and values emoncms would not keep."""
    out = Encoded()
    for row in rows:
        node = f"{node_prefix}{row.input}"
        problem = name_problem(node, node_max)
        if problem:
            out.warnings[f"node:{node}"] = node_warning(output, node, problem)
            out.skipped_names += len(row.values)
            continue
        entry: Entry = [int(row.time), node]
        for name, value in row.values.items():
            _add_value(out, entry, node, name, value, output, name_max)
        if len(entry) > 2:  # emoncms ignores entries without values
            out.entries.append(entry)
            out.points += len(entry) - 2
    return out


def _add_value(out: Encoded, entry: Entry, node: str, name: str, value: Value,
               output: str | None, name_max: int | None) -> None:
    """Append one value to an entry, or count why it is left out."""
    problem = name_problem(name, name_max)
    if problem:
        out.warnings[f"input:{node}:{name}"] = input_warning(output, node, name, problem)
        out.skipped_names += 1
        return
    number = numeric(value)
    if number is None:
        out.skipped_values += 1
        if isinstance(value, str):
            out.text_inputs.add((node, name))
        return
    entry.append({name: number})


def bulk_data(entries: list[Entry]) -> str:
    """Return the ``data`` form field: compact JSON (no NaN: encode_rows dropped them)."""
    return json.dumps(entries, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
