"""When HEX columns are due (integrations/vedirect/hexpoll.py ``HexColumns.due``).

``due`` is called at every complete TEXT cycle. Cycles of a real device come about one
interval apart, a little early or late (the benchmark's BMV-700: 0.999 s, then 1.001 s):
a 1 s column must be asked at every one of them, not every other one.
"""

from __future__ import annotations

from vemonitor_integrations.vedirect.hexpoll import HexColumns

from vemonitor.hex_session import get
from vemonitor.vedirect.hex_registers import REGISTER_BY_NAME

NAMES = ["current_high_res", "soc"]


def _columns(interval: float) -> HexColumns:
    columns = HexColumns()
    columns.add(NAMES, interval)
    return columns


def test_a_1_s_column_is_asked_at_every_cycle_even_a_slightly_early_one() -> None:
    columns = _columns(1.0)
    cycles = [100.0, 100.999, 102.001, 102.998, 104.0]
    asked = [columns.due(now) for now in cycles]
    expected = [get(REGISTER_BY_NAME[name].id) for name in NAMES]
    assert asked == [expected] * len(cycles)


def test_a_5_s_column_is_asked_once_per_5_one_second_cycles() -> None:
    columns = _columns(5.0)
    asked = [bool(columns.due(100.0 + n * 1.001)) for n in range(15)]
    assert asked == [n % 5 == 0 for n in range(15)]


def test_a_second_call_in_the_same_cycle_asks_nothing() -> None:
    columns = _columns(1.0)
    assert columns.due(50.0)
    assert columns.due(50.2) == []


def test_nothing_is_due_without_hex_columns() -> None:
    assert HexColumns().due(10.0) == []
