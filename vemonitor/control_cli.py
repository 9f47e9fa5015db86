"""``vemonitor hex set | lease | log``: the command line's control surface (issue 23).

* ``hex set NAME VALUE --port PATH [--dry-run] [--enable]``: one write through the same
  checks and transaction as the daemon (vemonitor.control). Consent: ``--enable`` for
  this one command, or the control enabled for this device (by serial) in the daemon's
  configuration, which the daemon records in the state dir. Without either, refused.
  ``--dry-run`` needs no consent and prints the exact frame and the current value.
* ``hex lease charge_current_limit VALUE --for 10m --port PATH``: holds the limit,
  re-sending it every 25 s, until the time is up or the command is stopped (Ctrl-C,
  SIGTERM); the device then falls back to its own maximum within ~60 s.
* ``hex log [--state-dir DIR] [--json] [--limit N]``: the audit log.

One port, one process: the port is opened with an exclusive lock (flock), the same
lock the daemon's reader takes. While the daemon reads the port, ``hex set`` is
refused with one line (use the daemon's MQTT or Home Assistant controls, or stop it);
while ``hex set`` holds it, the daemon's reader waits and reopens: serialised, never
interleaved on the wire.

Exit status: 0 ok or dry run; 1 refused, rejected, mismatch, timeout or a port
problem; 2 a command-line mistake. Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import serial

from vemonitor.config.paths import default_state_dir
from vemonitor.control import CONTROLS, ControlSetting, DeviceControls, DeviceSettings
from vemonitor.control.store import FILE_NAME, ControlStore
from vemonitor.controltypes import ControlResult
from vemonitor.serial_reader import SERIAL_SETTINGS, SerialReader

LEASED = frozenset(name for name, spec in CONTROLS.items() if spec.lease)
IDENTITY_WAIT_S = 15.0  # a first block, then serial, capabilities and limits over HEX
FAILED, USAGE = 1, 2
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ControlCliError(Exception):
    """A failure to report as one line, with its exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


def duration(text: str) -> float:
    """Return seconds of ``30s``, ``10m``, ``1h`` or a plain number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90s, 10m, 1h)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not (math.isfinite(seconds) and 0 < seconds <= 86400):
        raise argparse.ArgumentTypeError(f"{text!r}: a lease lasts 1 s .. 24 h")
    return seconds


def add_parsers(sub: Any) -> None:
    """Add ``set``, ``lease`` and ``log`` to the ``vemonitor hex`` parser."""
    names = ", ".join(CONTROLS)
    put = sub.add_parser("set", help="write one named control",
                         description=f"Write one named control ({names}). Raw registers "
                                     "are never written.")
    put.add_argument("control", help=f"the control: {names}")
    put.add_argument("value", help="on/off, off/auto/on, or a number in the control's unit")
    _common(put)
    put.add_argument("--dry-run", action="store_true",
                     help="print the exact frame and the current value; send nothing")
    put.add_argument("--enable", action="store_true",
                     help="consent to this one write (the control need not be enabled)")
    lease = sub.add_parser("lease", help="hold the charge-current limit for a while",
                           description="Hold charge_current_limit, re-sent every 25 s; when "
                                       "the time is up or the command stops, the device "
                                       "falls back to its own maximum within ~60 s.")
    lease.add_argument("control", choices=["charge_current_limit"])
    lease.add_argument("value", help="amps, in 0.1 A steps")
    lease.add_argument("--for", dest="hold", type=duration, required=True,
                       help="how long (90s, 10m, 1h)")
    _common(lease)
    lease.add_argument("--enable", action="store_true", help="consent to this lease")
    log = sub.add_parser("log", help="print the control audit log",
                         description="Print the audit log of control writes (state dir).")
    log.add_argument("--state-dir", type=Path, default=None,
                     help="the run's state_dir (default: %(default)s = vemonitor's)")
    log.add_argument("--json", action="store_true", help="print a JSON list")
    log.add_argument("--limit", type=int, default=100, help="newest rows (default 100)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="serial port or simulator link")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where the audit log, rate limits and NV budget live "
                             "(default: vemonitor's state dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(opts: argparse.Namespace) -> int:
    """Run ``set``, ``lease`` or ``log``; return the exit status (raises ControlCliError)."""
    # The result is the one line a user reads: the library's own log lines (the same
    # refusal, said again) are not printed beside it.
    logging.getLogger("vemonitor").addHandler(logging.NullHandler())
    if opts.action == "log":
        return _log(opts)
    state_dir = opts.state_dir or default_state_dir()
    with _Session(opts.port, state_dir, enable=opts.enable) as session:
        if opts.action == "set":
            result = session.request(opts.control, opts.value, dry_run=opts.dry_run)
            _print(result, opts.json)
            if result.result == "ok" and result.control in LEASED and not opts.json:
                print(f"{result.control}: held only while a lease runs; the device falls "
                      "back to its own maximum within ~60 s (use vemonitor hex lease to "
                      "hold it)", flush=True)
            return 0 if result.result in ("ok", "dry_run") else FAILED
        return _lease(session, opts)


def _lease(session: _Session, opts: argparse.Namespace) -> int:
    """Hold the lease until it ends or a stop signal comes; print each result."""
    stop = threading.Event()
    ended = threading.Event()

    def seen(result: ControlResult) -> None:
        if result.event == "keepalive":
            _print(result, opts.json)
        if result.event == "lease_end":
            _print(result, opts.json)
            ended.set()

    session.controls.subscribe(seen)
    result = session.request(opts.control, opts.value, lease_s=opts.hold)
    _print(result, opts.json)
    if result.result != "ok":
        return FAILED
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not (ended.is_set() or stop.wait(0.2)):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not ended.is_set():
        session.controls.end_lease("lease ended (the command was stopped)")
    return 0


class _Session:
    """The port opened exclusively, a reader on it, and the device's controls."""

    def __init__(self, port: str, state_dir: Path, *, enable: bool) -> None:
        self.port, self.state_dir, self.enable = port, state_dir, enable
        self.caller = f"{getpass.getuser()} (pid {os.getpid()})"
        self.reader: SerialReader | None = None
        self.controls: DeviceControls

    def __enter__(self) -> _Session:
        link = open_exclusive(self.port)
        handed: list[serial.Serial] = [link]

        def open_port(path: str) -> serial.Serial:  # the first open is the probe's port
            return handed.pop() if handed else open_exclusive(path)

        self.reader = SerialReader("cli", self.port, open_port=open_port)
        self.controls = DeviceControls(self.reader, DeviceSettings(), self.state_dir,
                                       device=self.port, consent_all=self.enable)
        self.reader.start()
        self.controls.start()  # identity at connect; the lease keep-alive and its end
        self._identify()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controls.close()
        if self.reader is not None:
            self.reader.close()

    def _identify(self) -> None:
        deadline = time.monotonic() + IDENTITY_WAIT_S
        problem = self.controls.ensure_identity()
        while problem is not None and ("not read yet" in problem or "no port" in problem):
            if time.monotonic() > deadline:
                raise ControlCliError(f"{self.port}: no VE.Direct device identified within "
                                      f"{IDENTITY_WAIT_S:g} s ({problem})")
            time.sleep(0.1)
            problem = self.controls.ensure_identity()
        if not self.enable and self.controls.serial is not None:
            self.controls.settings = _configured(self.controls, self.controls.serial)

    def request(self, control: str, value: str, *, dry_run: bool = False,
                lease_s: float | None = None) -> ControlResult:
        return self.controls.request(self.port, control, value, surface="cli", caller=self.caller,
                                     dry_run=dry_run, lease_s=lease_s)


