"""MQTT output: JSON state topics per input, Home Assistant discovery, availability, last will."""

from __future__ import annotations

from typing import Any

from integrations.mqtt.schema import MqttConnector, MqttOutput
from vemonitor.api import Context, ManifestInfo, OutputItem, Registrar, SendCost, Sink

__all__ = ["MqttConnector", "MqttOutput", "create_sink", "setup"]


def create_sink(item: OutputItem, connector: Any | None, ctx: Context) -> Sink:
    """Build the sink of one output item (no I/O until ``start()``)."""
    from integrations.mqtt.sink import MqttSink  # lazily: paho only when used

    if not isinstance(item, MqttOutput):  # the registry types factories by the base item
        raise TypeError(f"mqtt output needs an MqttOutput, got {type(item).__name__}")
    if not isinstance(connector, MqttConnector):
        raise TypeError(f"mqtt output '{item.name}' needs an mqtt connector, got "
                        f"{type(connector).__name__}")
    return MqttSink(item, connector, ctx)


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the mqtt connector and output schemas and the sink factory."""
    registry.register(manifest.domain, connector=MqttConnector, output_item=MqttOutput,
                      sink_factory=create_sink, cost=SendCost(requests="row"))  # a publish per row
