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
    assert set(strings["options"]["step"]["init"]["data"]) == {"stale_after", "fields"}
