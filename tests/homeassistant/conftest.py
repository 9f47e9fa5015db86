"""Home Assistant integration tests: they need pytest-homeassistant-custom-component.

That package pins Home Assistant, which needs Python 3.13: these tests run only in the
3.13 venv (``nox -s homeassistant``). Anywhere else the whole folder is skipped.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SKIP_REASON = ("Home Assistant tests need pytest-homeassistant-custom-component (Python 3.13 venv): "
               "run `nox -s homeassistant`")

HA_TESTS = importlib.util.find_spec("pytest_homeassistant_custom_component") is not None


class _SkippedModule(pytest.Module):
    """A test module of this folder, skipped as a whole (no Home Assistant here)."""

    def collect(self) -> list[pytest.Item]:  # type: ignore[override]
        pytest.skip(SKIP_REASON)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Without Home Assistant, never import this folder's modules: skip each one."""
    if HA_TESTS:
        return None
    return _SkippedModule.from_parent(parent, path=module_path)


# custom_components/ lives in integrations/homeassistant/ (copied as is into HA's config).
HA_ROOT = Path(__file__).resolve().parents[2] / "integrations" / "homeassistant"
if str(HA_ROOT) not in sys.path:
    sys.path.insert(0, str(HA_ROOT))

if HA_TESTS:
    # Import now, before Home Assistant mounts its testing config dir (which has its own
    # custom_components package) in front of sys.path.
    import custom_components.vemonitor  # noqa: E402, F401

from hw_sim import Simulator  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The HA fixtures are async: they need pytest-asyncio's auto mode."""
    if HA_TESTS and config.getini("asyncio_mode") != "auto":
        skip = pytest.mark.skip(reason="run with -o asyncio_mode=auto (nox -s homeassistant does)")
        for item in items:
            if "tests/homeassistant" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/vemonitor."""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    """A BMV-700 and a SmartSolar MPPT 75/15 on ptys in tmp_path (real time)."""
    with Simulator(["bmv700", "mppt"], directory=tmp_path, speed=1.0) as simulator:
        for device in simulator:
            device.wait_blocks(2, timeout=10.0)
        yield simulator


@pytest.fixture
def scan_sim(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """Make the config flow's scan look at the simulator's ports only."""
    from custom_components.vemonitor import config_flow

    monkeypatch.setattr(config_flow, "SCAN_GLOBS", (str(tmp_path / "ttyVE_*"),))
    return sim
