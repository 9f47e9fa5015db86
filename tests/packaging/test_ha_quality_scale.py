"""quality_scale.yaml claims gold: every rule up to gold is done or exempt with a reason,
and each "done" that can be seen in the repository is seen.

The rule names and tiers are Home Assistant's Integration Quality Scale
(developers.home-assistant.io/docs/core/integration-quality-scale/rules, 2026-08); the
file format is the one hassfest reads in core (``rules: {name: done | {status, comment}}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from vemonitor.vedirect.tables import PRODUCTS

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "custom_components" / "vemonitor"
DOCS = ROOT / "docs" / "home-assistant.md"

TIERS: dict[str, tuple[str, ...]] = {
    "bronze": (
        "action-setup", "appropriate-polling", "brands", "common-modules",
        "config-flow-test-coverage", "config-flow", "dependency-transparency", "docs-actions",
        "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "entity-event-setup", "entity-unique-id",
        "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
        "unique-config-entry"),
    "silver": (
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage"),
    "gold": (
        "devices", "diagnostics", "discovery-update-info", "discovery", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases",
        "dynamic-devices", "entity-category", "entity-device-class",
        "entity-disabled-by-default", "entity-translations", "exception-translations",
        "icon-translations", "reconfiguration-flow", "repair-issues", "stale-devices"),
    "platinum": ("async-dependency", "inject-websession", "strict-typing"),
}


def _source(name: str) -> str:
    return (COMPONENT / name).read_text(encoding="utf-8")


def _manifest() -> dict[str, object]:
    return json.loads(_source("manifest.json"))


def _docs_has(*headings: str) -> Callable[[], bool]:
    def check() -> bool:
        text = DOCS.read_text(encoding="utf-8").lower()
        found = {h.lower() for h in re.findall(r"^#+\s+(.+)$", text, re.MULTILINE)}
        return all(any(h in heading for heading in found) for h in headings)
    return check


def _platforms() -> list[str]:
    return [p.name for p in COMPONENT.glob("*.py")
            if re.search(r"^async def async_setup_entry\(.*async_add_entities",
                         p.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
            and p.name != "__init__.py"]


# What a "done" claims, where the repository shows it.
EVIDENCE: dict[str, Callable[[], bool]] = {
    "brands": lambda: (ROOT / "brand" / "icon.png").is_file(),
    "config-flow": lambda: _manifest()["config_flow"] is True
    and "class VEMonitorConfigFlow(ConfigFlow" in _source("config_flow.py"),
    "dependency-transparency": lambda: all(
        re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9.]+", r) for r in _manifest()["requirements"]),  # type: ignore[attr-defined]
    "docs-high-level-description": _docs_has("home assistant"),
    "docs-installation-instructions": _docs_has("install"),
    "docs-removal-instructions": _docs_has("remov"),
    "entity-unique-id": lambda: "_attr_unique_id" in _source("entity.py"),
    "has-entity-name": lambda: "_attr_has_entity_name = True" in _source("entity.py"),
    "runtime-data": lambda: "entry.runtime_data = device" in _source("__init__.py"),
    "test-before-setup": lambda: "raise ConfigEntryNotReady(" in _source("__init__.py"),
    "unique-config-entry": lambda: "async_set_unique_id" in _source("config_flow.py"),
    "config-entry-unloading": lambda: "async def async_unload_entry" in _source("__init__.py"),
    "docs-configuration-parameters": _docs_has("options"),
    "integration-owner": lambda: bool(_manifest()["codeowners"]),
    "log-when-unavailable": lambda: "is unavailable" in _source("__init__.py"),
    "parallel-updates": lambda: bool(_platforms()) and all(
        re.search(r"^PARALLEL_UPDATES = \d+$", _source(p), re.MULTILINE) for p in _platforms()),
    "test-coverage": lambda: "--cov-fail-under=95" in (ROOT / ".ci" / "run").read_text(),
    "devices": lambda: "DeviceInfo(" in _source("__init__.py"),
    "diagnostics": lambda: "async_get_config_entry_diagnostics" in _source("diagnostics.py"),
    "discovery": lambda: bool(_manifest()["usb"]) and "async_step_usb" in _source("config_flow.py"),
    "discovery-update-info": lambda: "updates={CONF_PORT: path}" in _source("config_flow.py"),
    "docs-data-update": _docs_has("data update"),
    "docs-examples": _docs_has("example"),
    "docs-known-limitations": _docs_has("known limitations"),
    "docs-supported-devices": lambda: _docs_has("supported devices")() and all(
        f"| {name} | `0x{pid:04X}` |" in DOCS.read_text(encoding="utf-8")
        for pid, name in PRODUCTS.items()),
    "docs-supported-functions": _docs_has("supported functions"),
    "docs-troubleshooting": _docs_has("troubleshooting"),
    "docs-use-cases": _docs_has("use cases"),
    "entity-category": lambda: "EntityCategory.DIAGNOSTIC" in _source("entity.py"),
    "entity-device-class": lambda: "_attr_device_class" in _source("sensor.py"),
    "entity-disabled-by-default": lambda: "_attr_entity_registry_enabled_default" in _source("entity.py"),
    "entity-translations": lambda: "_attr_translation_key" in _source("entity.py")
    and "_attr_name" not in _source("entity.py"),
    "exception-translations": lambda: "translation_key=" in _source("__init__.py")
    and "exceptions" in json.loads(_source("strings.json")),
    "icon-translations": lambda: bool(json.loads(_source("icons.json"))["entity"]),
    "reconfiguration-flow": lambda: "async_step_reconfigure" in _source("config_flow.py"),
    # The control entities' actions raise a translated HomeAssistantError (issue 23).
    "action-exceptions": lambda: "raise HomeAssistantError(" in _source("__init__.py")
    and "control_failed" in json.loads(_source("strings.json"))["exceptions"],
    # Another device on the entry's port (issue 22): a repair issue.
    "repair-issues": lambda: "ir.async_create_issue(" in _source("__init__.py")
    and "wrong_device" in json.loads(_source("strings.json"))["issues"],
}


def _rules() -> dict[str, object]:
    return yaml.safe_load(_source("quality_scale.yaml"))["rules"]


def test_file_claims_gold_and_knows_every_rule() -> None:
    assert re.search(r"^# .*tier: gold\b", _source("quality_scale.yaml"), re.MULTILINE)
    known = {rule for rules in TIERS.values() for rule in rules}
    assert set(_rules()) == known


@pytest.mark.parametrize("rule", [r for tier in ("bronze", "silver", "gold") for r in TIERS[tier]])
def test_rule_up_to_gold_is_done_or_exempt_with_reason(rule: str) -> None:
    status = _rules()[rule]
    if isinstance(status, dict):
        assert status["status"] == "exempt", rule
        assert len(str(status.get("comment", ""))) > 10, f"{rule}: exempt needs its reason"
    else:
        assert status == "done", rule
        if rule in EVIDENCE:
            assert EVIDENCE[rule](), f"{rule} is marked done but the repository does not show it"


def test_docs_name_the_tested_home_assistant_versions() -> None:
    """docs/home-assistant.md names each HA version the test venvs pin."""
    text = DOCS.read_text(encoding="utf-8")
    folder = ROOT / "integrations" / "homeassistant"
    for name in ("requirements_test.txt", "requirements_test_newest.txt"):
        pinned = re.search(r"homeassistant==(\d+\.\d+\.\d+)", (folder / name).read_text())
        assert pinned is not None, name
        assert f"**{pinned.group(1)}**" in text, pinned.group(1)
