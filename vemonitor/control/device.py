"""One device's controls: the checks, the write transaction, the lease (HEX.md §8).

:class:`DeviceControls` wraps a running :class:`vemonitor.serial_reader.SerialReader`
and implements :class:`vemonitor.controltypes.Controls` for its one device. Every
device conversation goes through the reader's HexSession (one request at a time, in
the gap after a TEXT block, replies matched by register), so the daemon's polls and a
control's writes never interleave on the wire. Requests of all surfaces are
serialised by one lock per device.

A request runs, in this order (docs/control.md says why each exists):

1. the control is known (a name of the allow-list; a raw register is refused) and its
   register is not on the hard deny list;
2. consent: enabled in the settings (or ``--enable`` on the command line), unless dry-run;
3. the value: an option name, or a finite number on the control's step within the
   device's own limits (refused, never clamped);
4. the device: a TEXT block within 5 s, identity read, the serial number read again now
   matches the one at connect (and the configured one), firmware known and new enough,
   capability bit, the control's register was read at connect (width from that read),
   the relay is in remote mode;
5. the rate limit and (NV) the daily budget, both persisted in the state dir;
6. the current value is read; an unchanged switch/select sends nothing (NV wear);
   a dry run stops here and shows the frame;
7. a pending audit row is written, the Set is sent, the reply must carry flags 00 and
   the value sent (one retry on timeout only for volatile registers), the register is
   read back, and the effect is checked where the device shows one;
8. the audit row is completed and the result goes to every subscriber.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vemonitor import hex_session as hs
from vemonitor.control.settings import DeviceSettings
from vemonitor.control.store import ControlStore
from vemonitor.control.table import (
    CONTROLS,
    DENIED_REGISTERS,
    IDENTITY_REGISTERS,
    OFF_BY_DEVICE_MODE,
    ControlSpec,
)
from vemonitor.controltypes import ControlResult, ControlView
from vemonitor.serial_reader import SerialReader
from vemonitor.vedirect import hex as h
from vemonitor.vedirect.hex_registers import BMV, MPPT, family_of

log = logging.getLogger(__name__)

FRESH_FRAME_S = 5.0  # a frame from the device within the last 5 s (issue 23 point 2; KR)
ASK_TIMEOUT_S = 3.5  # a gap (<= ~1 s between blocks) + the 1 s reply timeout + margin
EFFECT_WAIT_S = 2.5  # the read-back ~1 s after the write (HEX.md §8.5), one block later
LEASE_REFRESH_S = 25.0  # re-send 0x2015 at least every 30 s (HEX.md Q1; expires at ~60 s)
MIN_HEX_FIRMWARE = 153  # MPPT FW <= 1.52 pauses TEXT during HEX (HEX.md T1; OD: >= 1.53)
ALL_ENABLED = "all"

Subscriber = Callable[[ControlResult], None]


class _Refused(Exception):
    """A failed check: its one-line reason names the check."""


def _line(raw: bytes) -> str:
    """Return a reply body as the wire line (':' + text)."""
    return ":" + raw.decode("ascii", "replace").rstrip("\r") if raw else ""


def _frame_text(line: bytes) -> str:
    return line.decode("ascii").strip()


class DeviceControls:
    """The controls of the device behind one serial reader (implements ``Controls``).

    Construct it around a reader (the daemon's, the HA component's own, or the CLI's)::

        controls = DeviceControls(reader, DeviceSettings(controls={"load_output":
                                  ControlSetting(enabled=True, dry_run=False)}), state_dir)
        controls.start()   # reads identity and limits at each connect, runs the lease
        controls.request("mppt", "load_output", "on", surface="ha", caller="switch.x")
        controls.close()

    ``device`` is the key surfaces use (default: the reader's name). ``consent_all``
    (the CLI's ``--enable``) enables every control for this object's requests only.
    ``share_consent`` records the configuration's enabled controls in the state dir, so
    the CLI on the same device needs no ``--enable`` (the daemon sets it).
    """

    def __init__(self, reader: SerialReader | None, settings: DeviceSettings,
                 state_dir: str | Path,
                 *, device: str | None = None, consent_all: bool = False,
                 share_consent: bool = False, store: ControlStore | None = None) -> None:
        self.reader: SerialReader = reader  # type: ignore[assignment]  # None until attach()
        self.settings = settings
        if device is None and reader is None:
            raise ValueError("DeviceControls needs a device key when no reader is given yet")
        self.device = device or reader.name  # type: ignore[union-attr]
        self.consent_all = consent_all
        self.share_consent = share_consent
        self.store = store or ControlStore(state_dir)
        self._own_store = store is None
        self._io = threading.RLock()  # one device conversation at a time
        self._cond = threading.Condition()
        self._waiters: list[list[object]] = []  # [request, outcome | None]
        self._subscribers: list[Subscriber] = []
        self._session: object | None = None  # the reader session the identity was read on
        self._known: dict[int, h.Reading] = {}  # registers read at connect
        self._identity_error: str | None = "identity not read yet"
        self.serial: str | None = None
        self._bound_serial: str | None = settings.serial
        self.pid: int | None = None
        self._lease: tuple[float, float, float] | None = None  # (amps, until, last sent)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts: dict[tuple[str, str], int] = {}  # (control, result) -> count
        if reader is not None:
            self.attach(reader)

    # ---------------------------------------------------------------- lifecycle
    def attach(self, reader: SerialReader) -> None:
        """Use ``reader`` from now on (the source found its device on another port)."""
        with self._io:
            self.reader = reader
            self._session = None
            self._identity_error = "identity not read yet"
            reader.subscribe_hex(self._on_hex)

    def start(self) -> None:
        """Start the thread that reads identity at each connect and holds the lease."""
        self._thread = threading.Thread(target=self._run, name=f"control-{self.device}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (a held lease ends: the device falls back within ~60 s)."""
        self.end_lease("lease ended (vemonitor stopped)")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._own_store:
            self.store.close()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.ensure_identity()
                self._keep_lease()
            except Exception:  # a bug here must not end the lease silently: log, go on
                log.exception("%s: control thread", self.device)

    # --------------------------------------------------------------- contract
    def views(self, device: str | None = None) -> list[ControlView]:
        """Return the views of the enabled controls (no I/O)."""
        if device is not None and device != self.device:
            return []
        return [self._view(CONTROLS[name]) for name in CONTROLS if self._enabled(name)]

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every result; return the unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    def request(self, device: str, control: str, value: str | float, *, surface: str,
                caller: str, dry_run: bool = False,
                lease_s: float | None = None) -> ControlResult:
        """Write one control; every refusal is one line naming its check."""
        with self._io:
            try:
                result = self._request(device, control, value, surface=surface,
                                       caller=caller, dry_run=dry_run, lease_s=lease_s)
            except Exception as err:  # a bug or a broken state dir: still one result
                log.exception("%s: %s request failed", self.device, control)
                result = ControlResult(self.device, control, "refused",
                                       f"internal error: {type(err).__name__}: {err} (see the "
                                       "log; an audit row may stay pending)", None,
                                       _jsonable(value), "", "", None, surface, caller,
                                       time.time())
        self._publish(result)
        return result

    # ------------------------------------------------------------- the request
    def _request(self, device: str, control: str, value: str | float, *, surface: str,
                 caller: str, dry_run: bool, lease_s: float | None) -> ControlResult:
        now = time.time()
        spec = CONTROLS.get(control)
        base = {"device": self.device, "control": control, "surface": surface,
                "caller": caller}
        try:
            if device != self.device:
                raise _Refused(f"device: {device!r} is not {self.device!r}")
            spec = self._check_control(control)
            dry = self._check_consent(spec, dry_run)
            raw, new = self._check_value(spec, value)
            lease = self._check_lease(spec, lease_s)
            self._check_device(spec)
            if not dry:
                self._check_rate(spec, now)
        except _Refused as refused:
            reason = str(refused)
            log.warning("%s: %s %s refused: %s", self.device, control, value, reason)
            reg = f"0x{spec.register:04X}" if spec is not None else ""
            self.store.record(**base, time=now, serial=self.serial, register=reg,
                              event="write", old=None, new=_jsonable(value), frame="",
                              result="refused", reason=reason)
            return ControlResult(self.device, control, "refused", reason, None,
                                 _jsonable(value), "", "", None, surface, caller, now)
        return self._transaction(spec, raw, new, dry, lease, base, now)

    def _check_control(self, control: str) -> ControlSpec:
        """1. A name of the allow-list, not on the deny list."""
        spec = CONTROLS.get(control)
        if spec is None:
            if control.lower().startswith("0x"):
                raise _Refused(f"allow-list: raw register {control} is never written; the "
                               f"controls are {', '.join(CONTROLS)}")
            raise _Refused(f"allow-list: {control!r} is not a control; the controls are "
                           f"{', '.join(CONTROLS)}")
        if spec.register in DENIED_REGISTERS:  # cannot happen with the table; a second lock
            raise _Refused(f"deny list: register 0x{spec.register:04X} is never written")
        return spec

    def _check_consent(self, spec: ControlSpec, dry_run: bool) -> bool:
        """2. Enabled (or a dry run, which needs no consent); return True for a dry run."""
        if dry_run:
            return True
        if self.consent_all:
            return False
        setting = self.settings.setting(spec.name)
        if not setting.enabled:
            raise _Refused(f"disabled: {spec.name} is not enabled for {self.device} "
                           "(docs/control.md: controls.<name>.enabled, or --enable)")
        return setting.dry_run

    def _check_value(self, spec: ControlSpec, value: str | float) -> tuple[int, str | float]:
        """3. Return the wire value and the value in user terms; refuse, never clamp."""
        if spec.kind in ("switch", "select"):
            name = str(value).strip().lower()
            raw = spec.option_value(name)
            if raw is None:
                raise _Refused(f"value: {value!r} is not one of {', '.join(o for o, _ in spec.options)}")
            return raw, name
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise _Refused(f"value: {value!r} is not a finite number ({spec.unit})")
        assert spec.step is not None
        raw = round(number / spec.step)
        if abs(raw * spec.step - number) > 1e-6:
            raise _Refused(f"value: {number:g} {spec.unit} is not a multiple of {spec.step:g} "
                           f"{spec.unit}")
        low, high = 0.0, self._maximum(spec)
        if high is None:
            raise _Refused("range: the device's limits (" + ", ".join(
                f"0x{r:04X}" for r in spec.limit_registers) + ") were not read")
        if not low <= number <= high + 1e-9:
            raise _Refused(f"range: {number:g} {spec.unit} is outside {low:g}..{high:g} "
                           f"{spec.unit} (the device's own limits)")
        return raw, round(raw * spec.step, 3)

    @staticmethod
    def _check_lease(spec: ControlSpec, lease_s: float | None) -> float | None:
        if lease_s is None:
            return None
        if not spec.lease:
            raise _Refused(f"lease: only charge_current_limit is held as a lease, not {spec.name}")
        if not (math.isfinite(lease_s) and 0 < lease_s <= 86400):
            raise _Refused(f"lease: {lease_s!r} s is not within 0..86400 s")
        return lease_s

    def _check_device(self, spec: ControlSpec) -> None:
        """4. Fresh frame, identity now, firmware, capability, register read, condition."""
        reason = self._unavailable(spec)
        if reason is not None:
            raise _Refused(reason)
        serial = self._read_serial()  # the device now on the port (ttyUSB numbers move)
        if serial != self.serial:
            raise _Refused(f"identity: the device on {self.reader.port} now reports serial "
                           f"{serial or 'none'}, not {self.serial}")

    def _check_rate(self, spec: ControlSpec, now: float) -> None:
        """5. Rate limit per control and the daily NV budget (persisted)."""
        assert self.serial is not None
        last = self.store.last_write(self.serial, spec.name)
        if last is not None and now - last < spec.min_interval_s:
            raise _Refused(f"rate limit: {spec.name} was written {now - last:.0f} s ago; "
                           f"at least {spec.min_interval_s:g} s apart")
        if spec.nv:
            used = self.store.nv_writes(self.serial, now)
            if used >= self.settings.nv_writes_per_day:
                raise _Refused(f"NV budget: {used} of {self.settings.nv_writes_per_day} "
                               "non-volatile writes used today (UTC); try tomorrow")

    # ------------------------------------------------------------ the write
    def _transaction(self, spec: ControlSpec, raw: int, new: str | float, dry: bool,
                     lease: float | None, base: dict[str, str], now: float,
                     event: str = "write") -> ControlResult:
        """6-8. Read the current value, send (or show) the frame, check reply and effect."""
        width = len(self._known[spec.register].raw)
        data = raw.to_bytes(width, "little")
        frame_line = h.encode_set(spec.register, data)
        frame = _frame_text(frame_line)
        current = self._ask(hs.get(spec.register, on_demand=True))
        old = self._shown(spec, current.reading) if current is not None and _ok(current) \
            else None
        result_of = _Result(self, spec, base, old, new, frame, now, event)
        if dry:
            return result_of.record("dry_run", f"dry run: {frame} would set {spec.name} to "
                                    f"{new} (now {old})")
        if (spec.kind != "number" and _ok(current) and current is not None
                and current.reading is not None and current.reading.raw == data):
            return result_of.record("ok", f"unchanged: {spec.name} is already {new}; nothing "
                                    "sent", frame="")
        assert self.serial is not None
        if event == "write":  # the keep-alive neither waits for nor delays a user's change
            self.store.note_write(self.serial, spec.name, now, spec.nv)
        row = self.store.begin(time=now, serial=self.serial, register=f"0x{spec.register:04X}",
                               event=event, old=old, new=new, frame=frame, result="pending",
                               reason="", **base)
        outcome = self._send(spec, data)
        result = result_of.finish(row, *self._judge(spec, data, new, outcome))
        if result.result == "ok" and spec.lease:
            self._hold_lease(float(new), lease, now, event)
        return result

    def _send(self, spec: ControlSpec, data: bytes) -> hs.Outcome | None:
        """Send the Set; one retry on timeout for volatile registers only (HEX.md §8.5)."""
        request = hs.Request(h.SET, spec.register, data, on_demand=True)
        outcome = self._ask(request)
        if (outcome is None or outcome.status == "timeout") and spec.retry_on_timeout:
            log.info("%s: no reply to %s, sending it once more", self.device, spec.name)
            outcome = self._ask(request)
        return outcome

    def _judge(self, spec: ControlSpec, data: bytes, new: str | float,
               outcome: hs.Outcome | None) -> tuple[str, str, str, str | float | None]:
        """Return (result, reason, reply, readback) of a sent Set."""
        if outcome is None or outcome.status == "timeout":
            return "timeout", "timeout: no reply within 1 s" + (
                " (sent twice)" if spec.retry_on_timeout else " (NV: not retried)"), "", None
        reply = _line(outcome.raw)
        if outcome.status in ("refused", "rejected", "error", "unknown_command",
                              "frame_error"):
            detail = outcome.reading.error if outcome.reading is not None else outcome.status
            return "rejected", f"rejected: the device answered {reply or outcome.status} " \
                               f"({detail})", reply, None
        if outcome.status == "mismatch":
            return "mismatch", f"mismatch: the reply {reply} does not echo the value sent", \
                reply, None
        if outcome.status != "ok":
            return "timeout", f"not sent: {hs.STATUSES.get(outcome.status, outcome.status)}", \
                reply, None
        self._wait_block()
        back = self._ask(hs.get(spec.register, on_demand=True))
        if not _ok(back) or back is None or back.reading is None:
            return "mismatch", "read-back: the register could not be read after the write", \
                reply, None
        readback = self._shown(spec, back.reading)
        self._known[spec.register] = back.reading
        if back.reading.raw != data:
            return "mismatch", f"read-back: {spec.name} reads {readback}, not {new}", reply, \
                readback
        effect = self._effect(spec, new)
        if effect:
            return "mismatch", effect, reply, readback
        return "ok", "", reply, readback

    def _effect(self, spec: ControlSpec, new: str | float) -> str:
        """Return "" when the device shows the effect of the write, else why not."""
        if spec.effect_register is None:
            return ""
        for _ in range(2):  # the effect shows in the next block or the one after
            got = self._ask(hs.get(spec.effect_register, on_demand=True))
            if _ok(got) and got is not None and got.reading is not None:
                problem = _effect_problem(spec, new, got.reading)
                if not problem:
                    return ""
            else:
                problem = f"effect: 0x{spec.effect_register:04X} could not be read"
            self._wait_block()
        return problem

    # ------------------------------------------------------------------ lease
    def _hold_lease(self, amps: float, lease_s: float | None, now: float, event: str) -> None:
        if event == "keepalive" and self._lease is not None:
            self._lease = (self._lease[0], self._lease[1], now)
            return
        until = now + (lease_s if lease_s is not None else self.settings.lease_s)
        self._lease = (amps, until, now)
        log.info("%s: charge-current limit %g A held until %s (re-sent every %g s; not "
                 "renewed, the device falls back to its own maximum within ~60 s)",
                 self.device, amps, time.strftime("%H:%M:%S", time.localtime(until)),
                 LEASE_REFRESH_S)

    def end_lease(self, why: str = "lease ended") -> None:
        """Stop re-sending the limit now (the device falls back within ~60 s)."""
        with self._io:
            lease, self._lease = self._lease, None
        if lease is None:
            return
        now = time.time()
        reason = (f"{why}: vemonitor stopped re-sending {lease[0]:g} A; the device falls back "
                  "to its own maximum within ~60 s")
        log.warning("%s: charge_current_limit %s", self.device, reason)
        self.store.record(time=now, device=self.device, serial=self.serial, surface="lease",
                          caller=self.device, control="charge_current_limit",
                          register="0x2015", event="lease_end", old=lease[0], new=None,
                          frame="", result="ok", reason=reason)
        self._publish(ControlResult(self.device, "charge_current_limit", "ok", reason,
                                    lease[0], None, "", "", None, "lease", self.device, now,
                                    event="lease_end"))

    def _keep_lease(self) -> None:
        lease = self._lease
        if lease is None:
            return
        now = time.time()
        if now >= lease[1]:
            self.end_lease("lease ended (not renewed)")
            return
        if now - lease[2] < LEASE_REFRESH_S:
            return
        spec = CONTROLS["charge_current_limit"]
        assert spec.step is not None
        with self._io:
            base = {"device": self.device, "control": spec.name, "surface": "lease",
                    "caller": self.device}
            try:
                self._check_device(spec)
            except _Refused as refused:
                result = ControlResult(self.device, spec.name, "refused", str(refused),
                                       lease[0], lease[0], "", "", None, "lease", self.device,
                                       now, event="keepalive")
                log.warning("%s: lease keep-alive refused: %s", self.device, refused)
                self._lease = (lease[0], lease[1], now)  # try again at the next period
            else:
                result = self._transaction(spec, round(lease[0] / spec.step), lease[0], False,
                                           None, base, now, event="keepalive")
        self._publish(result)

    @property
    def lease_until(self) -> float | None:
        """Return when the held lease ends (None: no lease)."""
        lease = self._lease
        return None if lease is None else lease[1]

    # --------------------------------------------------------------- identity
    def ensure_identity(self) -> str | None:
        """Read identity and limits once per connection; return the problem, None when ok."""
        if self.reader is None:
            return "no port: the device was not found yet"
        session = self.reader.hex
        if session is None or session is self._session:
            return self._identity_error
        if self.reader.block_age() is None or not session.identity.get("PID"):
            return "identity not read yet"
        with self._io:
            if session is not self.reader.hex or session is self._session:
                return self._identity_error
            self._identity_error = self._read_identity(session)
            self._session = session
        if self._identity_error:
            log.warning("%s: controls unavailable: %s", self.device, self._identity_error)
        return self._identity_error

    def _read_identity(self, session: hs.HexSession) -> str | None:
        """Read serial, capabilities, each enabled control's register and limits."""
        try:
            self.pid = int(session.identity["PID"], 16)
        except ValueError:
            return f"identity: product id {session.identity['PID']!r} is not a number"
        self._known = {}
        serial = self._read_serial()
        if serial is None:
            return "identity: the device did not give its serial number (0x010A)"
        self.serial = serial
        if self._bound_serial is None:
            self._bound_serial = serial
        elif serial != self._bound_serial:
            return (f"identity: serial {serial} on {self.reader.port} is not the configured "
                    f"device {self._bound_serial} (a moved device?)")
        # Every control of this family is read (a Get changes nothing): a dry run needs
        # no consent, and views show the current value of each control.
        family = family_of(self.pid)
        wanted = {r for spec in CONTROLS.values() if family in spec.families
                  for r in _registers_of(spec)} | set(IDENTITY_REGISTERS[1:])
        for register in sorted(wanted):
            got = self._ask(hs.get(register, on_demand=True))
            if _ok(got) and got is not None and got.reading is not None:
                self._known[register] = got.reading
        for name, spec in CONTROLS.items():
            reading = self._known.get(spec.register)
            if reading is not None:
                self.store.known_after_restart(serial, name, self._shown(spec, reading))
            if self.share_consent:
                setting = self.settings.setting(name)
                self.store.save_consent(serial, name, setting.enabled, setting.dry_run,
                                        time.time())
        return None

    def _read_serial(self) -> str | None:
        got = self._ask(hs.get(0x010A, on_demand=True))
        if not _ok(got) or got is None or got.reading is None or not got.reading.value:
            return None
        return str(got.reading.value).split(",")[0].strip() or None  # BMV: two serials (VS)

    # --------------------------------------------------------------- checks
    def _unavailable(self, spec: ControlSpec) -> str | None:
        """Return why ``spec`` cannot be written now (no I/O), None when it can."""
        if self.reader is None:
            return "no port: the device was not found yet"
        age = self.reader.block_age()
        if age is None or age > FRESH_FRAME_S:
            shown = "none yet" if age is None else f"the last {age:.0f} s ago"
            return f"no recent frame: no TEXT block within {FRESH_FRAME_S:g} s ({shown})"
        if self._session is not self.reader.hex or self._session is None:
            return "identity: not read on this connection yet"
        if self._identity_error:
            return self._identity_error
        session = self.reader.hex
        pid_now = session.identity.get("PID") if session is not None else None
        if pid_now is not None and self.pid is not None and _hex_int(pid_now) != self.pid:
            return (f"identity: product id {pid_now} now, 0x{self.pid:04X} at connect "
                    "(another device on the port?)")
        family = family_of(self.pid) if self.pid is not None else None
        if family not in spec.families:
            return (f"device: {spec.name} is not a control of this device "
                    f"(PID 0x{self.pid or 0:04X})")
        fw = hs.firmware_number(session.identity) if session is not None else None
        if fw is None:
            return "firmware: unknown (no FW/FWE in the TEXT blocks)"
        if family == MPPT and fw < MIN_HEX_FIRMWARE:
            return (f"firmware: MPPT firmware {fw / 100:.2f} is below 1.53, which pauses TEXT "
                    "during HEX (HEX.md T1)")
        if spec.capability_any and not (spec.name == "relay" and family == BMV):
            caps = self._known.get(0x0140)
            bits = int.from_bytes(caps.raw, "little") if caps is not None and caps.raw else None
            if bits is None:
                return "capability: capabilities (0x0140) were not read"
            if not bits & spec.capability_any:
                return f"capability: the device does not report the {spec.name} capability"
        if spec.register not in self._known:
            return (f"never read: {spec.name} (0x{spec.register:04X}) was not read from this "
                    "device, so it is not written")
        if spec.condition_register is not None:
            cond = self._known.get(spec.condition_register)
            raw = int.from_bytes(cond.raw, "little") if cond is not None else None
            if raw != spec.condition_value:
                return (f"condition: relay mode (0x{spec.condition_register:04X}) is "
                        f"{raw}, not {spec.condition_value} (remote)")
        return None

    def _maximum(self, spec: ControlSpec) -> float | None:
        """Return a number control's maximum: the least of the device's limit registers."""
        values = [self._known[r].value for r in spec.limit_registers if r in self._known]
        numbers = [float(v) for v in values if isinstance(v, (int, float))]
        if len(numbers) != len(spec.limit_registers):
            return None
        return min(numbers)

    def _enabled(self, name: str) -> bool:
        return self.consent_all or self.settings.setting(name).enabled

    # --------------------------------------------------------------- views
    def _view(self, spec: ControlSpec) -> ControlView:
        reading = self._known.get(spec.register)
        value = self._shown(spec, reading) if reading is not None else None
        if spec.lease and self._lease is not None:
            value = self._lease[0]
        number = spec.kind == "number"
        return ControlView(
            device=self.device, name=spec.name, kind=spec.kind,  # type: ignore[arg-type]
            options=tuple(o for o, _ in spec.options), minimum=0.0 if number else None,
            maximum=self._maximum(spec) if number else None, step=spec.step, unit=spec.unit,
            value=value, unavailable=self._unavailable(spec),
            dry_run=not self.consent_all and self.settings.setting(spec.name).dry_run,
            lease_until=self.lease_until if spec.lease else None)

    @staticmethod
    def _shown(spec: ControlSpec, reading: h.Reading | None) -> str | float | None:
        """Return a register's value as a surface shows it (option name or number)."""
        if reading is None or reading.error:
            return None
        if spec.kind == "number":
            value = reading.value
            return round(float(value), 3) if isinstance(value, (int, float)) else None
        raw = int.from_bytes(reading.raw, "little")
        if spec.register == 0xEDAB:
            raw &= 0x0F  # bits 0-3 mode, bit 7 the solar-timer flag (VR; HEX.md §3.2)
        name = spec.option_name(raw)
        if name is not None:
            return name
        if spec.name == "charger" and raw == 0:
            return "off"  # 0 also reads as off (HEX.md §3.2)
        return str(reading.value) if reading.value is not None else f"0x{raw:X}"

    # ----------------------------------------------------------------- I/O
    def _on_hex(self, _name: str, item: object) -> None:
        """Reader thread: hand an outcome to the request waiting for it."""
        if not isinstance(item, hs.Outcome):
            return
        with self._cond:
            for waiter in self._waiters:
                if waiter[1] is None and waiter[0] == item.request:
                    waiter[1] = item
            self._cond.notify_all()

    def _ask(self, request: hs.Request, timeout: float = ASK_TIMEOUT_S) -> hs.Outcome | None:
        """Send one request through the reader's session; return its outcome (None: no gap)."""
        waiter: list[object] = [request, None]
        with self._cond:
            self._waiters.append(waiter)
        self.reader.request_hex(request)
        deadline = time.monotonic() + timeout
        with self._cond:
            while waiter[1] is None and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            self._waiters.remove(waiter)
        if waiter[1] is None:
            self.reader.cancel_hex(request)  # never sent late, after the caller was told
            return None
        outcome = waiter[1]
        assert isinstance(outcome, hs.Outcome)
        return outcome

    def _wait_block(self, timeout: float = EFFECT_WAIT_S) -> None:
        """Wait for the next TEXT block (the device shows an effect a block later)."""
        start = self.reader.stats.frames_ok
        deadline = time.monotonic() + timeout
        while self.reader.stats.frames_ok == start and time.monotonic() < deadline:
            time.sleep(0.05)

    def _publish(self, result: ControlResult) -> None:
        key = (result.control, result.result)
        self.counts[key] = self.counts.get(key, 0) + 1
        for callback in list(self._subscribers):
            try:
                callback(result)
            except Exception:  # a surface's bug must not break the others
                log.exception("%s: a control subscriber failed", self.device)

    # --------------------------------------------------------------- metrics
    def stats(self) -> dict[str, Any]:
        """Return numbers for the metrics endpoint (budget and rate limits as persisted)."""
        now = time.time()
        serial = self.serial
        waits: dict[str, float] = {}
        for name, spec in CONTROLS.items():
            last = self.store.last_write(serial, name) if serial else None
            waits[name] = 0.0 if last is None else max(0.0, spec.min_interval_s - (now - last))
        lease = self._lease
        return {"results": dict(self.counts),
                "nv_writes_today": self.store.nv_writes(serial, now) if serial else 0,
                "nv_budget": self.settings.nv_writes_per_day,
                "rate_limit_wait_s": waits,
                "lease_remaining_s": max(0.0, lease[1] - now) if lease else 0.0}


class _Result:
    """Builds a request's ControlResult and its audit row (one place for both)."""

    def __init__(self, owner: DeviceControls, spec: ControlSpec, base: dict[str, str],
                 old: str | float | None, new: str | float, frame: str, now: float,
                 event: str) -> None:
        self.owner, self.spec, self.base = owner, spec, base
        self.old, self.new, self.frame, self.now, self.event = old, new, frame, now, event

    def _make(self, result: str, reason: str, frame: str, reply: str,
              readback: str | float | None) -> ControlResult:
        log_level = logging.INFO if result in ("ok", "dry_run") else logging.WARNING
        if self.event != "keepalive" or result != "ok":
            log.log(log_level, "%s: %s -> %s: %s%s", self.owner.device, self.spec.name,
                    self.new, result, f" ({reason})" if reason else "")
        return ControlResult(self.owner.device, self.spec.name, result,  # type: ignore[arg-type]
                             reason, self.old, self.new, frame, reply, readback,
                             self.base["surface"], self.base["caller"], self.now,
                             event=self.event)

    def record(self, result: str, reason: str, frame: str | None = None) -> ControlResult:
        """A result with nothing sent (dry run, unchanged): one finished audit row."""
        shown = self.frame if frame is None else frame
        self.owner.store.record(time=self.now, serial=self.owner.serial,
                                register=f"0x{self.spec.register:04X}", event=self.event,
                                old=self.old, new=self.new, frame=shown, result=result,
                                reason=reason, readback=self.old if result == "ok" else None,
                                **self.base)
        return self._make(result, reason, shown, "", self.old if result == "ok" else None)

    def finish(self, row: int, result: str, reason: str, reply: str,
               readback: str | float | None) -> ControlResult:
        """A result of a sent frame: complete its pending audit row."""
        self.owner.store.finish(row, result=result, reason=reason, reply=reply,
                                readback=readback)
        return self._make(result, reason, self.frame, reply, readback)


def _hex_int(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


def _ok(outcome: hs.Outcome | None) -> bool:
    return outcome is not None and outcome.status == "ok"


def _number(value: str | float) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _jsonable(value: object) -> str | float | None:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None if value is None else str(value)


def _registers_of(spec: ControlSpec) -> tuple[int, ...]:
    """Return what a control needs read at connect: its register, limits, condition."""
    extra = (spec.condition_register,) if spec.condition_register is not None else ()
    return (spec.register, *spec.limit_registers, *extra)


def _effect_problem(spec: ControlSpec, new: str | float, reading: h.Reading) -> str:
    """Return "" when the effect register agrees with ``new``, else the one-line mismatch."""
    raw = int.from_bytes(reading.raw, "little")
    if spec.name == "load_output":
        # 0xEDA8: 0 off, 1 on, 2 scheduled, 3 attempting (VR, GV, KR); auto: any state.
        expect = {"off": {0}, "on": {1, 3}}.get(str(new))
        if expect is not None and raw not in expect:
            return f"effect: the load output state (0xEDA8) reads {raw}, not {str(new)}"
        return ""
    if spec.name == "charger":
        # 0x0207 off reason bit 0x004 "switched off (device mode register)" (PROTOCOL.md).
        off = bool(raw & OFF_BY_DEVICE_MODE)
        if (new == "off") != off:
            return (f"effect: the off reason (0x0207) is 0x{raw:08X}: the charger is "
                    f"{'off' if off else 'not off'} by its device mode")
        return ""
    return ""
