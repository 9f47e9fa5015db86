"""docs/operations.md names every metric vemonitor exposes and every frame rejection reason."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from vemonitor.control import ControlHub
from vemonitor.fieldpolicy import FieldDrops
from vemonitor.metrics import EngineCollector
from vemonitor.vedirect.events import REJECT_REASONS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/operations.md needs a '## {title}' section"
    return match.group(1)


def _fake_engine() -> SimpleNamespace:
    """An engine with one device, input and output, enough for every family to be exposed."""
    stats = {"frames_ok": 3, "rejected": {"checksum": 1}, "hex_ok": 1, "hex_invalid": 0,
             "reconnects": 0, "available": True, "last_frame_at": 99.0,
             "fields_dropped": {"out_of_range": {"VS": 1}}}
    source = SimpleNamespace(stats=lambda: stats)
    fields = FieldDrops("input bmv700")
    fields.add("out_of_range", "H7", 999999.999, 0.0)
    input_worker = SimpleNamespace(spec=SimpleNamespace(name="bmv700"),
                                   stats=SimpleNamespace(rows=3, missed=0,
                                                         dropped={"stale": 1},
                                                         fields=fields))
    sink = SimpleNamespace(stats=lambda: {"requests": 1})  # a sink that keeps stats
    sender_stats = SimpleNamespace(batches=1, points=3, errors=0, outages=0, write_seconds=0.01)
    outbox = SimpleNamespace(dropped_rows=0, is_open=True, dead_batches=0, moved_aside=[],
                             depth=lambda: {"rows": 2, "oldest": 90.0})
    output = SimpleNamespace(spec=SimpleNamespace(name="store"),
                             sender=SimpleNamespace(stats=sender_stats, sink=sink), outbox=outbox)
    return SimpleNamespace(clock=SimpleNamespace(now=lambda: 100.0),
                           sources={"vedirect:bmv700": source}, inputs=[input_worker],
                           outputs=[output], clock_steps=lambda: {"back": 1, "forward": 0},
                           context=SimpleNamespace(controls=ControlHub([])))  # issue 23


def exposed_metric_names() -> set[str]:
    """Return the metric names a scrape shows (counters with _total, summaries as the base)."""
    registry = CollectorRegistry()
    registry.register(EngineCollector(_fake_engine()))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    names = set()
    for line in text.splitlines():
        match = re.match(r"# TYPE (\S+) (\w+)", line)
        if match:
            name, kind = match.groups()
            names.add(f"{name}_total" if kind == "counter" and not name.endswith("_total")
                      else name)
    return names


def test_every_exposed_metric_is_documented() -> None:
    names = exposed_metric_names()
    assert "vemonitor_frames_total" in names and "vemonitor_outbox_rows" in names
    metrics = _section((DOCS / "operations.md").read_text(encoding="utf-8"), "Metrics")
    missing = sorted(n for n in names if f"`{n}`" not in metrics)
    assert not missing, f"metrics missing from docs/operations.md: {missing}"


def test_every_rejection_reason_is_documented() -> None:
    metrics = _section((DOCS / "operations.md").read_text(encoding="utf-8"), "Metrics")
    missing = sorted(r for r in REJECT_REASONS if f"`{r}`" not in metrics)
    assert not missing, f"rejection reasons missing from docs/operations.md: {missing}"


def test_docs_link_to_existing_files() -> None:
    """Relative links between the docs and to packaging/ resolve."""
    for doc in ("operations.md", "configuration.md", "simulator.md"):
        text = (DOCS / doc).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (DOCS / target).resolve().exists(), f"{doc}: broken link {target}"
