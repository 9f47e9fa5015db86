"""MQTT output (JSON state topics, Home Assistant discovery, availability, last will) and input."""

from __future__ import annotations

from typing import Any

from vemonitor_integrations.mqtt.schema import MqttConnector, MqttInput, MqttOutput

from vemonitor.api import Context, ManifestInfo, OutputItem, Registrar, SendCost, Sink, Source

__all__ = ["MqttConnector", "MqttInput", "MqttOutput", "create_sink", "create_source", "setup"]


def create_sink(item: OutputItem, connector: Any | None, ctx: Context) -> Sink:
    """Build the sink of one output item (no I/O until ``start()``)."""
    from vemonitor_integrations.mqtt.sink import MqttSink  # lazily: paho only when used

    if not isinstance(item, MqttOutput):  # the registry types factories by the base item
        raise TypeError(f"mqtt output needs an MqttOutput, got {type(item).__name__}")
    if not isinstance(connector, MqttConnector):
        raise TypeError(f"mqtt output '{item.name}' needs an mqtt connector, got "
                        f"{type(connector).__name__}")
    return MqttSink(item, connector, ctx)


def create_source(name: str, connector: MqttConnector, ctx: Context) -> Source:
    """Build the source of one connector; input items attach with ``subscribe(item)``."""
    from vemonitor_integrations.mqtt.source import MqttSource  # lazily: paho only when used

    return MqttSource(name, connector, ctx)


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the mqtt connector, input and output schemas and the factories."""
    registry.register(manifest.domain, connector=MqttConnector, output_item=MqttOutput,
                      input_item=MqttInput, source_factory=create_source,
                      sink_factory=create_sink, cost=SendCost(requests="row"))  # a publish per row
