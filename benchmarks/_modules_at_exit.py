"""Run ``python -m vemonitor ARGS`` and, after VEMONITOR_PROBE_AFTER seconds (default 8),
write the heavy modules it holds to VEMONITOR_PROBE_MODULES (used by probe_daemon.py)."""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time

HEAVY = ("omegaconf", "hydra", "antlr4", "yaml", "importlib.metadata", "hw_sim", "rich",
         "requests", "urllib3", "paho", "redis", "redis.asyncio", "redis.cluster", "asyncio",
         "ssl", "email", "http.client", "jsonschema", "json", "sqlite3", "decimal", "uuid",
         "concurrent.futures", "multiprocessing", "pickle", "argparse", "logging.handlers")


def _dump() -> None:
    time.sleep(float(os.environ.get("VEMONITOR_PROBE_AFTER", "8")))
    held = [name for name in HEAVY if name in sys.modules]
    with open(os.environ.get("VEMONITOR_PROBE_MODULES", "/dev/stderr"), "w") as out:
        out.write(f"{len(sys.modules)} modules; heavy: {' '.join(held)}\n")


threading.Thread(target=_dump, daemon=True).start()
sys.argv = ["vemonitor", *sys.argv[1:]]
runpy.run_module("vemonitor", run_name="__main__")
