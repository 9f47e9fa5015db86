"""The influxDb2 integration registers itself under the seed's name; schemas validate without I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import vemonitor_integrations.influxdb2 as influx_integration
import yaml
from omegaconf import OmegaConf
from vemonitor_integrations.influxdb2.schema import InfluxConnector, InfluxInput, InfluxOutput

from vemonitor.api import load_item as typed
from vemonitor.errors import ConfigError
from vemonitor.registry import Registry

SAMPLE = Path(influx_integration.__file__).with_name("sample.yaml")


def test_registry_finds_influxdb2_by_the_seeds_name() -> None:
    """The seed's key `influxDb2` is an alias of the domain; input and output are registered."""
    registry = Registry().discover()
    assert registry.canonical("influxDb2") == "influxdb2"
    reg = registry.get("influxDb2")
    assert (reg.connector, reg.input_item, reg.output_item) == (
        InfluxConnector, InfluxInput, InfluxOutput)
    assert reg.cost.requests == "send" and reg.durable


def test_sample_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connector, output and input of sample.yaml validates; secrets come from the env."""
    monkeypatch.setenv("VEMONITOR_INFLUX_TOKEN", "tok-from-env")
    monkeypatch.setenv("VEMONITOR_INFLUX_PASSWORD", "pw-from-env")
    sample = OmegaConf.to_container(OmegaConf.create(yaml.safe_load(SAMPLE.read_text())),
                                    resolve=True)
    assert isinstance(sample, dict)
    for name, raw in sample["appConnectors"]["influxDb2"].items():
        conn = typed(InfluxConnector, raw, str(SAMPLE), f"appConnectors.influxDb2.{name}")
        assert "from-env" not in repr(conn)
    for index, raw in enumerate(sample["outputs"]["influxDb2"]):
        typed(InfluxOutput, raw, str(SAMPLE), f"outputs.influxDb2[{index}]")
    for index, raw in enumerate(sample["inputs"]["influxDb2"]):
        typed(InfluxInput, raw, str(SAMPLE), f"inputs.influxDb2[{index}]")


def test_seed_connector_keys_validate_as_written() -> None:
    """The seed's connector (timeout 6000 ms, verify_ssl False) is valid as it stands."""
    seed = {"active": True, "host": "http://192.168.1.5:8082", "org": "vemonitor",
            "auth": "My_InfluxDb2_AuthKey", "timeout": 6000, "verify_ssl": False}
    conn = typed(InfluxConnector, seed, "vm_appConnectors.yaml", "appConnectors.influxDb2.local")
    assert conn.timeout_s() == 6.0 and "My_InfluxDb2_AuthKey" not in repr(conn)


@pytest.mark.parametrize(("schema", "raw", "message"), [
    (InfluxConnector, {"host": "ftp://x"}, "http"),
    (InfluxConnector, {"host": "http://u:p@x"}, "user:password"),
    (InfluxConnector, {"host": "http://x?token=1"}, "query"),
    (InfluxConnector, {"host": "http://x", "api": "v3"}, "api"),
    (InfluxConnector, {"host": "http://x", "timeout": 0}, "milliseconds"),
    (InfluxConnector, {"host": "http://x", "auth": "a b"}, "whitespace"),
    (InfluxConnector, {"host": "http://x", "username": "u"}, "username needs auth"),
    (InfluxOutput, {"db": "b"}, "source"),
    (InfluxOutput, {"source": "l"}, "db"),
    (InfluxOutput, {"source": "l", "db": "b", "precision": "m"}, "precision"),
    (InfluxOutput, {"source": "l", "db": "b", "tags": {"a#": "x"}}, "tag key"),
    (InfluxInput, {"name": "i", "source": "l", "db": 'a"b'}, "db"),
    (InfluxInput, {"name": "i", "source": "l", "db": "d", "tags": {"s": "x'y"}}, "tags.s"),
])
def test_invalid_settings_give_one_clear_message(schema: type, raw: dict[str, Any],
                                                 message: str) -> None:
    """Each rule gives a ConfigError naming the key; no I/O happens."""
    with pytest.raises(ConfigError, match=message):
        typed(schema, raw, "conf.yaml", "key")
