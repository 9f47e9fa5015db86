"""The console integration is discovered, registers itself, and its sample validates."""

from __future__ import annotations

from pathlib import Path

import vemonitor_integrations.console as console_integration
import yaml
from vemonitor_integrations.console.schema import ConsoleOutputItem

from vemonitor.api import load_item as typed
from vemonitor.registry import Registry

SAMPLE = Path(console_integration.__file__).with_name("sample.yaml")


def test_registry_discovers_and_sets_up_console() -> None:
    """Discovery finds the manifest; get() runs setup and returns schema and factory."""
    registry = Registry().discover()
    assert registry.manifests["console"].iot_class == "local_push"
    registration = registry.get("console")
    assert registration.output_item is ConsoleOutputItem
    assert registration.sink_factory is console_integration.create_sink


def test_sample_items_validate_against_the_schema() -> None:
    """Every item of sample.yaml is a valid ConsoleOutputItem."""
    items = yaml.safe_load(SAMPLE.read_text())["outputs"]["console"]
    for index, raw in enumerate(items):
        item = typed(ConsoleOutputItem, raw, str(SAMPLE), f"outputs.console[{index}]")
        assert isinstance(item, ConsoleOutputItem)
        assert item.mode == "auto" and item.max_columns == 12
