"""EmonCms output: batches of rows posted to emoncms's input/bulk API, one node per input."""

from __future__ import annotations

from typing import Any

from vemonitor_integrations.emoncms.errors import (
    EmoncmsAuthError,
    EmoncmsError,
    EmoncmsRejected,
    EmoncmsUnavailable,
)
from vemonitor_integrations.emoncms.names import check_names
from vemonitor_integrations.emoncms.schema import EmoncmsConnector, EmoncmsOutput

from vemonitor.api import Context, ManifestInfo, OutputItem, Registrar, SendCost, Sink

__all__ = ["EmoncmsAuthError", "EmoncmsConnector", "EmoncmsError", "EmoncmsOutput",
           "EmoncmsRejected", "EmoncmsUnavailable", "check_names", "create_sink", "setup"]


def create_sink(item: OutputItem, connector: Any | None, ctx: Context) -> Sink:
    """Build the sink of one output item (no I/O until ``start()``)."""
    from vemonitor_integrations.emoncms.sink import EmoncmsSink  # lazily: requests only when used

    if not isinstance(item, EmoncmsOutput):  # the registry types factories by the base item
        raise TypeError(f"emoncms output needs an EmoncmsOutput, got {type(item).__name__}")
    if not isinstance(connector, EmoncmsConnector):
        raise TypeError(f"emoncms output '{item.name}' needs an emoncms connector, got "
                        f"{type(connector).__name__}")
    return EmoncmsSink(item, connector, ctx)


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the emoncms connector and output schemas and the sink factory."""
    registry.register(manifest.domain, connector=EmoncmsConnector, output_item=EmoncmsOutput,
                      sink_factory=create_sink, cost=SendCost(requests="send"))  # one bulk POST
