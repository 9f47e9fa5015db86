"""The MQTT input's topic template, shared-subscription filter and state parsing (no broker)."""

from __future__ import annotations

from typing import Any

import pytest
from vemonitor_integrations.mqtt.schema import MqttInput
from vemonitor_integrations.mqtt.sink import state_payload
from vemonitor_integrations.mqtt.source import parse_state

from vemonitor.api import load_item as typed
from vemonitor.errors import ConfigError
from vemonitor.model import Row


def _item(**keys: Any) -> MqttInput:
    return typed(MqttInput, {"name": "fleet", "source": "broker", **keys}, "c.yaml", "inputs")


def test_placeholders_become_wildcards_and_share_group_prefixes_the_filter() -> None:
    """{site}/{node} are '+' levels; share_group gives the MQTT v5 $share/<group>/ form."""
    item = _item(topic="fleet/{site}/{node}/state", share_group="central")
    assert item.topic_filter() == "$share/central/fleet/+/+/state"
    assert _item().topic_filter() == "vemonitor/+/state"
    assert item.captures("fleet/boat/bmv700/state") == {"site": "boat", "node": "bmv700"}
    assert item.captures("fleet/boat/bmv700/availability") is None
    assert item.captures("fleet/boat/state") is None


def test_the_output_state_payload_parses_back_to_the_same_row() -> None:
    """What integrations/mqtt/sink.py publishes is read back: same time, values, plus identity."""
    row = Row(1_700_000_001.0, "bmv700", {"V": 12.5, "I": -3, "CS": "Bulk", "SER#": "HQ1",
                                         "ALARM": False, "nan": None})
    stamp, values = parse_state(state_payload(row).encode(), {"site": "boat", "node": "bmv700"})
    assert stamp == row.time
    assert values == {**row.values, "site": "boat", "node": "bmv700"}


@pytest.mark.parametrize("payload", [b"not json", b"[1]", b'{"V": 1}', b'{"time": "x"}',
                                     b'{"time": true}'])
def test_a_message_that_is_not_a_state_is_refused(payload: bytes) -> None:
    """Only a JSON object with a numeric time is a row (others are acked and counted)."""
    with pytest.raises(ValueError):
        parse_state(payload, {})


@pytest.mark.parametrize(("raw", "message"), [
    ({"topic": "fleet/{site}/state"}, "node"),
    ({"topic": "fleet/+/{node}/state"}, "level"),
    ({"topic": "$share/g/{node}"}, r"\$"),
    ({"share_group": "a/b"}, "share_group"),
    ({"qos": 0}, "qos"),
    ({"ack_after": -1}, "ack_after"),
])
def test_invalid_input_settings_give_one_clear_message(raw: dict[str, Any], message: str) -> None:
    """Each rule gives a ConfigError naming the key; no I/O happens."""
    with pytest.raises(ConfigError, match=message):
        _item(**raw)
