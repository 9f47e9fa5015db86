"""A short, focused look at one vemonitor daemon on the original's ``vedirect_to_redis`` sample.

Prints, for vemonitor alone (its own simulated BMV-700 and redis-server, as
``bench_original.py`` runs it):

- the start-up peak of the process tree (RSS summed, sampled every 20 ms) and the RSS
  after the warm-up;
- per thread, over the window: voluntary context switches a second (its wake-ups) and
  CPU % of one core (/proc/PID/task/TID/{status,schedstat});
- which heavy modules the running daemon holds (``--modules``: the daemon is started
  under ``benchmarks/_modules_at_exit.py``, which prints ``sys.modules``'s heavy entries
  when the run ends).

Run from the repo root: ``python benchmarks/probe_daemon.py [--seconds 20] [--warm-up 10]
[--cache-interval N] [--modules]``. Numbers move with the machine's load: compare a
before and an after run in the same minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_daemon import _start_sim, _stop  # noqa: E402
from benchmarks.bench_original import (  # noqa: E402
    PEAK_PERIOD,
    SAMPLE,
    _tree_cpu_rss,
    _vemonitor_program,
)
from tests.servers import RedisServer  # noqa: E402

TICKS = 1e9  # schedstat's unit: ns


def threads(pid: int) -> dict[str, tuple[int, float]]:
    """Return {thread name + tid: (voluntary switches, CPU seconds)} of ``pid``."""
    out: dict[str, tuple[int, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
            cpu = int((task / "schedstat").read_text().split()[0]) / TICKS
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        name = f"{fields['Name'].strip()}[{task.name}]"
        out[name] = (int(fields["voluntary_ctxt_switches"]), cpu)
    return out


def main() -> int:
    """Run the daemon, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warm-up", type=float, default=10.0)
    parser.add_argument("--cache-interval", type=int, default=None)
    parser.add_argument("--modules", action="store_true")
    opts = parser.parse_args()
    if not SAMPLE.is_dir():
        print(f"skipped: the original's sample is not at {SAMPLE} (../shared is absent)")
        return 0
    with tempfile.TemporaryDirectory() as tmp, RedisServer(workdir=Path(tmp) / "redis") as redis:
        base = Path(tmp)
        sim = _start_sim(["bmv700"], base / "sim")
        overrides = (() if opts.cache_interval is None else
                     (f"block.outputs.redis.0.cache_interval={opts.cache_interval}",))
        program = _vemonitor_program(base, base / "sim", redis.port, overrides=overrides)
        if opts.modules:
            program.command[1:3] = [str(ROOT / "benchmarks" / "_modules_at_exit.py")]
            program.env["VEMONITOR_PROBE_MODULES"] = str(base / "modules.txt")
        try:
            program.start()
            assert program.process is not None
            pid = program.process.pid
            began = time.monotonic()
            while time.monotonic() - began < opts.warm_up:
                program.peak = max(program.peak, _tree_cpu_rss(pid)[1])
                time.sleep(PEAK_PERIOD)
            before, t0 = threads(pid), time.monotonic()
            wall0 = time.time()
            time.sleep(opts.seconds)
            after, elapsed = threads(pid), time.monotonic() - t0
            rss = _tree_cpu_rss(pid)[1]
            assert program.watcher is not None
            age, rows = program.watcher.median_age(wall0, time.time())
            if opts.modules:
                print((base / "modules.txt").read_text().strip())
        finally:
            program.stop()
            _stop(sim)
    print(f"start-up peak {program.peak / 2**20:.1f} MiB, RSS after warm-up {rss / 2**20:.1f} MiB,"
          f" median row age {age:.2f} s ({rows} rows)")
    total = 0.0
    for name, (switches, cpu) in sorted(after.items()):
        s0, c0 = before.get(name, (0, 0.0))
        total += cpu - c0
        print(f"  {name:<28} wake-ups/s {(switches - s0) / elapsed:5.2f}  "
              f"CPU {100 * (cpu - c0) / elapsed:.3f} %")
    print(f"  all threads CPU {100 * total / elapsed:.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
