"""The write budget: what a configuration will cost the SD card and the servers, per hour.

The original project's main warning was that a misconfiguration silently hammers
an SD card, Redis or EmonCms. Here the cost is computed from the configuration
before anything starts, printed, and checked against the limits an output may
set (``max_requests_per_hour``, ``max_writes_per_hour``): vemonitor refuses to
start when a limit would be exceeded, unless ``budget_override=true``.

Cost model (per output, one send every ``time_interval * cache_interval`` s):

* every durable output: one outbox transaction (an fsync with ``synchronous=FULL``)
  to store the batch, one to remove it once sent: 2 local writes per send (the
  console's outbox is in memory: none);
* sqlite: one more transaction in the local store: 3 local writes per send;
* emoncms, mqtt: one HTTP request / one publish per send (per row for mqtt);
* redis: round trips per send = 1 (pipelined), commands per send from the
  integration's structure (HmapTimeSeries: 8 per input; Stream: 3 + 1 per row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vemonitor.config.build import OutputSpec, RunSpec
from vemonitor.config.errors import ConfigError

SECONDS_PER_HOUR = 3600.0
OUTBOX_WRITES_PER_SEND = 2
LOCAL_WRITES: Mapping[str, int] = {"sqlite": 1}  # extra local writes per send by domain
REQUESTS_PER_SEND: Mapping[str, str] = {"emoncms": "send", "redis": "send", "mqtt": "row"}
MEMORY_OUTBOX = frozenset({"console"})  # outputs registered with durable=False


@dataclass(frozen=True)
class OutputBudget:
    """Expected hourly cost of one output."""

    output: str
    domain: str
    sends: float
    rows: float
    local_writes: float
    requests: float
    redis_commands: float

    def as_dict(self) -> dict[str, float | str]:
        """Return the figures as plain data (rounded)."""
        return {"domain": self.domain, "sends_per_hour": round(self.sends, 1),
                "rows_per_hour": round(self.rows, 1),
                "local_writes_per_hour": round(self.local_writes, 1),
                "requests_per_hour": round(self.requests, 1),
                "redis_commands_per_hour": round(self.redis_commands, 1)}


def rows_per_hour(spec: RunSpec, output: OutputSpec) -> float:
    """Return the rows per hour an output receives from the inputs it reads."""
    names = list(output.columns) or [i.name for i in spec.inputs]
    return sum(SECONDS_PER_HOUR / i.time_interval for i in spec.inputs if i.name in names)


def output_budget(spec: RunSpec, output: OutputSpec) -> OutputBudget:
    """Return the expected hourly cost of ``output``."""
    sends = SECONDS_PER_HOUR / (output.time_interval * output.cache_interval)
    rows = rows_per_hour(spec, output)
    per = REQUESTS_PER_SEND.get(output.domain)
    requests = sends if per == "send" else rows if per == "row" else 0.0
    outbox = 0 if output.domain in MEMORY_OUTBOX else OUTBOX_WRITES_PER_SEND
    local = sends * (outbox + LOCAL_WRITES.get(output.domain, 0))
    commands = 0.0
    if output.domain == "redis":
        inputs = len(output.columns) or len(spec.inputs)
        structure = str(getattr(output.item, "structure", "HmapTimeSeries"))
        commands = sends * 3 + rows if "Stream" in structure else sends * 8 * inputs
    return OutputBudget(output.name, output.domain, sends, rows, local, requests, commands)


def budget(spec: RunSpec) -> list[OutputBudget]:
    """Return the budget of every output of a run."""
    return [output_budget(spec, output) for output in spec.outputs]


def check(spec: RunSpec, override: bool = False) -> list[str]:
    """Return the limit violations; raise ConfigError for them unless ``override``."""
    problems = []
    for output, cost in zip(spec.outputs, budget(spec), strict=True):
        for limit_name, value in (("max_requests_per_hour", cost.requests),
                                  ("max_writes_per_hour", cost.local_writes)):
            limit = getattr(output.item, limit_name, None)
            if limit is not None and value > limit:
                problems.append(f"output {output.name}: {value:.0f} {limit_name[4:]} expected, "
                                f"over its {limit_name}={limit}")
    if problems and not override:
        raise ConfigError("; ".join(problems) + " (raise time_interval or cache_interval, or "
                          "start anyway with budget_override=true)", key="budget")
    return problems


def describe(spec: RunSpec) -> str:
    """Return the budget as lines a user reads at start-up."""
    lines = ["expected per hour:"]
    for cost in budget(spec):
        parts = [f"{cost.sends:.0f} sends", f"{cost.rows:.0f} rows",
                 f"{cost.local_writes:.0f} local writes"]
        if cost.requests:
            parts.append(f"{cost.requests:.0f} requests")
        if cost.redis_commands:
            parts.append(f"{cost.redis_commands:.0f} Redis commands")
        lines.append(f"  output {cost.output} ({cost.domain}): " + ", ".join(parts))
    return "\n".join(lines)
