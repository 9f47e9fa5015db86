"""The component's pure helpers (by-id links, cable serials, PIDs) and version-specific paths."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

import custom_components.vemonitor as component
from custom_components.vemonitor import const
from hw_sim import Simulator

from .test_lifecycle import _Counted, _setup_mppt

CABLE = "usb-VictronEnergy_BV_VE_Direct_cable_VE4XYZ12-if00-port0"


@pytest.fixture
def by_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A fake /dev/serial/by-id with one VE.Direct cable link to a fake node."""
    node = tmp_path / "ttyUSB7"
    node.write_text("")
    folder = tmp_path / "by-id"
    folder.mkdir()
    (folder / CABLE).symlink_to(node)
    monkeypatch.setattr(const, "BY_ID_DIR", str(folder))
    return folder, node


def test_cable_serial_from_name_link_or_hint(by_id: tuple[Path, Path], tmp_path: Path) -> None:
    folder, node = by_id
    assert const.cable_serial(str(folder / CABLE)) == "VE4XYZ12"  # the by-id name itself
    assert const.cable_serial(str(node)) == "VE4XYZ12"  # the link pointing at the node
    other = tmp_path / "ttyUSB9"
    other.write_text("")
    assert const.cable_serial(str(other), "HINT1") == "HINT1"  # USB discovery's serial
    assert const.cable_serial(str(other)) is None


def test_by_id_path_prefers_the_stable_link(by_id: tuple[Path, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder, node = by_id
    assert const.by_id_path(str(node)) == str(folder / CABLE)
    assert const.by_id_path(str(tmp_path / "ttyS0")) == str(tmp_path / "ttyS0")
    monkeypatch.setattr(const, "BY_ID_DIR", str(tmp_path / "missing"))
    assert const.by_id_path(str(node)) == str(node)
    assert const.cable_serial(str(node)) is None


@pytest.mark.parametrize(("pid", "expected"), [
    ("0xA053", "0xA053"), ("0x203", "0x0203"), ("", "unknown"), (None, "unknown"),
    ("garbage", "garbage")])
def test_normalized_pid(pid: str | None, expected: str) -> None:
    assert const.normalized_pid(SimpleNamespace(pid=pid)) == expected  # type: ignore[arg-type]


def test_translation_keys() -> None:
    assert const.translation_key("AC_OUT_V") == "ac_out_v"
    assert const.translation_key("SER#") == "ser"
    assert const.translation_key("Alarm") == "alarm"


async def test_firmware_update_reaches_the_device_registry(hass: HomeAssistant,
                                                           scan_sim: Simulator) -> None:
    """A new FW in the frames updates sw_version of the entry's device."""
    entry = await _setup_mppt(hass, scan_sim)
    entry.runtime_data._async_update_firmware("1.61")
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert [d.sw_version for d in devices] == ["1.61"]
    entry.runtime_data._async_update_firmware(None)  # a block without FW: no change
    assert dr.async_entries_for_config_entry(
        dr.async_get(hass), entry.entry_id)[0].sw_version == "1.61"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_old_home_assistant_listener_reloads_on_new_options_only(
        hass: HomeAssistant, scan_sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """HA < 2025.8's update listener: a data change (flow helpers reload) does not reload again."""
    counted = _Counted(monkeypatch)
    entry = await _setup_mppt(hass, scan_sim)
    await component._async_reload_on_new_options(hass, entry)
    await hass.async_block_till_done()
    assert counted.count == 1
    hass.config_entries.async_update_entry(entry, options={"stale_after": 9.0})
    await component._async_reload_on_new_options(hass, entry)
    await hass.async_block_till_done()
    assert counted.count >= 2
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.reader.stale_after == 9.0
    assert await hass.config_entries.async_unload(entry.entry_id)
