"""The packaged fleet blocks compose with Hydra and validate (connectors=fleet)."""

from __future__ import annotations

import pytest

from vemonitor.cli import preflight
from vemonitor.compose import prepare, register_resolvers, register_schema


@pytest.mark.parametrize(("block", "extra", "inputs", "outputs"), [
    ("FleetCentral", [], {"mqtt"}, {"influxdb2", "redis"}),
    ("FleetEdge", ["block.outputs.mqtt.fleet.base_topic=fleet/boat"], {"vedirect"}, {"mqtt"}),
])
def test_fleet_blocks_compose_and_validate(block: str, extra: list[str], inputs: set[str],
                                           outputs: set[str]) -> None:
    """`vemonitor block=FleetCentral connectors=fleet` is a valid configuration."""
    register_resolvers()
    register_schema()
    spec, registry = preflight(prepare([f"block={block}", "connectors=fleet", *extra]))
    assert spec.block == block
    assert {registry.canonical(i.domain) for i in spec.inputs} == inputs
    assert {registry.canonical(o.domain) for o in spec.outputs} == outputs
