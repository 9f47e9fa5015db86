"""Issue 14 item 4: TLS verification on by default, host name checked, risks said once."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from vemonitor_integrations.emoncms.schema import EmoncmsConnector
from vemonitor_integrations.mqtt.schema import MqttConnector
from vemonitor_integrations.redis.client import connect
from vemonitor_integrations.redis.schema import RedisConnector

from vemonitor import risks
from vemonitor.schema import MetricsConfig


def _spec(*configs: Any, host: str = "127.0.0.1", port: int | None = None) -> Any:
    return SimpleNamespace(outputs=(), connectors={str(i): SimpleNamespace(config=c)
                                       for i, c in enumerate(configs)},
                           runtime=SimpleNamespace(metrics=MetricsConfig(port=port, host=host)))


def test_redis_tls_checks_the_host_name_by_default() -> None:
    """ssl_check_hostname is passed explicitly (redis-py 5.0.8 accepted a certificate for
    CN=evil.example when it was left unset)."""
    kwargs = connect(RedisConnector(host="127.0.0.1", ssl=True)).connection_pool.connection_kwargs
    assert kwargs["ssl_check_hostname"] is True
    assert kwargs["ssl_cert_reqs"] == "required"


@pytest.mark.parametrize(("config", "words"), [
    (RedisConnector(host="127.0.0.1", ssl=True, ssl_cert_reqs="none"), "verification is off"),
    (RedisConnector(host="127.0.0.1", ssl=True, ssl_check_hostname=False), "host name check"),
    (EmoncmsConnector(addr="https://emon.example", apikey="a" * 32, verify_tls=False),
     "verification is off"),
    (MqttConnector(host="127.0.0.1", tls=True, insecure=True), "host name check"),
])
def test_turning_verification_off_is_one_warning(caplog: pytest.LogCaptureFixture,
                                                 config: Any, words: str) -> None:
    """Redis ssl_cert_reqs=none, EmonCms verify_tls=false...: one WARNING naming the risk."""
    with caplog.at_level(logging.WARNING):
        risks.warn(_spec(config))
    assert len(caplog.records) == 1 and words in caplog.messages[0]


def test_safe_settings_say_nothing(caplog: pytest.LogCaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults (verification on, metrics on loopback, no CA override): no warning."""
    for name in risks.CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level(logging.WARNING):
        risks.warn(_spec(RedisConnector(host="h", ssl=True), port=9477))
        risks.warn(_spec(EmoncmsConnector(addr="https://e.example", apikey="a" * 32),
                         host="::1", port=9477))
    assert caplog.records == []


def test_metrics_beyond_loopback_and_ca_override_are_reported(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """metrics.host=0.0.0.0 and REQUESTS_CA_BUNDLE: one WARNING each."""
    for name in risks.CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/other.pem")
    with caplog.at_level(logging.WARNING):
        risks.warn(_spec(host="0.0.0.0", port=9477))
    assert len(caplog.records) == 2
    assert "0.0.0.0:9477" in caplog.messages[0] and "REQUESTS_CA_BUNDLE" in caplog.messages[1]


def test_non_ascii_emoncms_key_is_refused() -> None:
    """Item 10: a non-Latin-1 api key validated, then failed every send for ever."""
    with pytest.raises(ValueError, match="non-ASCII"):
        EmoncmsConnector(addr="http://127.0.0.1", apikey="clé" + "a" * 29).validate()
