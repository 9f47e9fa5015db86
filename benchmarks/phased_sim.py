"""Run simulated devices as ``python -m hw_sim.cli`` does, and say when each device's first
cycle was complete (for bench_original.py's phase-free figure).

Usage: ``python benchmarks/phased_sim.py [--wire usb] DIR KIND[:NAME] ...`` (``--wire``:
hw_sim/wire.py, default instant). Prints one line per device,
``NAME PATH`` (as the CLI), then one per device, ``cycle NAME WALL``: the wall time just
after the device wrote the last block of its first cycle (a BMV-700 writes two blocks a
cycle, the second with the H fields: ``hw_sim.devices.PROFILES``). The simulator keeps its cycles
on a steady schedule (``next_t += period``), so that time modulo the period is the
device's phase: where in each second its data is complete. Neither program chooses it.
Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

from hw_sim.devices import PROFILES
from hw_sim.simulator import Simulator

FIRST_CYCLE_TIMEOUT = 30.0  # s: a loaded machine may take a while to start the writers


def main(argv: list[str]) -> int:
    """Run the devices until a signal; print their paths, then their first cycles' ends."""
    wire = "instant"
    if argv[:1] == ["--wire"]:
        wire, argv = argv[1], argv[2:]
    directory, kinds = Path(argv[0]), argv[1:]
    received: list[int] = []  # the handler only notes the signal (see hw_sim.cli._run)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    with Simulator(kinds, directory, wire=wire) as sim:
        devices = list(sim)
        for device in devices:
            print(f"{device.name} {device.path}", flush=True)
        for kind, device in zip(kinds, devices):
            blocks = len(PROFILES[kind.split(":", 1)[0]].blocks)
            if device.wait_blocks(blocks, FIRST_CYCLE_TIMEOUT):
                print(f"cycle {device.name} {time.time():.6f}", flush=True)
        while not received:
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
