"""``vemonitor hex get NAME|0xID --port PATH [--json]``: read one HEX register from a device.

(``hex set``, ``hex lease`` and ``hex log``, the control surface of issue 23, live in
:mod:`vemonitor.control_cli`; this module dispatches them.)

It opens the port (a real serial port or a simulator's link), waits for a TEXT block,
sends one Get in the gap after it through :class:`vemonitor.hex_session.HexSession`
(the same rules as the daemon: reply matched by code and register, 1 s timeout,
asked "on demand", so it also works with MPPT firmware <= 1.52), and prints the value
with its unit and the raw reply line. A timeout is retried twice (GV retries a Get
too); a refusal is not ("it will not change").

Exit status: 0 the value was read (also "not available": the device answered);
1 the device did not give it (no reply, refused, not a VE.Direct device, port
error); 2 a command-line mistake (an unknown register name). Every error is one line.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time
from typing import Any, NoReturn

import serial

from vemonitor import control_cli
from vemonitor import hex_session as hs
from vemonitor.vedirect import hex as h
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.hex_registers import REGISTER_BY_NAME, RegisterSpec, lookup

TEXT_WAIT_S = 3.0  # a device sends a block every second (a BMV every half second)
ATTEMPTS = 3
FAILED, USAGE = 1, 2


class HexError(Exception):
    """A failure to report as one line, with its exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line (exit 2), not usage + error."""

    def error(self, message: str) -> NoReturn:
        raise HexError(f"{self.prog}: {message} (see --help)", USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vemonitor hex", description="Talk to a VE.Direct device over HEX.")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    get = sub.add_parser("get", help="read one register",
                         description="Read one register: by name (yield_today) or id (0xEDD3).")
    get.add_argument("register", help="register name or 0xID")
    get.add_argument("--port", required=True, help="serial port or simulator link")
    get.add_argument("--json", action="store_true", help="print one JSON object")
    get.add_argument("--timeout", type=float, default=hs.TIMEOUT_S,
                     help="seconds to wait for the reply (default: %(default)s)")
    control_cli.add_parsers(sub)
    return parser


def resolve(key: str) -> tuple[int, RegisterSpec | None]:
    """Return the register id and spec of a name or 0xID; raise HexError (usage) when unknown."""
    spec = lookup(key)
    if spec is not None:
        return spec.id, spec
    if key.lower().startswith("0x"):
        try:
            rid = int(key, 16)
        except ValueError:
            rid = -1
        if 0 <= rid <= 0xFFFF:
            return rid, None  # not in our table: read it raw
        raise HexError(f"vemonitor hex get: {key!r} is not a register id (0x0000..0xFFFF)",
                       USAGE)
    near = sorted(name for name in REGISTER_BY_NAME if key.lower() in name)[:8]
    hint = f"; did you mean {', '.join(near)}?" if near else "; names: docs/hex.md"
    raise HexError(f"vemonitor hex get: unknown register {key!r}{hint}", USAGE)


def read_register(port: str, register: int, timeout: float) -> hs.Outcome:
    """Open ``port``, ask for ``register`` in a TEXT gap, return the outcome; raise HexError."""
    try:
        link = control_cli.open_exclusive(port)  # never beside the daemon on one port
    except control_cli.ControlCliError as err:
        raise HexError(str(err)) from err
    try:
        return _converse(link, port, register, timeout)
    finally:
        link.close()


def _converse(link: serial.Serial, port: str, register: int, timeout: float) -> hs.Outcome:
    """Run one Get (with retries on timeout) over an open port."""
    session = hs.HexSession(timeout=timeout)
    decoder = Decoder()
    request = hs.get(register, on_demand=True)
    attempts, blocks = 0, 0
    session.submit(request)
    started = time.monotonic()
    while True:
        now = time.monotonic()
        if blocks == 0 and now - started > TEXT_WAIT_S:
            raise HexError(f"{port}: no VE.Direct block within {TEXT_WAIT_S:g} s: "
                           "not a VE.Direct device, or no data on this port")
        if select.select([link.fileno()], [], [], 0.05)[0]:
            events = decoder.feed(link.read(4096), now)
            blocks += sum(1 for e in events if type(e).__name__ == "Block")
            session.on_events(events, now, idle=decoder.pending == 0)
        line = session.outgoing(now)
        if line is not None:
            link.write(line)
        for outcome in session.take_outcomes():
            if outcome.status == "timeout" and attempts + 1 < ATTEMPTS:
                attempts += 1
                session.submit(request, now)
                continue
            return outcome
        if session.policy == hs.NEVER:
            raise HexError(f"{port}: this device (BMV-60x) cannot take HEX commands")


def _explain(outcome: hs.Outcome, port: str, label: str) -> str:
    """Return the one-line error of an outcome that carries no value."""
    reading = outcome.reading
    if outcome.status == "timeout":
        return (f"{port}: no reply to Get {label} after {ATTEMPTS} tries (the device may not "
                "speak HEX, or its RX pin is set to remote on/off)")
    if outcome.status == "refused" and reading is not None:
        return f"{port}: the device refused {label}: {reading.error} (flags 0x{reading.flags:02X})"
    detail = reading.error if reading is not None and reading.error else hs.STATUSES.get(
        outcome.status, outcome.status)
    return f"{port}: Get {label} failed: {detail}"


def _result(outcome: hs.Outcome, register: int) -> dict[str, Any]:
    """Return the printable result of a successful Get."""
    reading = outcome.reading
    assert reading is not None
    spec = reading.spec
    value: Any = h.describe(reading.value) if spec is not None else reading.raw.hex().upper()
    return {"register": f"0x{register:04X}", "name": reading.name, "value": value,
            "unit": spec.unit if spec is not None else None,
            "raw": ":" + outcome.raw.decode("ascii", "replace").rstrip("\r")}


def hex_command(args: list[str]) -> int:
    """Run ``vemonitor hex ...``; print the result or one error line; return the exit status."""
    try:
        opts = _parser().parse_args(args)
        if opts.action != "get":
            return control_cli.run(opts)
        register, spec = resolve(opts.register)
        label = f"0x{register:04X}" if spec is None else f"{spec.name} (0x{register:04X})"
        outcome = read_register(opts.port, register, opts.timeout)
        if outcome.status != "ok":
            raise HexError(_explain(outcome, opts.port, label))
    except (HexError, control_cli.ControlCliError) as err:
        print(str(err), file=sys.stderr)
        return err.status
    result = _result(outcome, register)
    if opts.json:
        print(json.dumps(result))
    else:
        shown = "not available" if result["value"] is None else result["value"]
        unit = f" {result['unit']}" if result["unit"] and result["value"] is not None else ""
        print(f"{label} = {shown}{unit}   {result['raw']}")
    return 0
