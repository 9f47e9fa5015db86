"""InfluxDB line protocol output (v2 and 1.x write APIs) and InfluxQL input (the seed's influxDb2)."""

from __future__ import annotations

from typing import Any

from vemonitor.api import Context, ManifestInfo, Registrar, SendCost, Sink, Source


def create_sink(item: Any, connector: Any | None, ctx: Context) -> Sink:
    """Build the sink of one output item (no I/O until ``write()``)."""
    from vemonitor_integrations.influxdb2.schema import InfluxConnector
    from vemonitor_integrations.influxdb2.sink import InfluxSink  # lazily: requests only when used

    if not isinstance(connector, InfluxConnector):
        raise TypeError(f"influxDb2 output '{item.name}' needs an influxDb2 connector, got "
                        f"{type(connector).__name__}")
    return InfluxSink(item, connector, ctx)


def create_source(name: str, connector: Any, ctx: Context) -> Source:
    """Build the source of one connector; input items attach with ``subscribe(item)``."""
    from vemonitor_integrations.influxdb2.source import InfluxSource

    return InfluxSource(name, connector, ctx)


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the connector, input and output schemas and the source and sink factories."""
    from vemonitor_integrations.influxdb2.schema import InfluxConnector, InfluxInput, InfluxOutput

    registry.register(manifest.domain, connector=InfluxConnector, input_item=InfluxInput,
                      output_item=InfluxOutput, source_factory=create_source,
                      sink_factory=create_sink, cost=SendCost(requests="send"))  # one POST
