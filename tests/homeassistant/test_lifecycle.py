"""The bundle inside Home Assistant: self-contained, setup retry, reloads through current APIs.

No `async_setup_entry` is patched here: reconfigure and options run against a loaded
entry, so a reload path Home Assistant reports (an update listener that reloads, used
with the flow helpers that reload too; deprecated, refused from HA 2026.12) shows up as
a "Detected that custom integration" line, which fails the test (conftest).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components.vemonitor as component
from hw_sim import Simulator

from .helpers import DOMAIN, entity_id, wait_for

# Where conftest.py unpacked the bundle (it checks the import came from there).
COMPONENT_DIR = Path(component.__file__).parent
BUNDLE_ROOT = COMPONENT_DIR.parents[1]

SELF_CONTAINED = """
import importlib.util, sys
sys.path.insert(0, sys.argv[1])
assert importlib.util.find_spec("vemonitor") is None, "the vemonitor distribution is installed"
import custom_components.vemonitor
from custom_components.vemonitor import config_flow, sensor, binary_sensor, diagnostics
leaked = sorted(m for m in sys.modules if m == "vemonitor" or m.startswith("vemonitor."))
assert not leaked, leaked
print(custom_components.vemonitor.__file__)
"""


def test_bundle_imports_without_the_vemonitor_distribution() -> None:
    """In this venv `vemonitor` is not installed: the unpacked bundle imports all its platforms."""
    done = subprocess.run([sys.executable, "-I", "-c", SELF_CONTAINED, str(BUNDLE_ROOT)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == COMPONENT_DIR / "__init__.py"


def test_requirements_installed_and_pinned_as_home_assistant_pins_them() -> None:
    """Each manifest requirement installed from PyPI here, at the version HA pins when HA has it."""
    import homeassistant

    manifest = json.loads((COMPONENT_DIR / "manifest.json").read_text())
    ha_root = Path(homeassistant.__file__).parent
    ha_pins: dict[str, set[str]] = {}
    sources = [*ha_root.glob("components/*/manifest.json")]
    for path in sources:
        for req in json.loads(path.read_text()).get("requirements", []):
            name, _, version = req.partition("==")
            ha_pins.setdefault(name.lower(), set()).add(version)
    for line in (ha_root / "package_constraints.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            ha_pins.setdefault(match.group(1).lower(), set()).add(match.group(2))
    for req in manifest["requirements"]:
        name, sep, version = req.partition("==")
        assert sep, f"{req}: pin an exact version (Home Assistant installs it as written)"
        assert importlib.metadata.version(name) == version
        if name.lower() in ha_pins:
            assert ha_pins[name.lower()] == {version}, (req, ha_pins[name.lower()])


async def test_setup_retries_while_the_port_cannot_open(hass: HomeAssistant, tmp_path: Path) -> None:
    """A missing port at startup: ConfigEntryNotReady (HA retries), no reader thread, no error."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="HQX", title="SmartSolar",
                            data={"port": str(tmp_path / "ttyGONE"), "labels": ["V"]})
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "port_unavailable"
    assert "ttyGONE" in entry.error_reason_translation_placeholders["port"]


class _Counted:
    """Counts VEDevice instances: one per (re)load of the entry."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = component.VEDevice

        def counting(*args: object) -> component.VEDevice:
            self.count += 1
            return original(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(component, "VEDevice", counting)


async def _setup_mppt(hass: HomeAssistant, sim: Simulator) -> config_entries.ConfigEntry:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"port": str(sim.path("mppt"))})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry: config_entries.ConfigEntry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def test_reconfigure_of_a_loaded_entry_reloads_it_once(
        hass: HomeAssistant, scan_sim: Simulator, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The new spelling of the port is stored and the entry reloads once, with live values."""
    counted = _Counted(monkeypatch)
    entry = await _setup_mppt(hass, scan_sim)
    assert counted.count == 1
    link = tmp_path / "ttyLINK"
    link.symlink_to(scan_sim.path("mppt"))
    result = await hass.config_entries.flow.async_init(DOMAIN, context={
        "source": config_entries.SOURCE_RECONFIGURE, "entry_id": entry.entry_id})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"port": str(link)})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data["port"] == str(link)
    assert entry.state is ConfigEntryState.LOADED
    assert counted.count == 2
    volt = entity_id(hass, "sensor", entry.unique_id or "", "V")
    await wait_for(hass, lambda: hass.states.get(volt) is not None
                   and hass.states.get(volt).state not in ("unavailable", "unknown"),
                   what="values after the reload")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_new_options_reload_a_loaded_entry_once(
        hass: HomeAssistant, scan_sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Options saved: one reload (OptionsFlowWithReload on new HA, a listener on old HA)."""
    counted = _Counted(monkeypatch)
    entry = await _setup_mppt(hass, scan_sim)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"stale_after": 7, "fields": ["V", "H19"]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert counted.count == 2
    assert entry.runtime_data.reader.stale_after == 7.0
    # Saving the same options again changes nothing: no reload.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"stale_after": 7, "fields": ["V", "H19"]})
    await hass.async_block_till_done()
    assert counted.count == 2
    assert await hass.config_entries.async_unload(entry.entry_id)
