"""The write budget: what a configuration will cost the SD card and the servers, per hour.

The original project's main warning was that a misconfiguration silently hammers
an SD card, Redis or EmonCms. Here the cost is computed from the configuration
before anything starts, printed, and checked against the limits an output may
set (``max_requests_per_hour``, ``max_writes_per_hour``): vemonitor refuses to
start when a limit would be exceeded, unless ``budget_override=true``.

Cost model (per output, one send every ``time_interval * cache_interval`` s):

* every durable output: one outbox transaction (an fsync with ``synchronous=FULL``)
  to store the batch, one to remove it once sent: 2 local writes per send (an
  output registered with ``durable=False``, like the console, keeps its outbox in
  memory: none). That is the bound, reached while the sink fails: a batch a healthy
  sink accepts at once never touches the outbox (vemonitor.delivery, the hand-off);
* the rest is declared by each integration as a ``SendCost`` when it registers
  (vemonitor.registry): sqlite adds one local write per send; emoncms makes one
  HTTP request per send; mqtt one publish per row; redis one pipelined round trip
  per send and the commands its structure needs (HmapTimeSeries: 8 per input;
  Stream: 3 + 1 per row). A third-party output declares its own the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from vemonitor.config.build import OutputSpec, RunSpec
from vemonitor.errors import ConfigError
from vemonitor.registry import Registry

SECONDS_PER_HOUR = 3600.0
OUTBOX_WRITES_PER_SEND = 2


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


def output_budget(spec: RunSpec, output: OutputSpec, registry: Registry) -> OutputBudget:
    """Return the expected hourly cost of ``output``, from its integration's SendCost."""
    registration = registry.get(output.domain)
    cost = registration.cost
    sends = SECONDS_PER_HOUR / (output.time_interval * output.cache_interval)
    rows = rows_per_hour(spec, output)
    requests = {"send": sends, "row": rows}.get(cost.requests or "", 0.0)
    outbox = OUTBOX_WRITES_PER_SEND if registration.durable else 0
    local = sends * (outbox + cost.local_writes)
    inputs = len(output.columns) or len(spec.inputs)
    commands = (cost.redis_commands(output.item, inputs, sends, rows)
                if cost.redis_commands is not None else 0.0)
    return OutputBudget(output.name, output.domain, sends, rows, local, requests, commands)


def budget(spec: RunSpec, registry: Registry) -> list[OutputBudget]:
    """Return the budget of every output of a run."""
    return [output_budget(spec, output, registry) for output in spec.outputs]


def check(spec: RunSpec, registry: Registry, override: bool = False) -> list[str]:
    """Return the limit violations; raise ConfigError for them unless ``override``."""
    problems = []
    for output, cost in zip(spec.outputs, budget(spec, registry), strict=True):
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


def describe(spec: RunSpec, registry: Registry) -> str:
    """Return the budget as lines a user reads at start-up."""
    lines = ["expected per hour:"]
    for cost in budget(spec, registry):
        parts = [f"{cost.sends:.0f} sends", f"{cost.rows:.0f} rows",
                 f"{cost.local_writes:.0f} local writes"]
        if cost.requests:
            parts.append(f"{cost.requests:.0f} requests")
        if cost.redis_commands:
            parts.append(f"{cost.redis_commands:.0f} Redis commands")
        lines.append(f"  output {cost.output} ({cost.domain}): " + ", ".join(parts))
    return "\n".join(lines)
