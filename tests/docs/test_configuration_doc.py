"""docs/configuration.md describes every configuration key, each in its own section.

Keys come from the schema dataclasses themselves (and, for integrations, from what each
built-in integration registers), so adding a key without documenting it fails here.
A key counts as documented when it appears in backticks in the right section, alone
(`port`) or as the last part of a dotted path (`metrics.port`).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from hw_sim.service import SimulatorConfig  # the simulator service's section
from vemonitor.api import IntegrationError
from vemonitor.registry import Registry
from vemonitor.schema import (
    BlockConfig,
    CacheConfig,
    Connector,
    DeliveryConfig,
    InputItem,
    MetricsConfig,
    OutputItem,
    RedisCacheConfig,
    VemonitorConfig,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")

# Each core schema class and the title of the section documenting its keys.
CORE_SECTIONS: dict[type, str] = {
    VemonitorConfig: "Run-level keys",
    MetricsConfig: "metrics",
    SimulatorConfig: "simulator",
    BlockConfig: "Blocks",
    CacheConfig: "cache",
    RedisCacheConfig: "redis_cache",
    InputItem: "Input items",
    OutputItem: "Output items",
    DeliveryConfig: "delivery",
    Connector: "Connectors",
}
BASES = (Connector, InputItem, OutputItem)


def _title(raw: str) -> str:
    """Return a heading's title without backticks and without its ' — description'."""
    return raw.replace("`", "").split(" — ")[0].strip().lower()


def sections(text: str) -> list[tuple[int, str, str]]:
    """Return (level, title, body) of every heading; a body includes its subsections."""
    lines = text.splitlines()
    heads = [(i, len(m[1]), _title(m[2])) for i, line in enumerate(lines)
             if (m := HEADING.match(line))]
    out = []
    for index, (start, level, title) in enumerate(heads):
        end = next((i for i, lvl, _ in heads[index + 1:] if lvl <= level), len(lines))
        out.append((level, title, "\n".join(lines[start + 1:end])))
    return out


def section(text: str, title: str) -> str:
    """Return the body of the one section called ``title``."""
    found = [body for _, t, body in sections(text) if t == title.lower()]
    assert len(found) == 1, f"docs/configuration.md needs exactly one section '{title}'"
    return found[0]


def documented(body: str, key: str) -> bool:
    return re.search(r"`(?:[\w\[\].]*\.)?" + re.escape(key) + r"`", body) is not None


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def nested_dataclasses(cls: type) -> set[type]:
    """Return the dataclasses used in ``cls``'s field types (e.g. dict[str, SerialTest])."""
    found: set[type] = set()

    def walk(tp: object) -> None:
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            found.add(tp)
        for arg in typing.get_args(tp):
            walk(arg)

    for hint in typing.get_type_hints(cls).values():
        walk(hint)
    return found


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry().discover()


@pytest.mark.parametrize("schema", list(CORE_SECTIONS), ids=lambda c: c.__name__)
def test_core_keys_are_documented_in_their_section(doc: str, schema: type) -> None:
    body = section(doc, CORE_SECTIONS[schema])
    missing = [name for name in field_names(schema) if not documented(body, name)]
    assert not missing, f"{schema.__name__} keys missing from '{CORE_SECTIONS[schema]}': {missing}"


def test_core_nested_schemas_have_sections() -> None:
    """Every dataclass reachable from the primary schema is mapped to a section above."""
    seen: set[type] = set()
    todo = [VemonitorConfig, OutputItem, InputItem]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        todo += nested_dataclasses(cls)
    assert seen <= set(CORE_SECTIONS), seen - set(CORE_SECTIONS)


def _builtin_domains() -> list[str]:
    registry = Registry().discover()
    return sorted(d for d, m in registry.manifests.items() if m.origin.startswith("built-in"))


@pytest.mark.parametrize("domain", _builtin_domains())
def test_integration_keys_are_documented_in_its_section(doc: str, registry: Registry,
                                                        domain: str) -> None:
    try:
        registration = registry.get(domain)
    except IntegrationError as err:
        pytest.skip(f"integration '{domain}' does not load here, so its schema is unknown: {err}")
    integrations = section(doc, "Integrations")
    bodies = [body for level, title, body in sections(integrations)
              if level == 3 and title.split()[0] == domain]
    assert len(bodies) == 1, f"docs/configuration.md needs one '### {domain} — ...' section"
    body = bodies[0]
    schemas = [s for s in (registration.connector, registration.input_item,
                           registration.output_item) if s is not None]
    assert schemas, f"integration '{domain}' registered no schema"
    todo = list(schemas)
    checked: set[type] = set()
    while todo:
        schema = todo.pop()
        if schema in checked or schema in CORE_SECTIONS:
            continue
        checked.add(schema)
        todo += nested_dataclasses(schema)
        assert documented(body, schema.__name__), \
            f"section '{domain}' does not name its schema class `{schema.__name__}`"
        base_fields = {f for base in BASES if issubclass(schema, base) for f in field_names(base)}
        missing = [name for name in field_names(schema)
                   if name not in base_fields and not documented(body, name)]
        assert not missing, f"{domain}: {schema.__name__} keys missing from its section: {missing}"


def test_shipped_blocks_are_listed(doc: str) -> None:
    from vemonitor.compose import shipped_blocks

    blocks = shipped_blocks()
    assert "BatteryMonitor" in blocks
    files = section(doc, "Files")
    for name in blocks:
        assert documented(files, name), name


def test_section_parser_scopes_keys() -> None:
    """A key documented in another section does not count (the check is not vacuous)."""
    text = "## A\n`port`\n### B\n`host`\n## C\n`dir`\n"
    assert documented(section(text, "A"), "host")  # a subsection is part of its parent
    assert not documented(section(text, "C"), "port")
    assert documented("`metrics.port`", "port")
    assert not documented("`metrics.portal`", "port")
