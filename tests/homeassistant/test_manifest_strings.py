"""Static checks hassfest would do for us: manifest keys, translations cover every flow reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

COMPONENT = Path(__file__).resolve().parents[2] / "custom_components" / "vemonitor"


def test_manifest() -> None:
    manifest = json.loads((COMPONENT / "manifest.json").read_text())
    assert manifest["domain"] == "vemonitor"
    assert manifest["config_flow"] is True
    assert manifest["integration_type"] == "device"
    assert manifest["iot_class"] == "local_push"
    assert manifest["version"]
    assert manifest["requirements"] == ["pyserial==3.5"]  # on PyPI; not `vemonitor`
    assert {"vid": "0403", "pid": "6015", "description": "*ve direct*"} in manifest["usb"]
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"] and keys[2:] == sorted(keys[2:])  # hassfest order


def test_translations_match_and_cover_flow() -> None:
    strings = json.loads((COMPONENT / "strings.json").read_text())
    assert json.loads((COMPONENT / "translations" / "en.json").read_text()) == strings
    source = (COMPONENT / "config_flow.py").read_text()
    errors = set(re.findall(r'errors\["base"\] = "(\w+)"', source))
    aborts = set(re.findall(r'reason="(\w+)"', source)) | set(re.findall(r'AbortFlow\("(\w+)"\)', source))
    steps = set(re.findall(r'step_id="(\w+)"', source))
    assert errors == {"no_device"}
    assert errors <= set(strings["config"]["error"])
    assert aborts <= set(strings["config"]["abort"])
    assert {"already_configured", "reconfigure_successful"} <= set(strings["config"]["abort"])
    assert steps - {"init"} <= set(strings["config"]["step"])
    # stale_after, fields, and one choice per control of the core's allow-list
    from vemonitor.control import CONTROLS

    assert set(strings["options"]["step"]["init"]["data"]) == {"stale_after", "fields", *CONTROLS}
    assert set(strings["selector"]["control_mode"]["options"]) == {"disabled", "dry_run",
                                                                   "enabled"}
    assert "dry run" in strings["options"]["step"]["init"]["description"].lower()


def _platform(kind: str) -> str | None:
    """Return the platform a field kind becomes (None: not an entity)."""
    return {"onoff": "binary_sensor", "int": "sensor", "scaled": "sensor", "code": "sensor",
            "flags": "sensor"}.get(kind)


def test_every_entity_has_a_translated_name_and_known_icon_keys() -> None:
    """entity-translations: each exposable field's name is in strings.json; icons name only those."""
    from custom_components.vemonitor.const import IDENTITY_LABELS, translation_key
    from vemonitor.vedirect.fields import FIELDS

    strings = json.loads((COMPONENT / "strings.json").read_text())
    expected: dict[str, set[str]] = {"sensor": set(), "binary_sensor": set()}
    for spec in FIELDS:
        platform = _platform(spec.kind)
        if platform and spec.label not in IDENTITY_LABELS:
            expected[platform].add(translation_key(spec.label))
    # HEX sensors (registers and the day record), hexdata.HEX_SENSORS.
    from custom_components.vemonitor.hexdata import HEX_SENSOR_KEYS

    expected["sensor"] |= set(HEX_SENSOR_KEYS)
    for platform, keys in expected.items():
        names = strings["entity"][platform]
        assert set(names) == keys, platform
        assert all(re.fullmatch(r"[a-z0-9_]+", key) and names[key]["name"] for key in keys)
    icons = json.loads((COMPONENT / "icons.json").read_text())
    for platform, entries in icons["entity"].items():
        assert set(entries) <= expected[platform], platform
        assert all(entry["default"].startswith("mdi:") for entry in entries.values())


def test_every_form_field_has_a_description() -> None:
    """data_description for each field of each form (config steps and options)."""
    strings = json.loads((COMPONENT / "strings.json").read_text())
    steps = [*strings["config"]["step"].values(), *strings["options"]["step"].values()]
    for step in steps:
        assert set(step.get("data_description", {})) == set(step.get("data", {})), step["title"]
    assert strings["exceptions"]["port_unavailable"]["message"]
    assert strings["issues"]["wrong_device"]["title"]
