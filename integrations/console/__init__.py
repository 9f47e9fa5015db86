"""Console output: show what is sent, as a live table on a terminal or as log lines."""

from __future__ import annotations

from typing import Any

from vemonitor_integrations.console.schema import ConsoleOutputItem

from vemonitor.api import Context, ManifestInfo, OutputItem, Registrar, Sink


def create_sink(item: OutputItem, connector_config: Any | None, ctx: Context) -> Sink:
    """Build the console sink for one output item (nothing is shown until ``start()``)."""
    from vemonitor_integrations.console.sink import ConsoleSink  # lazily: only when the output is used

    del connector_config, ctx  # stdout needs no connector, no clock, no state
    if not isinstance(item, ConsoleOutputItem):  # the registry types factories by the base item
        raise TypeError(f"console output needs a ConsoleOutputItem, got {type(item).__name__}")
    return ConsoleSink(item)


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the console output item schema and its sink factory."""
    registry.register(manifest.domain, output_item=ConsoleOutputItem, sink_factory=create_sink,
                      durable=False)  # a screen needs no disk writes