def _configured(controls: DeviceControls, serial: str) -> DeviceSettings:
    """Return the consent the daemon's configuration recorded for this device serial."""
    found: dict[str, ControlSetting] = {}
    for name in CONTROLS:
        consent = controls.store.consent(serial, name)
        if consent is not None:
            found[name] = ControlSetting(enabled=consent[0], dry_run=consent[1])
    return DeviceSettings(controls=found)


def open_exclusive(port: str) -> serial.Serial:
    """Open ``port`` with the exclusive lock the daemon takes; a held port is one line."""
    try:
        return serial.Serial(port, timeout=0, exclusive=True, **SERIAL_SETTINGS)
    except (serial.SerialException, OSError) as err:
        if "exclusively lock" in str(err) or "Resource temporarily unavailable" in str(err):
            raise ControlCliError(
                f"{port} is in use by another process (a running vemonitor holds its ports "
                "locked): use its MQTT or Home Assistant controls, or stop it first") from err
        raise ControlCliError(f"cannot open {port}: {err}") from err


def _print(result: ControlResult, as_json: bool) -> None:
    """Print a result: ok/dry-run to stdout, a failure as one line to stderr."""
    if as_json:
        print(json.dumps(result.__dict__), flush=True)
        return
    if result.result == "refused":
        print(f"vemonitor hex: refused: {result.reason}", file=sys.stderr, flush=True)
        return
    if result.event == "lease_end":
        print(f"{result.control}: {result.reason}", flush=True)
        return
    parts = [f"{result.control}: {result.old} -> {result.new}: {result.result}"]
    if result.frame:
        parts.append(("would send " if result.result == "dry_run" else "sent ") + result.frame)
    if result.reply:
        parts.append(f"reply {result.reply}")
    if result.readback is not None and result.result != "dry_run":
        parts.append(f"read back {result.readback}")
    if result.reason and result.result in ("ok", "dry_run"):
        parts.append(f"({result.reason})")
    line = "   ".join(parts)
    if result.result in ("ok", "dry_run"):
        print(line, flush=True)
    else:
        print(f"vemonitor hex: {line}: {result.reason}", file=sys.stderr, flush=True)


def _log(opts: argparse.Namespace) -> int:
    state_dir: Path = opts.state_dir or default_state_dir()
    if not (state_dir / FILE_NAME).is_file():
        raise ControlCliError(f"no control audit log in {state_dir} (nothing was written "
                              "there; --state-dir names the run's state_dir)")
    store = ControlStore(state_dir)
    try:
        rows = store.rows(max(1, opts.limit))
    finally:
        store.close()
    if opts.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        print(_log_line(row))
    return 0


def _log_line(row: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["time"]))
    text = (f"{when}  {row['surface']}:{row['caller']}  {row['device']} {row['control']} "
            f"{row['event']}  {row['old']} -> {row['new']}  {row['result']}")
    for key, label in (("frame", "frame"), ("reply", "reply"), ("readback", "read back")):
        if row[key] not in (None, ""):
            text += f"  {label} {row[key]}"
    if row["reason"]:
        text += f"  ({row['reason']})"
    return text

