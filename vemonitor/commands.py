"""Subcommands that do not run a block: ``vemonitor scan`` and ``vemonitor integrations``."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from vemonitor.registry import Registry, discover_services
from vemonitor.scan import DEFAULT_GLOBS, PROBE_TIMEOUT, candidate_ports, scan

NO_HARDWARE_HINT = ("without hardware, try the simulator: vemonitor block=BatteryMonitor "
                    "'simulator.devices=[bmv700]' (or just `vemonitor`, the Demo)")


def scan_command(args: list[str]) -> int:
    """List serial ports and the VE.Direct device found on each, or why none was."""
    parser = argparse.ArgumentParser(prog="vemonitor scan",
                                     description="Find VE.Direct devices on serial ports.")
    parser.add_argument("--glob", action="append", dest="globs", metavar="PATTERN",
                        help=f"ports to probe (repeatable; default: {' '.join(DEFAULT_GLOBS)})")
    parser.add_argument("--sim-dir", help="also probe the ports a simulator made in this "
                        "directory (vemonitor-sim --dir DIR)")
    parser.add_argument("--allow", action="append", default=[], metavar="PATTERN",
                        help="the allow-list: open no port but these (repeatable; glob "
                             "patterns); a listed port may be set to 19200 baud even when "
                             "another device talks on it")
    parser.add_argument("--timeout", type=float, default=PROBE_TIMEOUT,
                        help="seconds to listen on each port (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per port")
    opts = parser.parse_args(args)
    extra = service_ports(opts.sim_dir) if opts.sim_dir else []
    ports = candidate_ports([*(opts.globs or DEFAULT_GLOBS), *extra])
    if not ports:
        print("no serial ports match " + " ".join(opts.globs or DEFAULT_GLOBS)
              + " (is the VE.Direct cable plugged in?); " + NO_HARDWARE_HINT)
        return 1
    results = scan(ports, opts.timeout, allow=opts.allow)
    for result in results:
        info = result.describe()
        if opts.json:
            print(json.dumps(info))
        elif result.found:
            print(f"{result.path}: {info['product']} (PID {info['pid']}, SER# "
                  f"{info['serial'] or '-'}, firmware {info['firmware'] or '-'})")
        elif not result.probed:
            print(f"{result.path}: left alone: {info['reason']}")
        else:
            print(f"{result.path}: nothing found: {info['reason']}")
    if not any(r.found for r in results):
        print(NO_HARDWARE_HINT)
        return 1
    return 0


def service_ports(directory: str) -> list[str]:
    """Return the port patterns the installed services (the simulator) make in ``directory``.

    The simulator's link names come from its service (``ServiceSpec.port_glob``): the core
    does not know them.
    """
    return [os.path.join(directory, spec.port_glob)
            for spec in discover_services().values() if spec.port_glob]


def integrations_command(args: list[str]) -> int:
    """List the integrations found, their version and what they provide, and load failures."""
    parser = argparse.ArgumentParser(prog="vemonitor integrations",
                                     description="List the integrations vemonitor can use.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    opts = parser.parse_args(args)
    registry = Registry().discover()
    errors = registry.load_all()
    rows: list[dict[str, Any]] = [{"domain": m.domain, "name": m.name, "version": m.version,
             "provides": list(m.provides), "origin": m.origin,
             "error": errors.get(m.domain)} for m in registry.manifests.values()]
    rows += [{"domain": name, "error": why} for name, why in errors.items()
             if name not in registry.manifests]
    if opts.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(integrations_table(rows))
    return 0


MIN_WIDTHS = (12, 8, 14, 0)  # domain, version, provides, origin: the usual layout


def integrations_table(rows: list[dict[str, Any]]) -> str:
    """Return the rows as aligned columns (widths from the data: a long name never shifts)."""
    table = [[row["domain"], row.get("version", "-"), ",".join(row.get("provides", [])) or "-",
              row.get("origin", "-"),
              f"FAILED: {row['error']}" if row["error"] else "ok"] for row in rows]
    widths = [max([least, *(len(cells[i]) for cells in table)])
              for i, least in enumerate(MIN_WIDTHS)]
    return "\n".join(" ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[4]
                     for cells in table)
