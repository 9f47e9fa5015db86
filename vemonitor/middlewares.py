"""Middlewares: pure steps ``values -> values`` applied to each row, dropping by raising.

A step receives the row's values (a fresh dict it may return changed) and
raises :class:`DropRow` to drop the row; the engine counts drops by reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vemonitor.batteries import BatteryBank
from vemonitor.model import DropRow
from vemonitor.vedirect.fields import BOUNDS as FIELD_BOUNDS
from vemonitor.vedirect.fields import Value

Values = dict[str, Value]
Step = Callable[[Values], Values]

# Physical limits in user units: one table with the decoder's (vemonitor.vedirect.fields).
BOUNDS: Mapping[str, tuple[float, float]] = FIELD_BOUNDS


def bounds(limits: Mapping[str, tuple[float, float]] = BOUNDS) -> Step:
    """Return a step dropping rows with a value outside its physical limits."""

    def step(values: Values) -> Values:
        for key, value in values.items():
            limit = limits.get(key)
            if limit is None or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if not limit[0] <= value <= limit[1]:  # NaN too: every comparison is False
                raise DropRow(f"out_of_bounds:{key}")
        return values

    return step


@dataclass(frozen=True)
class BankStep:
    """Add the battery bank's per-cell voltage (and its nominal figures when asked for)."""

    bank: BatteryBank
    voltage_column: str = "V"
    figures: tuple[str, ...] = ()

    def __call__(self, values: Values) -> Values:
        voltage = values.get(self.voltage_column)
        out = dict(values)
        if isinstance(voltage, (int, float)) and not isinstance(voltage, bool):
            out["cell_voltage"] = round(voltage / self.bank.cells_in_series, 4)
        nominal = self.bank.figures()
        for name in self.figures:
            out[name] = nominal[name]
        return out


def bank_step(bank: BatteryBank, columns: Sequence[str]) -> Step:
    """Return the battery-bank step; nominal figures are added only if listed in columns."""
    wanted = tuple(name for name in bank.figures() if name in columns)
    return BankStep(bank, figures=wanted)


def chain(steps: Sequence[Step]) -> Step:
    """Return one step running ``steps`` in order."""

    def step(values: Values) -> Values:
        for each in steps:
            values = each(values)
        return values

    return step


def project(values: Mapping[str, Any], columns: Sequence[str]) -> Values:
    """Return the listed columns present in ``values`` (all of them when none are listed)."""
    if not columns:
        return dict(values)
    return {column: values[column] for column in columns if column in values}
