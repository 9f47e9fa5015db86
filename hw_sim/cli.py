"""``vemonitor-sim``: run simulated VE.Direct devices on ptys until stopped."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import NoReturn

from hw_sim.clock import MAX_SPEED
from hw_sim.devices import PROFILES
from hw_sim.faults import parse_faults
from hw_sim.privdir import check_given
from hw_sim.simulator import Simulator
from hw_sim.wire import DEFAULT_WIRE, WIRES
from vemonitor.api import ConfigError

PROG = "vemonitor-sim"


class UsageError(Exception):
    """A user mistake on the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, not usage + traceback."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    kinds = ", ".join(f"{k} ({p.description})" for k, p in PROFILES.items())
    parser = _Parser(prog=PROG, description=__doc__,
                     epilog=f"Device kinds: {kinds}. Use KIND:NAME for several of one kind.")
    parser.add_argument("devices", nargs="*", metavar="KIND[:NAME]",
                        help="devices to simulate, e.g. bmv700 mppt mppt_fwe:roof")
    parser.add_argument("--dir", required=True, type=Path,
                        help="directory for the ttyVE_<name> symlinks")
    parser.add_argument("--speed", type=float, default=1.0,
                        help=f"device seconds per real second (0 < N <= {MAX_SPEED:g})")
    parser.add_argument("--faults", default="",
                        help="e.g. corrupt=0.05,hex=0.2,noise=0.1,split=0.5 (see README)")
    parser.add_argument("--replay", action="append", default=[], metavar="[NAME=]FILE",
                        help="play a capture file through its own pty (repeatable)")
    parser.add_argument("--loop", action="store_true", help="replay captures forever")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many real seconds")
    parser.add_argument("--seed", type=int, default=0, help="random seed of physics and faults")
    parser.add_argument("--start", default=None,
                        help="device clock start, ISO 8601 (e.g. 2024-06-21T06:00:00+00:00)")
    parser.add_argument("--wire", choices=sorted(WIRES), default=DEFAULT_WIRE,
                        help="instant: bytes at once (a bare pty); usb: 19200 baud 8N1 in "
                             "an FTDI cable's chunks (<= 62 B, 16 ms timer); needs --speed 1")
    parser.add_argument("--soc", type=float, default=0.8, help="initial state of charge 0..1")
    return parser


def _replays(items: list[str]) -> dict[str, Path]:
    """Return replay device names -> files from ``NAME=FILE`` or ``FILE`` (name = file stem)."""
    result: dict[str, Path] = {}
    for item in items:
        name, sep, file = item.partition("=")
        path = Path(file if sep else item)
        result[name if sep else f"replay_{path.stem}"] = path
    return result


def _start_time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"--start {text!r}: not an ISO 8601 date-time") from None


def make_simulator(args: argparse.Namespace) -> Simulator:
    """Build a Simulator from parsed arguments; raise UsageError on bad values."""
    if not args.devices and not args.replay:
        raise UsageError("nothing to simulate: give device kinds and/or --replay FILE")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be > 0")
    if not 0.0 <= args.soc <= 1.0:
        raise UsageError("--soc must be between 0 and 1")
    try:
        check_given(args.dir, "--dir")
    except ConfigError as err:
        raise UsageError(str(err)) from None
    try:
        return Simulator(args.devices, args.dir, speed=args.speed,
                         faults=parse_faults(args.faults), replays=_replays(args.replay),
                         loop=args.loop, seed=args.seed, start_time=_start_time(args.start),
                         soc=args.soc, wire=args.wire)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _run(sim: Simulator, duration: float | None) -> None:
    """Run until SIGTERM/SIGINT, ``duration`` or every replay ended."""
    stop = threading.Event()  # never set from the handler: it would take stop's lock,
    received: list[int] = []  # which the loop below may hold (vemonitor.stopsignals)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with sim:
            for device in sim:
                print(f"{device.name} {device.path}", flush=True)
            waited = 0.0
            while not stop.wait(0.1) and not received:
                waited += 0.1
                if duration is not None and waited >= duration:
                    break
                if all(d.finished for d in sim):
                    break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator CLI; return the exit status (0 ok, 2 usage error)."""
    try:
        args = build_parser().parse_args(argv)
        sim = make_simulator(args)
    except UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    try:
        _run(sim, args.duration)
    except OSError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
