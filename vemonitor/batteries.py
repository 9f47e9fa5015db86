"""Battery banks (the seed's vm_batteryBank.yaml): nominal figures of a bank.

A battery type (``batteries.<key>``) is one battery: ``cell_voltage`` is the
battery's nominal voltage (6 V for a Rolls S6-305), ``nb_cells`` the cells in it,
``bulk_voltage`` / ``float_voltage`` per cell, and ``capacity`` rows of
``[hours, Ah, A]`` (the discharge-rate table). A bank item (``bankItems.<name>``)
puts ``in_series`` x ``in_parallel`` such batteries together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vemonitor.errors import ConfigError


@dataclass(frozen=True)
class BatteryBank:
    """Nominal figures of one bank, derived from its battery type and layout."""

    name: str
    battery_type: str
    manufacturer: str
    model: str
    battery_voltage: float
    cells_per_battery: int
    in_series: int
    in_parallel: int
    bulk_cell_voltage: float
    float_cell_voltage: float
    capacity_table: tuple[tuple[float, float, float], ...]

    @property
    def nominal_voltage(self) -> float:
        """Return the bank's nominal voltage (battery voltage x batteries in series)."""
        return self.battery_voltage * self.in_series

    @property
    def cells_in_series(self) -> int:
        """Return the number of cells in series across the bank."""
        return self.cells_per_battery * self.in_series

    def capacity_ah(self, hours: float = 20) -> float:
        """Return the bank's capacity at the ``hours`` discharge rate (C20 by default)."""
        rows = sorted(self.capacity_table)
        if not rows:
            return 0.0
        best = min(rows, key=lambda row: abs(row[0] - hours))
        return best[1] * self.in_parallel

    @property
    def bulk_voltage(self) -> float:
        """Return the bank's bulk (absorption) voltage."""
        return round(self.bulk_cell_voltage * self.cells_in_series, 3)

    @property
    def float_voltage(self) -> float:
        """Return the bank's float voltage."""
        return round(self.float_cell_voltage * self.cells_in_series, 3)

    def figures(self) -> dict[str, float]:
        """Return the bank's nominal figures as row columns."""
        return {
            "bank_nominal_voltage": self.nominal_voltage,
            "bank_capacity_ah": self.capacity_ah(),
            "bank_bulk_voltage": self.bulk_voltage,
            "bank_float_voltage": self.float_voltage,
        }


def load_bank(banks: Mapping[str, Any] | None, name: str, file: str | None) -> BatteryBank:
    """Return bank ``name`` from a batteryBanks section, with precise errors."""
    if not banks:
        raise ConfigError(f"block args name battery bank '{name}' but there is no batteryBanks "
                          "section", file=file, key="batteryBanks")
    datas = banks.get("batteryDatas") or {}
    # The seed's samples nest bankItems under batteryDatas; its README shows it beside.
    items_key = ("batteryBanks.batteryDatas.bankItems" if "bankItems" in datas
                 else "batteryBanks.bankItems")
    items = _mapping(datas.get("bankItems", banks.get("bankItems")), items_key, file)
    kinds = _mapping(datas.get("batteries"), "batteryBanks.batteryDatas.batteries", file)
    key = f"{items_key}.{name}"
    if name not in items:
        raise ConfigError(f"unknown battery bank '{name}' (banks: {', '.join(items)})",
                          file=file, key=items_key)
    item = _mapping(items[name], key, file)
    battery_key = str(item.get("battery_key", ""))
    if battery_key not in kinds:
        raise ConfigError(f"unknown battery '{battery_key}' (batteries: {', '.join(kinds)})",
                          file=file, key=f"{key}.battery_key")
    battery = _mapping(kinds[battery_key], f"batteryBanks.batteryDatas.batteries.{battery_key}",
                       file)
    bkey = f"batteryBanks.batteryDatas.batteries.{battery_key}"
    try:
        table = tuple((float(r[0]), float(r[1]), float(r[2])) for r in battery.get("capacity", []))
    except (TypeError, ValueError, IndexError) as err:
        raise ConfigError("capacity rows must be [hours, Ah, A]", file=file,
                          key=f"{bkey}.capacity") from err
    return BatteryBank(
        name=name, battery_type=str(item.get("battery_type", "")),
        manufacturer=str(battery.get("manufacturer", "")), model=str(battery.get("model", "")),
        battery_voltage=_number(battery, "cell_voltage", bkey, file),
        cells_per_battery=int(_number(battery, "nb_cells", bkey, file)),
        in_series=int(_number(item, "in_series", key, file, minimum=1)),
        in_parallel=int(_number(item, "in_parallel", key, file, minimum=1)),
        bulk_cell_voltage=_number(battery, "bulk_voltage", bkey, file),
        float_cell_voltage=_number(battery, "float_voltage", bkey, file),
        capacity_table=table)


def _mapping(value: Any, key: str, file: str | None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError("must be a mapping", file=file, key=key)
    return value


def _number(data: Mapping[str, Any], name: str, key: str, file: str | None,
            minimum: float = 0) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"must be a number >= {minimum:g}, got {value!r}", file=file,
                          key=f"{key}.{name}")
    return float(value)
