"""Read a process's CPU time and resident memory from /proc (Linux), for the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_rss(pid: int) -> tuple[float, int]:
    """Return (user + system CPU seconds, RSS bytes) of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if line.startswith("VmRSS:"))
    return cpu, rss_kb * 1024
