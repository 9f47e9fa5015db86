"""HEX registers as input columns, end to end through the simulator's ptys (issue 22 point 3).

An engine run whose MPPT input names ``yield_today``, ``load_current``,
``charger_max_current`` and ``battery_temperature`` beside TEXT labels: the registers
are polled through the reader's HEX session, their values land in the local SQLite
store beside the TEXT values and agree with them; a not-available register
(0xEDEC, no sensor) is absent; a device that ignores HEX gives the TEXT rows of
before; an unknown register name is a one-line config error listing the valid names.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import Recorder, block_config, running
from vemonitor.api import ConfigError
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine.wiring import wire
from vemonitor.registry import Registry

HEX_COLUMNS = ["yield_today", "load_current", "charger_max_current", "battery_temperature"]
TEXT_COLUMNS = ["V", "IL", "H20"]


def _config(tmp_path: Path) -> dict[str, Any]:
    inputs = {"mppt": {"source": "mppt", "time_interval": 1,
                       "columns": TEXT_COLUMNS + HEX_COLUMNS}}
    outputs = {"sqlite": {"store": {"time_interval": 1, "cache_interval": 2,
                                    "path": str(tmp_path / "store.sqlite")}}}
    return block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state",
                        stale_after=10.0)


def _stored(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        return [json.loads(v) for (v,) in db.execute(
            'SELECT "values" FROM rows WHERE source = ? ORDER BY time', ("mppt",))]


def test_hex_columns_reach_the_local_store_beside_text(tmp_path: Path) -> None:
    """Polled registers arrive in stored rows, agree with TEXT; not-available stays absent."""
    recorders: dict[str, Recorder] = {}
    with running(_config(tmp_path), recorders, ["mppt"], tmp_path / "sim",
                 speed=5) as (engine, sim):
        engine.run(40)
        written = sim.devices["mppt"].port.bytes_received
    rows = _stored(tmp_path / "store.sqlite")
    assert rows, "no rows stored"
    with_hex = [r for r in rows if "yield_today" in r]
    assert len(with_hex) >= len(rows) // 2, (len(with_hex), len(rows))
    assert written > 0  # the reader did ask
    for row in with_hex:
        assert set(TEXT_COLUMNS) <= set(row)
        # HEX 0xEDD3 (0.01 kWh) and TEXT H20 (0.01 kWh) are the same counter.
        assert abs(row["yield_today"] - row["H20"]) <= 0.011
        assert row["charger_max_current"] > 0
        assert "battery_temperature" not in row  # 0xFFFF: not available -> absent
    assert any("load_current" in r and abs(r["load_current"] - r["IL"]) <= 0.11
               for r in with_hex)


def test_a_device_ignoring_hex_keeps_its_text_rows(tmp_path: Path) -> None:
    """The ignore-HEX fault: every row has its TEXT columns and no HEX column, no error."""
    recorders: dict[str, Recorder] = {}
    with running(_config(tmp_path), recorders, ["mppt"], tmp_path / "sim",
                 speed=5) as (engine, sim):
        sim.devices["mppt"].hex.ignore_hex = True
        engine.run(30)
    rows = _stored(tmp_path / "store.sqlite")
    assert len(rows) >= 20
    assert all(set(r) == set(TEXT_COLUMNS) for r in rows), rows[:3]


def test_an_unknown_register_name_is_a_config_error_listing_valid_ones(tmp_path: Path) -> None:
    """'yield_todya' is no register: one line naming it, the nearest, and the valid names."""
    config = _config(tmp_path)
    config["block"]["inputs"]["serial"]["mppt"]["columns"] = ["V", "yield_todya"]
    registry = Registry().discover()
    spec = build_run(config, registry)
    with pytest.raises(ConfigError) as err:
        wire(spec, registry, SystemClock())
    line = str(err.value)
    assert "\n" not in line
    assert "'yield_todya'" in line and "nearest: 'yield_today'" in line
    assert "load_current" in line and "battery_temperature" in line and "capacity" in line


def test_an_mppt_with_fw_152_or_older_is_never_polled(tmp_path: Path) -> None:
    """FW 1.23 pauses TEXT while HEX flows (HEX.md T1): no byte is written, TEXT rows flow."""
    config = _config(tmp_path)
    config["appConnectors"]["serial"]["mppt"]["serialPort"] = str(
        tmp_path / "sim" / "ttyVE_mppt_fw123")
    recorders: dict[str, Recorder] = {}
    with running(config, recorders, ["mppt_fw123"], tmp_path / "sim",
                 speed=5) as (engine, sim):
        engine.run(30)
        written = sim.devices["mppt_fw123"].port.bytes_received
    rows = _stored(tmp_path / "store.sqlite")
    assert written == 0
    assert len(rows) >= 20 and all(set(r) == set(TEXT_COLUMNS) for r in rows)
