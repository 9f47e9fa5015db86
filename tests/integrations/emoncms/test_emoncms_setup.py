"""The emoncms integration registers itself; its sample, the seed's items and its rules validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import vemonitor_integrations.emoncms as emoncms
import yaml
from vemonitor_integrations.emoncms.schema import EmoncmsConnector, EmoncmsOutput

from tests.integrations.emoncms.emon_helpers import FakeClock
from vemonitor.api import Context
from vemonitor.api import load_item as typed
from vemonitor.errors import ConfigError
from vemonitor.registry import Registry
from vemonitor.schema import OutputItem

SAMPLE = Path(emoncms.__file__).with_name("sample.yaml")
KEY = "0123456789abcdef0123456789abcdef"


def connector(**fields: Any) -> EmoncmsConnector:
    """Return a typed, validated connector (raises ConfigError like the core would)."""
    return typed(EmoncmsConnector, {"addr": "http://127.0.0.1:8080", "apikey": KEY, **fields},
                 "conf.yaml", "appConnectors.emoncms.local")


def test_registry_discovers_and_sets_up_emoncms() -> None:
    """Discovery finds the manifest; get() runs setup and returns the schemas and factory."""
    registry = Registry().discover()
    manifest = registry.manifests["emoncms"]
    assert (manifest.provides, manifest.iot_class) == (("output",), "cloud_push")
    registration = registry.get("emoncms")
    assert registration.connector is EmoncmsConnector
    assert registration.output_item is EmoncmsOutput
    assert registration.sink_factory is emoncms.create_sink


def test_sample_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """sample.yaml's connector (key from the environment) and items are valid."""
    monkeypatch.setenv("EMONCMS_APIKEY", KEY)
    sample = yaml.safe_load(SAMPLE.read_text())
    conf = typed(EmoncmsConnector, sample["appConnectors"]["emoncms"]["local"], str(SAMPLE),
                 "appConnectors.emoncms.local")
    assert conf.apikey == KEY and KEY not in repr(conf)
    for index, raw in enumerate(sample["outputs"]["emoncms"]):
        item = typed(EmoncmsOutput, raw, str(SAMPLE), f"outputs.emoncms[{index}]")
        assert emoncms.check_names(item, {}, conf) == []


def test_seed_output_items_validate(seed_configs_dir: Path) -> None:
    """Every emoncms output of the seed's vm_conf.yaml files is a valid EmoncmsOutput."""
    checked = 0
    for path in sorted(seed_configs_dir.rglob("vm_conf.yaml")):
        for block_index, block in enumerate(yaml.safe_load(path.read_text())["appBlocks"]):
            items = (block.get("outputs") or {}).get("emoncms") or []
            for index, raw in enumerate(items):
                key = f"appBlocks[{block_index}].outputs.emoncms[{index}]"
                item = typed(EmoncmsOutput, raw, str(path), key)
                assert item.source == "local"
                assert emoncms.check_names(item, {}) == [], key  # time_ref is ignored
                checked += 1
    assert checked >= 9  # emon_worker_m8 alone has 9


def test_seed_connectors_validate(seed_configs_dir: Path) -> None:
    """The seed's appConnectors.emoncms entries type and validate (no connection made)."""
    for path in sorted(seed_configs_dir.rglob("vm_appConnectors.yaml")):
        group = yaml.safe_load(path.read_text())["appConnectors"].get("emoncms") or {}
        for name, raw in group.items():
            conf = typed(EmoncmsConnector, raw, str(path), f"appConnectors.emoncms.{name}")
            assert conf.addr.startswith("http://") and conf.active


@pytest.mark.parametrize(("fields", "message"), [
    ({"addr": "ftp://host"}, "must start with http:// or https://"),
    ({"addr": "http://"}, "has no host"),
    ({"addr": "http://user:pw@host"}, "must not contain user:password@"),
    ({"addr": f"http://host/?apikey={KEY}"}, "must not contain a query"),
    ({"addr": "http://host:99999"}, "not a valid URL"),
    ({"apikey": ""}, "apikey is empty"),
    ({"apikey": KEY + "\n"}, "whitespace or control characters"),
    ({"timeout": 0}, "timeout must be > 0"),
    ({"node_prefix": "site/1"}, "node_prefix"),
    ({"max_node_length": 0}, "max_node_length must be >= 1"),
    ({"auth": "url"}, "auth must be one of auto, header, body"),
])
def test_connector_rules(fields: dict[str, Any], message: str) -> None:
    """Each bad connector setting is one ConfigError naming the key path, never the key."""
    with pytest.raises(ConfigError, match=message) as caught:
        connector(**fields)
    assert "appConnectors.emoncms.local" in str(caught.value)
    if "addr" not in fields:
        assert KEY not in str(caught.value)


def test_key_from_environment_is_kept_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """${oc.env:VAR} resolves to the key, which repr() does not show."""
    monkeypatch.setenv("MY_EMONCMS_KEY", KEY)
    conf = connector(apikey="${oc.env:MY_EMONCMS_KEY}")
    assert conf.apikey == KEY
    assert KEY not in repr(conf) and KEY not in str(conf)


def test_output_needs_a_source() -> None:
    """An emoncms output without source is a ConfigError."""
    with pytest.raises(ConfigError, match="needs 'source'"):
        typed(EmoncmsOutput, {"name": "x"}, "conf.yaml", "block.outputs.emoncms[0]")


def test_check_names_reports_each_bad_name() -> None:
    """One warning per node or input emoncms would change or drop; ref_cols renaming applies."""
    item = EmoncmsOutput(name="out", source="local",
                         columns={"bmv700": ["V", "I+", "time_ref"], "bad/node": ["V"]},
                         ref_cols=[["bat voltage", "V"]])
    warnings = emoncms.check_names(item, {}, connector())
    assert len(warnings) == 2
    assert "'I+'" in warnings[0] and "'bad/node'" in warnings[1]


def test_check_names_uses_input_columns_when_item_lists_none() -> None:
    """With columns {}, every input and its columns are checked; limits come from the connector."""
    item = EmoncmsOutput(name="out", source="local")
    inputs = {"bmv700": ["V", "x" * 70], "a_node_name_over_16": ["V"]}
    assert len(emoncms.check_names(item, inputs, connector())) == 2
    lifted = connector(max_node_length=None, max_name_length=None)
    assert emoncms.check_names(item, inputs, lifted) == []


def test_factory_needs_an_emoncms_connector(tmp_path: Path) -> None:
    """The sink factory refuses a missing connector or a foreign item."""
    ctx = Context(clock=FakeClock(), state_dir=str(tmp_path))
    item = EmoncmsOutput(name="out", source="local")
    with pytest.raises(TypeError, match="needs an emoncms connector"):
        emoncms.create_sink(item, None, ctx)
    with pytest.raises(TypeError, match="needs an EmoncmsOutput"):
        emoncms.create_sink(OutputItem(name="out"), connector(), ctx)
