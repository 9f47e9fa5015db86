"""The mqtt integration registers itself; its schemas validate without I/O and hide secrets."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
import vemonitor_integrations.mqtt as mqtt_integration
import yaml
from vemonitor_integrations.mqtt.schema import MqttConnector, MqttOutput

from vemonitor.api import Context
from vemonitor.api import load_item as typed
from vemonitor.clock import SystemClock
from vemonitor.errors import ConfigError
from vemonitor.registry import Registry

SAMPLE = Path(mqtt_integration.__file__).with_name("sample.yaml")


def test_registry_discovers_and_sets_up_mqtt() -> None:
    """Discovery finds the manifest (output, local_push, paho-mqtt); setup registers schemas."""
    registry = Registry().discover()
    manifest = registry.manifests["mqtt"]
    assert manifest.provides == ("input", "output") and manifest.iot_class == "local_push"
    assert manifest.requirements == ("paho-mqtt>=2.0",)
    reg = registry.get("mqtt")
    assert (reg.connector, reg.output_item) == (MqttConnector, MqttOutput)
    assert reg.sink_factory is mqtt_integration.create_sink


def test_sample_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connector and output of sample.yaml validates; the password comes from the env."""
    monkeypatch.setenv("VEMONITOR_MQTT_PASSWORD", "from-the-environment")
    sample = yaml.safe_load(SAMPLE.read_text())
    from omegaconf import OmegaConf

    connectors = OmegaConf.to_container(OmegaConf.create(sample["appConnectors"]), resolve=True)
    assert isinstance(connectors, dict)
    for name, raw in connectors["mqtt"].items():
        conn = typed(MqttConnector, raw, str(SAMPLE), f"appConnectors.mqtt.{name}")
        assert "from-the-environment" not in repr(conn)
    assert conn.password == "from-the-environment"
    for index, raw in enumerate(sample["outputs"]["mqtt"]):
        typed(MqttOutput, raw, str(SAMPLE), f"outputs.mqtt[{index}]")


@pytest.mark.parametrize(("schema", "raw", "message"), [
    (MqttConnector, {"port": 0}, "port"),
    (MqttConnector, {"host": "bad host"}, "host"),
    (MqttConnector, {"protocol": "4"}, "protocol"),
    (MqttConnector, {"ca_certs": "/ca.pem"}, "tls: true"),
    (MqttConnector, {"tls": True, "certfile": "/c.pem"}, "go together"),
    (MqttConnector, {"password": "p"}, "username"),
    (MqttConnector, {"keepalive": 1}, "keepalive"),
    (MqttConnector, {"timeout": 0}, "timeout"),
    (MqttOutput, {}, "source"),
    (MqttOutput, {"source": "l", "qos": 3}, "qos"),
    (MqttOutput, {"source": "l", "base_topic": "a/#"}, "base_topic"),
    (MqttOutput, {"source": "l", "base_topic": "/a"}, "base_topic"),
    (MqttOutput, {"source": "l", "discovery_prefix": ""}, "discovery_prefix"),
    (MqttOutput, {"source": "l", "device_ids": {"bmv": "a b"}}, "device_ids.bmv"),
])
def test_invalid_settings_give_one_clear_message(schema: type, raw: dict[str, Any],
                                                 message: str) -> None:
    """Each rule gives a ConfigError naming the key; no I/O happens."""
    with pytest.raises(ConfigError, match=message):
        typed(schema, raw, "conf.yaml", "key")


def test_password_never_in_repr_or_errors() -> None:
    """repr() of a connector does not show the password; validation errors do not either."""
    conn = typed(MqttConnector, {"username": "u", "password": "hunter2"}, None, "c")
    assert "hunter2" not in repr(conn)
    with pytest.raises(ConfigError) as caught:
        typed(MqttConnector, {"username": "u", "password": "hunter2", "port": 0}, None, "c")
    assert "hunter2" not in str(caught.value)


def test_default_client_id_is_stable_per_host_block_and_output() -> None:
    """The default client id derives from host name, block and output: the same every run."""
    conn = MqttConnector()
    first = conn.resolved_client_id("BatteryMonitor", "mqtt")
    assert first == conn.resolved_client_id("BatteryMonitor", "mqtt")
    host = re.sub(r"[^A-Za-z0-9_-]+", "_", socket.gethostname())
    assert first == f"vemonitor-{host}-BatteryMonitor-mqtt"
    assert first != conn.resolved_client_id("BatteryMonitor", "mqtt_1")
    assert MqttConnector(client_id="mine").resolved_client_id("B", "o") == "mine"


def test_factory_builds_without_io(tmp_path: Path) -> None:
    """create_sink does no I/O (an unreachable broker is fine until start())."""
    ctx = Context(clock=SystemClock(), state_dir=str(tmp_path), block="B")
    sink = mqtt_integration.create_sink(MqttOutput(name="m", source="x"),
                                        MqttConnector(host="192.0.2.1"), ctx)
    assert "192.0.2.1:1883" in repr(sink)
    sink.close()
    sink.close()
    with pytest.raises(TypeError):
        mqtt_integration.create_sink(MqttOutput(name="m", source="x"), None, ctx)
