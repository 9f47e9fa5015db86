"""The sqlite integration is discovered, registers itself, and its sample validates."""

from __future__ import annotations

from pathlib import Path

import vemonitor_integrations.sqlite as sqlite_integration
import yaml
from vemonitor_integrations.sqlite.schema import SqliteOutputItem

from vemonitor.api import load_item as typed
from vemonitor.registry import Registry

SAMPLE = Path(sqlite_integration.__file__).with_name("sample.yaml")


def test_registry_discovers_and_sets_up_sqlite() -> None:
    """Discovery finds the manifest; get() runs setup and returns schema and factory."""
    registry = Registry().discover()
    assert registry.manifests["sqlite"].provides == ("output",)
    registration = registry.get("sqlite")
    assert registration.output_item is SqliteOutputItem
    assert registration.sink_factory is sqlite_integration.create_sink


def test_sample_items_validate_against_the_schema() -> None:
    """Every item of sample.yaml is a valid SqliteOutputItem."""
    items = yaml.safe_load(SAMPLE.read_text())["outputs"]["sqlite"]
    for index, raw in enumerate(items):
        item = typed(SqliteOutputItem, raw, str(SAMPLE), f"outputs.sqlite[{index}]")
        assert isinstance(item, SqliteOutputItem)
        assert item.retention_days == 30 and item.path is None
