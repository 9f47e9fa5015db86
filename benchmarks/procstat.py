"""Read a process's CPU time and resident memory from /proc (Linux), for the benchmarks.

CPU time comes from each thread's ``sched`` file (``se.sum_exec_runtime``, in ms with
microsecond precision) where the kernel provides it: ``/proc/<pid>/stat`` counts clock
ticks (10 ms), too coarse for a daemon using 0.2 % of a core (12 ticks a minute).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def cpu_rss(pid: int) -> tuple[float, int]:
    """Return (CPU seconds of the live threads, RSS bytes) of process ``pid``."""
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if line.startswith("VmRSS:"))
    return _sched_cpu(pid) or _tick_cpu(pid), rss_kb * 1024


def _sched_cpu(pid: int) -> float | None:
    """Return the summed ``se.sum_exec_runtime`` of the threads, or None when unavailable."""
    total = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "sched").read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    total += float(line.split(":")[1]) / 1000.0
                    break
    except (OSError, ValueError):
        return None
    return total or None


def _tick_cpu(pid: int) -> float:
    """Return user + system CPU seconds from /proc/<pid>/stat (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_daemon(args: list[str], env: dict[str, str], seconds: float,
                   warm_up: float = 10.0) -> dict[str, float]:
    """Run ``args`` (a vemonitor command), measure it in steady state, stop it.

    Start-up (imports, the first device cycles) is not steady state: the first
    ``warm_up`` seconds are left out. Returns CPU % of one core, RSS and peak RSS
    (MB, sampled every second) over the ``seconds`` measured.
    """
    daemon = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(warm_up)
        cpu0, peak = cpu_rss(daemon.pid)
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            time.sleep(min(1.0, max(seconds - (time.monotonic() - began), 0.0)))
            peak = max(peak, cpu_rss(daemon.pid)[1])
        cpu1, rss = cpu_rss(daemon.pid)
        elapsed = time.monotonic() - began
    finally:
        daemon.terminate()
        daemon.wait(30)
    return {"cpu_percent": 100 * (cpu1 - cpu0) / elapsed, "rss_mb": rss / 2**20,
            "peak_rss_mb": max(peak, rss) / 2**20, "seconds": round(elapsed)}
