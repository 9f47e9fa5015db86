"""Middlewares are pure steps: ref_cols, battery bank figures, physical bounds."""

from __future__ import annotations

import pytest

from vemonitor.batteries import load_bank
from vemonitor.errors import ConfigError
from vemonitor.fieldpolicy import FieldDrops, keep_good_fields
from vemonitor.middlewares import bank_step, chain, project

BANKS = {"batteryDatas": {
    "batteries": {"rolls": {"manufacturer": "Rolls", "model": "S6-305", "cell_voltage": 6,
                            "nb_cells": 3, "bulk_voltage": 2.47, "float_voltage": 2.25,
                            "capacity": [[5, 253, 50.56], [20, 320, 16], [100, 410, 4.1]]}},
    "bankItems": {"project1": {"battery_type": "flooded", "battery_key": "rolls",
                               "in_series": 4, "in_parallel": 1}}}}


def test_battery_bank_figures_from_the_seed_layout() -> None:
    """4 x 6 V Rolls in series: 24 V nominal, 320 Ah at C20, 12 cells, per-cell voltage."""
    bank = load_bank(BANKS, "project1", "vm_batteryBank.yaml")
    assert bank.nominal_voltage == 24
    assert bank.cells_in_series == 12
    assert bank.capacity_ah() == 320
    assert bank.bulk_voltage == pytest.approx(29.64)
    step = bank_step(bank, ["V", "bank_capacity_ah"])
    out = step({"V": 25.2})
    assert out["cell_voltage"] == pytest.approx(2.1)
    assert out["bank_capacity_ah"] == 320
    assert "bank_nominal_voltage" not in out  # figures only when asked for in columns


def test_unknown_bank_is_a_precise_config_error() -> None:
    """A block naming a bank that does not exist gets the key path and the banks available."""
    with pytest.raises(ConfigError) as err:
        load_bank(BANKS, "nope", "vm_batteryBank.yaml")
    assert "batteryBanks.batteryDatas.bankItems" in str(err.value)
    assert "project1" in str(err.value)


@pytest.mark.parametrize("values", [{"V": 250.0}, {"SOC": 101.0}, {"CE": 5.0}, {"T": -80}])
def test_bounds_leave_out_physically_impossible_fields(values: dict[str, float]) -> None:
    """A value outside physical limits is left out and counted under its label; the row stays."""
    drops = FieldDrops("input test")
    assert keep_good_fields({**values, "P": 12}, drops, 0.0) == {"P": 12}
    assert drops.as_dict() == {"out_of_range": {next(iter(values)): 1}}


def test_bounds_pass_real_values_and_non_numbers() -> None:
    """Plausible values, None, booleans and text pass (PID typed as its column: an int)."""
    row = {"V": 12.8, "SOC": None, "Alarm": False, "PID": "0x203", "I": -150.0}
    drops = FieldDrops("input test")
    assert chain([])(keep_good_fields(row, drops, 0.0)) == {**row, "PID": 0x203}
    assert not drops.counts
    assert project(row, ["V", "X"]) == {"V": 12.8}
