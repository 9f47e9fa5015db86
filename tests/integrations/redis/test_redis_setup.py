"""The redis integration registers itself; its schemas type the seed's files and the sample."""

from __future__ import annotations

from pathlib import Path

import pytest
import vemonitor_integrations.redis as redis_integration
import yaml
from vemonitor_integrations.redis.schema import RedisConnector, RedisInput, RedisOutput, Structure

from tests.shared import SEED_CONFIGS, require_shared
from vemonitor.api import load_item as typed
from vemonitor.config.build import CacheSpec, build_run
from vemonitor.config.legacy import load_legacy
from vemonitor.errors import ConfigError
from vemonitor.registry import Registry

SAMPLE = Path(redis_integration.__file__).with_name("sample.yaml")


def test_registry_discovers_and_sets_up_redis() -> None:
    """Discovery finds the manifest; setup registers schemas and the three factories."""
    registry = Registry().discover()
    assert registry.manifests["redis"].provides == ("input", "output", "cache")
    reg = registry.get("redis")
    assert (reg.connector, reg.input_item, reg.output_item) == (RedisConnector, RedisInput,
                                                               RedisOutput)
    assert reg.sink_factory is redis_integration.create_sink
    assert reg.source_factory is redis_integration.create_source
    assert reg.cache_factory is redis_integration.create_cache


def test_seed_redis_block_validates() -> None:
    """vedirect_to_redis: the redis output, its connector and redis_cache are typed."""
    legacy = load_legacy(require_shared(SEED_CONFIGS / "vemonitor_m8" / "vedirect_to_redis"))
    block = {**legacy.blocks[0], "args": {}}  # the battery bank is not this test's business
    cfg = {"block": block, "appConnectors": legacy.sections["appConnectors"]}
    spec = build_run(cfg, Registry().discover(), legacy.origins)
    (out,) = spec.outputs
    assert isinstance(out.item, RedisOutput)
    assert out.item.redis_node == "bmv700"
    assert out.item.structure is Structure.HmapTimeSeries and out.item.max_items == 3600
    local = spec.connectors[("redis", "local")].config
    assert isinstance(local, RedisConnector) and (local.host, local.port) == ("127.0.0.1", 6379)
    assert spec.cache == CacheSpec("redis", "local", 120, "redis_cache")  # the seed's key, generic


def test_seed_connectors_with_passwords_type_and_hide_them() -> None:
    """Every seed redis connector types; repr never shows the password."""
    path = require_shared(SEED_CONFIGS / "vemonitor_m8" / "vm_appConnectors.yaml")
    connectors = yaml.safe_load(path.read_text())["appConnectors"]["redis"]
    for name, raw in connectors.items():
        conn = typed(RedisConnector, raw, str(path), f"appConnectors.redis.{name}")
        assert "My_Redis_Server_Password" not in repr(conn)


def test_sample_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connector and item of sample.yaml validates; the password comes from the env."""
    monkeypatch.setenv("VEMONITOR_REDIS_PASSWORD", "from-the-environment")
    sample = yaml.safe_load(SAMPLE.read_text())
    for name, raw in sample["appConnectors"]["redis"].items():
        conn = typed(RedisConnector, raw, str(SAMPLE), f"appConnectors.redis.{name}")
        assert "from-the-environment" not in repr(conn)
    assert conn.password == "from-the-environment"
    for index, raw in enumerate(sample["outputs"]["redis"]):
        typed(RedisOutput, raw, str(SAMPLE), f"outputs.redis[{index}]")
    for index, raw in enumerate(sample["inputs"]["redis"]):
        typed(RedisInput, raw, str(SAMPLE), f"inputs.redis[{index}]")


@pytest.mark.parametrize(("schema", "raw", "message"), [
    (RedisOutput, {"source": "local"}, "redis_node is required"),
    (RedisOutput, {"redis_node": "n"}, "source"),
    (RedisOutput, {"source": "l", "structure": "Stream", "stream_prefix": ""}, "stream_prefix"),
    (RedisOutput, {"source": "l", "redis_node": "n", "max_items": 0}, "max_items"),
    (RedisOutput, {"source": "l", "redis_node": "n", "structure": "List"}, "structure"),
    (RedisInput, {"name": "i", "source": "l", "structure": "HmapTimeSeries"}, "redis_node"),
    (RedisConnector, {"host": "localhost", "port": 70000}, "port"),
    (RedisConnector, {"ssl_ca_certs": "/ca.pem"}, "ssl: true"),
    (RedisConnector, {"cluster": True, "db": 1}, "only db 0"),
    (RedisConnector, {"startup_nodes": ["10.0.0.1"]}, "host:port"),
    (RedisConnector, {"wait_replicas": -1}, "wait_replicas"),
    (RedisConnector, {"ssl": True, "ssl_certfile": "/c.pem"}, "go together"),
    (RedisConnector, {"ssl": True, "ssl_cert_reqs": "maybe"}, "ssl_cert_reqs"),
])
def test_invalid_items_are_one_clear_config_error(schema: type, raw: dict[str, object],
                                                  message: str) -> None:
    """Cross-field rules and enums give a ConfigError naming the key, no I/O."""
    with pytest.raises(ConfigError, match=message):
        typed(schema, raw, "vm_conf.yaml", "block.outputs.redis[0]")


def test_connector_defaults_are_short_timeouts_and_localhost() -> None:
    """Defaults: localhost:6379/0, 5 s timeouts, TLS off with certificates required when on."""
    conn = typed(RedisConnector, {"host": "localhost"}, None, "c")
    assert conn.address() == "localhost:6379/0"
    assert (conn.socket_timeout, conn.socket_connect_timeout) == (5.0, 5.0)
    assert conn.ssl is False and conn.ssl_cert_reqs == "required"
