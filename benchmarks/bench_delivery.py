"""Delivery figures: Redis commands per row, EmonCms requests per hour, outbox throughput,
and the CPU / RSS of the seed's BatteryMonitor-to-Redis sample on real redis-server.

Run from the repo root: ``python benchmarks/bench_delivery.py [--seconds 120]``.
Everything runs on 127.0.0.1 only. The original project's figures, for comparison:
~121 Redis commands/s for 1.8 rows/s (about 67 per row), 2.3 % CPU and 45 MB RSS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.procstat import measure_daemon  # noqa: E402
from tests.servers import RedisServer  # noqa: E402
from vemonitor.api import Context  # noqa: E402
from vemonitor.api import load_item as typed  # noqa: E402
from vemonitor.clock import SystemClock  # noqa: E402
from vemonitor.model import Batch, Row  # noqa: E402
from vemonitor.outbox import Outbox, OutboxLimits  # noqa: E402
from vemonitor.registry import Registry  # noqa: E402

SEED = ROOT.parent / "shared" / "seed_configs"
BMV_COLUMNS = ["V", "I", "P", "CE", "SOC", "Alarm", "AR", "Relay", "H2", "H17", "H18"]


def _rows(start: int, n: int, node: str = "bmv700") -> tuple[Row, ...]:
    return tuple(Row(float(t), node, {c: 1.5 for c in BMV_COLUMNS}) for t in range(start, start + n))


def redis_commands_per_row(batches: int = 200, rows_per_batch: int = 5) -> dict[str, float]:
    """Return Redis commands per row written, for each structure (INFO commandstats)."""
    import redis

    registry = Registry().discover()
    reg = registry.get("redis")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, RedisServer(workdir=tmp) as server:
        client = redis.Redis(port=server.port)
        connector = typed(reg.connector, {"host": "127.0.0.1", "port": server.port}, None, "c")
        ctx = Context(clock=SystemClock(), state_dir=tmp)
        for structure in ("HmapTimeSeries", "Stream"):
            item = typed(reg.output_item, {"name": structure, "source": "local",
                                           "structure": structure, "redis_node": "bench",
                                           "max_items": 3600}, None, "o")
            sink = reg.sink_factory(item, connector, ctx)
            sink.start()
            client.config_resetstat()
            t = 1_700_000_000
            for i in range(batches):
                sink.write(Batch(structure, _rows(t + i * rows_per_batch, rows_per_batch)))
            stats = client.info("commandstats")
            calls = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",
                                                                        "cmdstat_config"))
            out[structure] = calls / (batches * rows_per_batch)
            sink.close()
    return out


def emoncms_requests_per_hour() -> dict[str, float]:
    """Return the budgeted EmonCms requests per hour of the seed's BatteryMonitor samples."""
    from vemonitor import budget
    from vemonitor.compose import (
        compose_config,
        prepare,
        register_resolvers,
        register_schema,
        resolved,
    )
    from vemonitor.config.build import build_run

    register_resolvers()
    register_schema()
    out: dict[str, float] = {}
    for folder in ("emon_worker_m8", "vemonitor_m8/vedirect_to_emoncms"):
        directory = SEED / folder
        if not directory.exists():
            continue
        prepared = prepare([f"config_dir={directory}", "block=BatteryMonitor"])
        registry = Registry().discover()
        spec = build_run(resolved(compose_config(prepared)), registry, prepared.origins)
        out[folder] = sum(b.requests for b in budget.budget(spec, registry)
                          if b.domain == "emoncms")
    return out


def outbox_throughput(batches: int = 2000, rows_per_batch: int = 5) -> dict[str, float]:
    """Return outbox rows/s in (put) and out (peek + ack) for each fsync policy."""
    out: dict[str, float] = {}
    for sync in ("FULL", "NORMAL"):
        with tempfile.TemporaryDirectory() as tmp:
            box = Outbox(Path(tmp) / "o.sqlite", "bench", OutboxLimits(), sync)
            box.open()
            began = time.perf_counter()
            for i in range(batches):
                box.put(Batch("bench", _rows(i * rows_per_batch, rows_per_batch)), now=0.0)
            put_s = time.perf_counter() - began
            began = time.perf_counter()
            while items := box.peek(1000):
                box.ack(i for i, _ in items)
            drain_s = time.perf_counter() - began
            box.close()
        total = batches * rows_per_batch
        out[f"{sync} in rows/s"] = total / put_s
        out[f"{sync} out rows/s"] = total / drain_s
    return out


def daemon_cost(seconds: float) -> dict[str, Any]:
    """Run the seed's vedirect_to_redis sample for ``seconds``; return its CPU % and RSS."""
    folder = SEED / "vemonitor_m8" / "vedirect_to_redis"
    if not folder.exists():
        return {"skipped": f"{folder} absent"}
    with tempfile.TemporaryDirectory() as tmp, RedisServer(workdir=tmp) as server:
        sim_dir = Path(tmp) / "sim"
        sim = subprocess.Popen([sys.executable, "-m", "hw_sim.cli", "bmv700", "--dir",
                                str(sim_dir)], stdout=subprocess.PIPE, text=True)
        assert sim.stdout is not None
        sim.stdout.readline()
        env = dict(os.environ, HOME=tmp, XDG_STATE_HOME=tmp)
        cost = measure_daemon(
            [sys.executable, "-m", "vemonitor", f"config_dir={folder}", "block=bmvFakeSerial",
             f"state_dir={tmp}/state", f"appConnectors.redis.local.port={server.port}",
             f"appConnectors.serial.bmv700.serialPort={sim_dir}/ttyVE_bmv700",
             f"duration={seconds + 30}"], env, seconds)
        sim.terminate()
        sim.wait(10)
    return cost


def main() -> int:
    """Print every figure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="how long the daemon cost is measured (default: %(default)s)")
    opts = parser.parse_args()
    print("Redis commands per row written (batches of 5 rows, 11 columns):")
    for structure, value in redis_commands_per_row().items():
        print(f"  {structure:<16} {value:6.2f}   (original: ~67)")
    print("EmonCms requests per hour, seed BatteryMonitor samples (from the budget):")
    for folder, value in emoncms_requests_per_hour().items():
        print(f"  {folder:<34} {value:8.0f}")
    print("Outbox throughput (batches of 5 rows):")
    for name, value in outbox_throughput().items():
        print(f"  {name:<18} {value:10.0f}")
    print(f"Daemon cost, vedirect_to_redis sample on redis-server, {opts.seconds:g} s:")
    for name, value in daemon_cost(opts.seconds).items():
        print(f"  {name:<12} {value:.2f}" if isinstance(value, float) else f"  {name:<12} {value}")
    print("  (original vemonitor_m8: 2.3 % CPU, 45 MB RSS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
