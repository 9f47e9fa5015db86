"""`vemonitor hex get NAME|0xID --port PATH [--json]` against the simulator's pty (issue 22)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hw_sim.simulator import Simulator
from vemonitor.hex_cli import hex_command


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    with Simulator(["mppt", "bmv700"], tmp_path_factory.mktemp("hexsim"), speed=5.0) as running:
        yield running


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = hex_command(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_get_by_name_prints_value_unit_and_raw_frame(sim: Simulator,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Text output: label, value, unit and the raw reply line."""
    status, out, err = _run(capsys, "get", "charger_max_current", "--port", str(sim.path("mppt")))
    assert (status, err) == (0, "")
    assert out == "charger_max_current (0xEDDF) = 15.0 A   :7DFED009600EC\n"


def test_get_json_by_id(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    """--json: register, name, value (number in unit), unit, raw; by 0xID, lowercase too."""
    status, out, _ = _run(capsys, "get", "0xedf0", "--port", str(sim.path("mppt")), "--json")
    assert status == 0
    assert json.loads(out) == {"register": "0xEDF0", "name": "battery_max_current",
                               "value": 15.0, "unit": "A", "raw": ":7F0ED009600DB"}  # HEX.md §2.3 example 1


def test_not_available_is_null(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    """The device's 'not available' (0xFFFF battery temperature) prints as null, exit 0."""
    status, out, _ = _run(capsys, "get", "battery_temperature", "--port", str(sim.path("mppt")),
                          "--json")
    assert status == 0 and json.loads(out)["value"] is None
    status, out, _ = _run(capsys, "get", "aux_voltage", "--port", str(sim.path("bmv700")))
    assert status == 0 and out.startswith("aux_voltage (0xED7D) = not available   :7")


def test_history_record_as_json(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    """A structured register prints its fields (day 0 = today, day_seq = HSDS)."""
    status, out, _ = _run(capsys, "get", "history_day_00", "--port", str(sim.path("mppt")),
                          "--json")
    day = json.loads(out)["value"]
    assert status == 0 and day["day_seq"] == int(sim.devices["mppt"].written_fields["HSDS"])
    assert {"yield_kwh", "max_power_w", "bulk_min", "battery_v_max", "pv_v_max"} <= set(day)


@pytest.mark.parametrize(("args", "status", "message"), [
    (["get", "0x7777"], 1, "the device refused 0x7777: unknown id (flags 0x01)"),
    (["get", "yield_today"], 1, "the device refused yield_today (0xEDD3): unknown id"),
    (["get", "yield"], 2, "unknown register 'yield'; did you mean yield_system"),
    (["get", "0x12345"], 2, "'0x12345' is not a register id"),
    (["get"], 2, "the following arguments are required"),
])
def test_errors_are_one_line_with_nonzero_status(sim: Simulator,
                                                 capsys: pytest.CaptureFixture[str],
                                                 args: list[str], status: int,
                                                 message: str) -> None:
    """Refused or unknown registers and usage mistakes: one line on stderr, exit 1 or 2."""
    port = ["--port", str(sim.path("bmv700"))] if len(args) > 1 else []
    got, out, err = _run(capsys, *args, *port)
    assert got == status and out == ""
    assert message in err and err.count("\n") == 1


def test_a_port_that_is_not_a_vedirect_device(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A silent pty: one line saying no VE.Direct block came; exit 1."""
    master, slave = pty.openpty()
    try:
        status, _, err = _run(capsys, "get", "model_name", "--port", os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    assert status == 1 and "no VE.Direct block within 3 s" in err and err.count("\n") == 1
    status, _, err = _run(capsys, "get", "model_name", "--port", str(tmp_path / "nothing"))
    assert status == 1 and err.startswith(f"cannot open {tmp_path / 'nothing'}")


def test_the_installed_command_runs(sim: Simulator) -> None:
    """`vemonitor hex get` is a subcommand of the console script (exit status and stdout)."""
    proc = subprocess.run(
        [sys.executable, "-m", "vemonitor", "hex", "get", "product_block", "--port",
         str(sim.path("mppt")), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"] == {"id": 0, "pid": 0xA053, "flags": 255}
