"""Home Assistant integration tests: they need pytest-homeassistant-custom-component.

That package pins Home Assistant: these tests run in the venvs .ci/run builds (HA
2025.4.4 on Python 3.13, HA 2026.10.4 on Python 3.14; neither has the vemonitor
distribution installed). Anywhere else the whole folder is skipped.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SKIP_REASON = ("Home Assistant tests need pytest-homeassistant-custom-component (their own "
               "venvs): run .ci/run, or `nox -s homeassistant`")

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


# The tests run the BUNDLE (integrations/homeassistant/bundle.py), unpacked as Home
# Assistant would have it in <config>/custom_components/vemonitor/, not the source tree:
# what users install is what is tested.
REPO = Path(__file__).resolve().parents[2]


def _load_bundler() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vemonitor_ha_bundle", REPO / "integrations" / "homeassistant" / "bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bundler = _load_bundler()
BUNDLE_ROOT = Path(tempfile.mkdtemp(prefix="vemonitor-ha-bundle-"))
COMPONENT_DIR = BUNDLE_ROOT / "custom_components" / "vemonitor"
if HA_TESTS:
    bundler.write_tree(bundler.build(), COMPONENT_DIR)
    (BUNDLE_ROOT / "custom_components" / "__init__.py").write_text('"""Custom integrations."""\n')
    sys.path.insert(0, str(BUNDLE_ROOT))
    # Import now, before Home Assistant mounts its testing config dir (which has its own
    # custom_components package) in front of sys.path.
    import custom_components.vemonitor  # noqa: E402, F401

    assert Path(custom_components.vemonitor.__file__).parent == COMPONENT_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the unpacked bundle."""
    shutil.rmtree(BUNDLE_ROOT, ignore_errors=True)


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


# What Home Assistant logs when a custom integration uses a deprecated API (its
# helpers.frame.report_usage): "Detected that custom integration 'x' ...". Any such line,
# any ERROR record and any traceback logged at INFO or above fails the test that caused
# it. (HA logs the traceback of a ConfigEntryNotReady at DEBUG, "Full exception", by
# design: retrying later is the normal path, so DEBUG tracebacks are not problems.)
DEPRECATION_MARK = "Detected that custom integration"


def _log_problems(records: list[logging.LogRecord]) -> list[str]:
    """Return one line per deprecation report, error or traceback in ``records``."""
    return [f"{r.levelname} {r.name}: {r.getMessage()[:300]}" for r in records
            if DEPRECATION_MARK in r.getMessage() or r.levelno >= logging.ERROR
            or (r.exc_info is not None and r.levelno >= logging.INFO)]


@pytest.fixture(autouse=True)
def no_deprecation_or_error_logged(request: pytest.FixtureRequest,
                                   caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose log has a deprecation report, an error or a traceback."""
    yield
    if request.node.get_closest_marker("allow_error_log"):
        return
    records = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    problems = _log_problems(records)
    assert not problems, "logged during the test:\n" + "\n".join(problems)


def pytest_configure(config: pytest.Config) -> None:
    """Declare this folder's marker."""
    config.addinivalue_line("markers", "allow_error_log: the test logs an error on purpose")
