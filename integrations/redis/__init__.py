"""Redis: time-series hashes (vemonitor_m8's layout) or streams, as output, input and cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vemonitor.api import Cache, Context, ManifestInfo, OutputItem, Registrar, SendCost, Sink, Source

if TYPE_CHECKING:
    from vemonitor_integrations.redis.schema import RedisConnector, RedisOutput


def setup(registry: Registrar, manifest: ManifestInfo) -> None:
    """Register the connector and item schemas and the source, sink and cache factories."""
    from vemonitor_integrations.redis.schema import RedisConnector, RedisInput, RedisOutput

    registry.register(manifest.domain, connector=RedisConnector, input_item=RedisInput,
                      output_item=RedisOutput, source_factory=create_source,
                      sink_factory=create_sink, cache_factory=create_cache,
                      cost=SendCost(requests="send", redis_commands=commands_per_hour))


def commands_per_hour(item: OutputItem, inputs: int, sends: float, rows: float) -> float:
    """Return the Redis commands per hour of an output (for the write budget).

    Each send is one round trip running the write script (integrations/redis/layout.py);
    the commands it runs are 8 per input for HmapTimeSeries, 3 plus one per row for Stream.
    """
    structure = str(getattr(item, "structure", "HmapTimeSeries"))
    return sends * 3 + rows if "Stream" in structure else sends * 8 * inputs


def create_sink(item: RedisOutput, connector: RedisConnector | None, ctx: Context) -> Sink:
    """Build the sink of one output item (no I/O until ``start()``)."""
    from vemonitor_integrations.redis.sink import RedisSink  # lazily: redis-py only when used

    if connector is None:
        raise ValueError(f"redis output {item.name!r} needs a source (a redis connector)")
    return RedisSink(item, connector, ctx)


def create_source(name: str, connector: RedisConnector, ctx: Context) -> Source:
    """Build the source of one connector; input items attach with ``subscribe(item)``."""
    from vemonitor_integrations.redis.source import RedisSource

    return RedisSource(name, connector, ctx)


def create_cache(connector: RedisConnector, max_points: int, ctx: Context) -> Cache:
    """Build the block's redis_cache (connects on first use)."""
    from vemonitor_integrations.redis.cache import RedisCache

    return RedisCache(connector, max_points, ctx)
