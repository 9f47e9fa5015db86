"""Middlewares: pure steps ``values -> values`` applied to each row, dropping by raising.

A step receives the row's values (a fresh dict it may return changed) and
raises :class:`vemonitor.model.DropRow` to drop the row; the engine counts drops by reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vemonitor.batteries import BatteryBank
from vemonitor.vedirect.fields import Value

Values = dict[str, Value]
Step = Callable[[Values], Values]

# Physical ranges are no step: a value out of range costs that field, not the row. The
# input worker applies them before the steps (vemonitor.fieldpolicy).


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
