"""SQLite output: an embedded local store of every row sent, in the state directory."""

from __future__ import annotations

from typing import Any

from vemonitor_integrations.sqlite.schema import SqliteOutputItem

from vemonitor.api import Context, ManifestInfo, OutputItem, Registrar, SendCost, Sink


def create_sink(item: OutputItem, connector_config: Any | None, ctx: Context) -> Sink:
    """Build the store for one output item (no I/O until ``start()``)."""
    from vemonitor_integrations.sqlite.sink import SqliteSink  # lazily: only when the output is used

    del connector_config  # a local file needs no connector
    if not isinstance(item, SqliteOutputItem):  # the registry types factories by the base item
        raise TypeError(f"sqlite output needs a SqliteOutputItem, got {type(item).__name__}")
    return SqliteSink(item, ctx)


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the sqlite output item schema and its sink factory."""
    registry.register(manifest.domain, output_item=SqliteOutputItem, sink_factory=create_sink,
                      cost=SendCost(local_writes=1))  # one transaction in the store per send
