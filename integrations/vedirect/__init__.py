"""VE.Direct serial input: one reader per port, shared by every input naming the connector."""

from __future__ import annotations

from typing import Any

from vemonitor.api import Context, ManifestInfo, Registrar, Source


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the serial connector and input schemas and the source factory."""
    from vemonitor_integrations.vedirect.schema import VedirectConnector, VedirectInput

    registry.register(manifest.domain, connector=VedirectConnector, input_item=VedirectInput,
                      source_factory=_source)


def _source(name: str, config: Any, context: Context) -> Source:
    from vemonitor_integrations.vedirect.source import VedirectSource

    return VedirectSource(name, config, context)
