"""JSON Lines output: append every row an output sends to a local file, one JSON object a line."""

from __future__ import annotations

from typing import Any

from vemonitor.api import Context, ManifestInfo, OutputItem, Registrar, SendCost, Sink

from vemonitor_jsonl.schema import JsonlOutputItem


def create_sink(item: OutputItem, connector_config: Any | None, ctx: Context) -> Sink:
    """Build the file sink for one output item (no I/O until ``start()``)."""
    from vemonitor_jsonl.sink import JsonlSink  # lazily: only when the output is used

    del connector_config  # a local file needs no connector
    if not isinstance(item, JsonlOutputItem):  # the registry types factories by the base item
        raise TypeError(f"jsonl output needs a JsonlOutputItem, got {type(item).__name__}")
    return JsonlSink(item, ctx.state_dir)


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the jsonl output item schema, its sink factory and what a send costs."""
    registry.register(manifest.domain, output_item=JsonlOutputItem, sink_factory=create_sink,
                      cost=SendCost(local_writes=1))  # one append (and fsync) per send
