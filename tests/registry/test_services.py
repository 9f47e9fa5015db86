"""Services are found through the ``vemonitor.services`` entry points, like integrations."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest

from hw_sim.service import SERVICE, SimulatorConfig
from vemonitor import registry
from vemonitor.api import ConfigError, IntegrationError, ServiceSpec, load_item


def test_the_simulator_is_found_as_a_service() -> None:
    """pyproject.toml declares it; the core finds it without importing hw_sim itself."""
    found = registry.discover_services()
    assert found["simulator"] is SERVICE
    assert found["simulator"].schema is SimulatorConfig
    assert "vm_sim_dir" in found["simulator"].resolvers
    assert found["simulator"].port_glob == "ttyVE_*"  # what `vemonitor scan --sim-dir` probes


def test_its_section_is_typed_and_checked_by_its_own_schema() -> None:
    config = load_item(SimulatorConfig, {"devices": ["bmv700", "mppt:b"]}, None, "simulator")
    assert config.devices == ["bmv700", "mppt:b"] and config.faults == ""
    with pytest.raises(ConfigError, match=r"^simulator.faults: unknown fault 'bogus'"):
        load_item(SimulatorConfig, {"faults": "bogus"}, None, "simulator")


def test_a_broken_service_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service package that cannot load is one line naming it, not a traceback."""
    broken = metadata.EntryPoint("sim2", "vm_not_installed.service:SERVICE", "vemonitor.services")
    not_a_spec = metadata.EntryPoint("odd", "hw_sim.service:default_dir", "vemonitor.services")

    def entry_points(group: str, **_: Any) -> list[metadata.EntryPoint]:
        return [broken] if group == registry.SERVICE_GROUP else []

    monkeypatch.setattr(metadata, "entry_points", entry_points)  # registry imports it lazily
    with pytest.raises(IntegrationError, match="service 'sim2' .* failed to load: "
                                               "ModuleNotFoundError"):
        registry.discover_services()
    broken = not_a_spec
    with pytest.raises(IntegrationError, match="is not a vemonitor.api.ServiceSpec"):
        registry.discover_services()
    assert isinstance(SERVICE, ServiceSpec)
