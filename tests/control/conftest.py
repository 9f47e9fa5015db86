"""Fixtures of the control tests: the simulator's ptys, a real reader, DeviceControls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hw_sim.simulator import Simulator
from tests.control.helpers import ON, Make
from tests.shared import wait_until
from vemonitor.control import DeviceControls, DeviceSettings
from vemonitor.serial_reader import SerialReader


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    with Simulator(["mppt", "bmv700"], tmp_path_factory.mktemp("ctlsim")) as running:
        yield running


@pytest.fixture
def make(sim: Simulator, tmp_path: Path) -> Iterator[Make]:
    """Return a factory: DeviceControls around a fresh reader of a simulated device."""
    made: list[tuple[DeviceControls, SerialReader]] = []

    def build(name: str = "mppt", settings: DeviceSettings | None = None, *,
              identify: bool = True, **kwargs: object) -> DeviceControls:
        reader = SerialReader(name, str(sim.path(name)))
        reader.start()
        controls = DeviceControls(reader, settings or DeviceSettings(
            controls={"load_output": ON, "charger": ON, "charge_current_limit": ON}),
            kwargs.pop("state_dir", tmp_path / "state"), **kwargs)  # type: ignore[arg-type]
        made.append((controls, reader))
        if identify:
            assert wait_until(lambda: controls.ensure_identity() is None
                              or "serial" in (controls.ensure_identity() or ""), 15.0)
        return controls

    yield build
    for controls, reader in made:
        controls.close()
        reader.close()
