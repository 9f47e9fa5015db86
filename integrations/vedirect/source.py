"""The VE.Direct source: finds its port, runs a SerialReader, searches again if the device moves."""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from vemonitor_integrations.vedirect.hexpoll import HexColumns, hex_columns
from vemonitor_integrations.vedirect.history import PAST_SPAN, Anchors, History
from vemonitor_integrations.vedirect.scanner import scanner_for
from vemonitor_integrations.vedirect.schema import VedirectConnector

from vemonitor.api import ConfigError, Context, Controls, InputItem, Row, supervised
from vemonitor.control import ControlSetting, DeviceControls, DeviceSettings
from vemonitor.hex_session import Outcome, get
from vemonitor.scan import matches
from vemonitor.serial_reader import SerialReader
from vemonitor.vedirect.fields import FIELD_BY_LABEL, Value
from vemonitor.vedirect.hex import DayRecord, Reading, TotalRecord
from vemonitor.vedirect.hex_registers import (
    HEX_FIELD_BY_NAME,
    HISTORY_DAY0,
    HISTORY_DAYS,
    HISTORY_TOTAL,
)
from vemonitor.vedirect.snapshot import Snapshot

log = logging.getLogger(__name__)
GUIDANCE_EVERY = 300.0  # seconds between two warnings of a device still not found
# How often the supervisor looks at a connector's device (real seconds): while it is there
# and passes serialTest, and while it is missing or unavailable (then a rescan is near).
HEALTHY_LOOK_S = 5.0
SICK_LOOK_S = 1.0

NOT_FIELDS = ("time_ref",)  # the seed's name for the row time, never a device field


def describe_unknown(column: str, known: list[str]) -> str:
    """Return ``'X' (nearest known label: 'Y')`` for a column no one knows."""
    by_upper = {label.upper(): label for label in known}
    nearest = difflib.get_close_matches(column.upper(), list(by_upper), n=1, cutoff=0.5)
    hint = f" (nearest known label: '{by_upper[nearest[0]]}')" if nearest else ""
    return f"'{column}'{hint}"


def _unavailable_from(reader: SerialReader | None, now: float) -> float:
    """Return when ``reader``'s device became unavailable (monotonic s), at the latest ``now``.

    Its last valid block plus the reader's ``stale_after``: the supervisor may notice it
    up to HEALTHY_LOOK_S later, and ``rescan_after`` still counts from the moment itself.
    """
    age = reader.block_age() if reader is not None else None
    return now if age is None or reader is None else min(now, now - age + reader.stale_after)


def _first_serial(value: object) -> str | None:
    """Return the first serial of a HEX 0x010A answer (a BMV sends two, comma-separated: VS)."""
    if not value:
        return None
    return str(value).split(",")[0].strip() or None


class VedirectSource:
    """One serial connector: a fixed ``serialPort`` or a port found by ``serialTest``."""

    def __init__(self, name: str, config: VedirectConnector, context: Context) -> None:
        self.name = name
        self.config = config
        self.context = context
        self.scanner = scanner_for(context)  # one per run, shared by the serial connectors
        self.reader: SerialReader | None = None
        self._stop = threading.Event()
        # Wakes the supervisor before its next look: a snapshot failing serialTest, or close.
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._reconnects = 0
        self._found: Snapshot | None = None  # the snapshot the last scan saw
        self._listeners: list[Callable[[], None]] = []
        # Columns asked for that are not VE.Direct fields: checked against the first
        # snapshot, then named in one warning (vemonitor_m8 dropped them silently).
        self._unknown_columns: dict[str, None] = {}
        # HEX registers named as columns, polled through the reader (issue 22 point 3).
        self.hex = HexColumns()
        self._hex_session: object | None = None  # the reader session identity was asked on
        self._device_key: str | None = None  # SER# (TEXT or HEX) of the first device read
        self._wrong_device: str | None = None  # the key of another device now on the port
        # The MPPT's day records as rows of the history inputs (issue 22 point 5).
        self.history = History(Anchors(context.state_dir))
        self._last_snapshot_at: float | None = None
        self._last_hsds: str | None = None
        # Device controls (issue 23): built once the device key (its input's name) is known.
        self._device_key_name: str | None = None
        self._controls: DeviceControls | None = None

    # ------------------------------------------------------------------ controls
    def controls(self) -> Controls | None:
        """Return this device's controls, None when the connector enables none."""
        cfg = self.config.controls
        wanted = {name: ControlSetting(c.enabled, c.dry_run)
                  for name, c in cfg.enabled().items() if c.enabled}
        if not wanted:
            return None
        if self._controls is None:
            key = self._device_key_name or self.name
            settings = DeviceSettings(controls=wanted, serial=cfg.serial,
                                      nv_writes_per_day=cfg.nv_writes_per_day,
                                      lease_s=cfg.lease_s)
            self._controls = DeviceControls(self.reader, settings, self.context.state_dir,
                                            device=key, share_consent=True)
        return self._controls

    # ------------------------------------------------------------------ contract
    def start(self) -> None:
        """Open the configured port, or scan for the device; keep searching in the background."""
        if self._controls is not None:
            for name, setting in self._controls.settings.controls.items():
                log.warning("%s: control %s is ENABLED%s: vemonitor may switch this device "
                            "when asked (docs/control.md)", self._controls.device, name,
                            " in dry-run (nothing is written until dry_run: false)"
                            if setting.dry_run else "")
            self._controls.start()
        path = self._initial_path()
        if path is not None:
            self._attach(path, self._found)
        if self.config.serialTest or path is None:
            self._supervisor = threading.Thread(target=supervised(f"vedirect-{self.name}",
                                                                  self._supervise, self._stop),
                                                name=f"vedirect-{self.name}", daemon=True)
            self._supervisor.start()

    def close(self) -> None:
        """Stop reading and release the port (idempotent)."""
        self._stop.set()
        self._wake.set()
        if self._supervisor is not None:
            self._supervisor.join(2.0)
        if self._controls is not None:
            self._controls.close()
        with self._lock:
            if self.reader is not None:
                self.reader.close()
        self.scanner.release(self.name)

    def notify_on_update(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the reader thread) whenever a new snapshot is complete.

        The engine uses it to make a row as soon as its data is in, rather than at
        the next tick: that is what keeps frame-to-sink latency in milliseconds.
        """
        self._listeners.append(callback)

    def latest(self) -> tuple[dict[str, Value], float] | None:
        """Return the newest complete snapshot's values and its receive time.

        A snapshot of a device that fails this connector's serialTest (two devices
        swapped ports) is never used: no row is better than a row of the wrong device.
        """
        reader = self.reader
        snapshot = reader.latest if reader is not None else None
        if snapshot is None or snapshot.received_at is None or not self._identity_ok(snapshot):
            return None
        if not self._same_device(snapshot):
            return None
        values = self.hex.merged(snapshot.values, self.context.clock.now(),
                                 self.context.stale_after)
        return values, snapshot.received_at

    def device(self) -> dict[str, Any]:
        """Return the device's identity (from its latest snapshot) and availability."""
        reader = self.reader
        snapshot = (reader.latest if reader is not None else None) or self._found
        info: dict[str, Any] = {"available": bool(reader and reader.available)}
        if snapshot is not None:
            info.update(pid=snapshot.pid, product=snapshot.product, serial=snapshot.serial,
                        firmware=snapshot.firmware, hardware=snapshot.raw.get("HC#"))
        # HEX identity (issue 22 point 4): the device's own model name is the best
        # product name; serial, PID and firmware fill what TEXT lacks (a BMV-700 sends
        # no SER#).
        found = dict(self.hex.identity)
        if found.get("model"):
            info["product"] = found["model"]
        for key in ("serial", "pid", "firmware"):
            if not info.get(key) and found.get(key):
                info[key] = str(found[key])
        return info

    def stats(self) -> dict[str, Any]:
        """Return the reader's counters for the summary and metrics."""
        reader = self.reader
        if reader is None:
            return {"port": None, "available": False, "frames_ok": 0, "rejected": {}}
        s = reader.stats
        return {"port": reader.port, "available": reader.available, "frames_ok": s.frames_ok,
                "rejected": dict(s.rejected), "hex_ok": s.hex_ok, "hex_invalid": s.hex_invalid,
                "snapshots": s.snapshots, "bytes": s.bytes,
                "reconnects": s.reconnects + self._reconnects, "last_frame_at": s.last_frame_at,
                "fields_dropped": s.fields.as_dict()}

    def subscribe(self, item: InputItem) -> None:
        """Learn an input's columns, to name those neither the field table nor the device has."""
        if not getattr(item, "history", False) and self._device_key_name is None:
            self._device_key_name = item.name  # the key rows, MQTT topics and controls use
        if getattr(item, "history", False):
            if self.config.hex == "never":
                raise ConfigError(f"input {item.name}: history: true needs HEX, but connector "
                                  f"{self.name} has hex: never")
            self.history.inputs.append(item.name)
            return
        named = hex_columns(item.name, item.columns)
        if named and self.config.hex == "never":
            raise ConfigError(f"input {item.name}: columns {', '.join(named)} are HEX "
                              f"registers but connector {self.name} has hex: never")
        self.hex.add(named, item.time_interval)
        for column in item.columns:
            if (column not in FIELD_BY_LABEL and column not in NOT_FIELDS
                    and column not in HEX_FIELD_BY_NAME):
                self._unknown_columns[column] = None

    # ------------------------------------------------------------------ internals
    def _initial_path(self) -> str | None:
        """Return the fixed port, or the scanned one; None when nothing matches yet."""
        if self.config.serialPort:
            self.scanner.claim(self.name, self.config.serialPort)
            return self.config.serialPort
        return self._search(fresh=False)

    def _search(self, fresh: bool) -> str | None:
        found = self.scanner.find(self.name, self.config.tests(),
                                          self.config.globs() or None, fresh=fresh,
                                          allow=tuple(self.config.allowed_ports))
        if found is None:
            return None
        self._found = found.snapshot
        info = found.describe()
        serial = f" (SER# {info['serial']})" if info.get("serial") else ""
        log.info("%s: found %s%s on %s", self.name, info.get("product"), serial, found.path)
        return found.path

    def _guide(self, warned_at: float | None) -> float | None:
        """Say what the search saw and what to try: at once, then every GUIDANCE_EVERY s.

        Between those the same line is logged at DEBUG after every search (``debug=true``).
        """
        line = self.scanner.explain(self.name, self.config.tests(),
                                            self.config.globs() or None,
                                            allow=tuple(self.config.allowed_ports))
        now = time.monotonic()
        if warned_at is None or now - warned_at >= GUIDANCE_EVERY:
            log.warning("%s: %s (searching every %g s)", self.name, line,
                        self.config.rescan_after)
            return now
        log.debug("%s: %s", self.name, line)
        return warned_at

    def _attach(self, path: str, initial: Snapshot | None = None) -> None:
        """Start reading ``path`` (replacing the current reader)."""
        reader = SerialReader(self.name, path, clock=self.context.clock,
                              stale_after=self.context.stale_after, initial=initial)
        reader.subscribe(self._updated)
        reader.subscribe_hex(self._hex_update)
        with self._lock:
            old, self.reader = self.reader, reader
        if self._controls is not None:
            self._controls.attach(reader)  # identity is read again on the new port
        if old is not None:
            old.close()
            self._reconnects += 1
        reader.start()

    def _hex_update(self, _name: str, item: Outcome | Reading) -> None:
        """Keep a HEX reply or async line (reader thread).

        Called for every reply (four a second when four columns are polled), so a
        reply that is not history leaves after one type test and two comparisons.
        """
        now = self.context.clock.now()
        self.hex.take(item, now)
        outcome: Outcome | None
        reading: Reading | None
        outcome, reading = (item, item.reading) if isinstance(item, Outcome) else (None, item)
        register = outcome.request.register if outcome is not None else None
        if register is not None and HISTORY_DAY0 <= register < HISTORY_DAY0 + HISTORY_DAYS:
            self.history.settle(register - HISTORY_DAY0)  # replied, refused or timed out
        if (reading is None or reading.error
                or not HISTORY_TOTAL <= reading.register < HISTORY_DAY0 + HISTORY_DAYS):
            return
        if isinstance(reading.value, TotalRecord) and outcome is not None:
            self._read_days(reading.value.days)
        elif isinstance(reading.value, DayRecord):
            self._take_day(reading.register - HISTORY_DAY0, reading.value, now)

    def _read_history(self, reader: SerialReader, why: str) -> None:
        """Ask for the history total; its answer asks for the days (reader thread)."""
        if self.reads_history:
            log.debug("%s: reading the device's history (%s)", self.name, why)
            reader.request_hex(get(HISTORY_TOTAL))

    def _read_days(self, days: int) -> None:
        """Ask for today (to learn its day_seq) and each available past day."""
        reader = self.reader
        if reader is None or not self.reads_history:
            return
        self.history.ask(range(min(days, HISTORY_DAYS)))
        for n in range(min(days, HISTORY_DAYS)):
            reader.request_hex(get(HISTORY_DAY0 + n))

    def _take_day(self, n: int, record: DayRecord, now: float) -> None:
        """Keep a day record: record 0 says which day is today, the others become rows."""
        if n == 0:
            self.history.today_seq = record.day_seq
            self.history.today_record = record
            return
        snapshot = self.reader.latest if self.reader is not None else None
        serial = (snapshot.serial if snapshot is not None else None) or _first_serial(
            self.hex.identity.get("serial"))
        if serial is None:
            log.debug("%s: day %d read before the serial number; not kept", self.name,
                      record.day_seq)
            return
        self.history.add(serial, record, now, n)  # n dates it, HSDS known or not

    @property
    def speaks_hex(self) -> bool:
        """Return True when this connector may write HEX requests (see schema ``hex``)."""
        return self.config.hex == "full" or (
            self.config.hex == "auto" and bool(self.hex.names or self.history.inputs))

    @property
    def reads_history(self) -> bool:
        """Return True when day records are read (an input wants them, or hex: full)."""
        return self.config.hex == "full" or (self.config.hex == "auto"
                                             and bool(self.history.inputs))

    def forwards_item(self, input_name: str) -> bool:
        """Return True for a history input: its rows are day rows, forwarded, not sampled."""
        return input_name in self.history.inputs

    def past_span(self, input_name: str) -> float:
        """How far behind the run's clock this input's rows may be dated (s): a month of
        day records for a history input, nothing beyond the engine's default otherwise."""
        return PAST_SPAN if self.forwards_item(input_name) else 0.0

    def rows_since(self, after: float, input_name: str | None = None) -> list[Row]:
        """Return the day rows newer than ``after`` (history inputs only)."""
        return self.history.since(after, input_name)

    def _poll_hex(self, after_block: bool = False) -> None:
        """Ask for identity once per connection and the HEX columns when due (reader thread).

        ``after_block`` (a device whose cycle has several blocks, a BMV): the columns are
        asked in the gap after the next block, mid-cycle, not at the cycle's end where
        the engine makes its row: there the HEX exchange and the row's work contend for
        the interpreter (measured: ~3 more thread switches a second, docs/hex.md
        "Numbers"), and mid-cycle the values are half a cycle fresher when the next row
        is made. A one-block device (an MPPT) is asked at once: its next block is the
        next cycle's end.
        """
        reader = self.reader
        if reader is None or not self.speaks_hex:
            return
        if reader.hex is not None and reader.hex is not self._hex_session:
            self._hex_session = reader.hex  # a new connection: maybe another device
            self.hex.reset()
            for request in self.hex.ask_identity():
                reader.request_hex(request)
            self._read_history(reader, "connect")
        for request in self.hex.due(self.context.clock.now()):
            reader.request_hex(request, after_block=after_block)

    def _history_triggers(self, snapshot: Snapshot) -> None:
        """Read the history again after a gap in the stream and when the device's day rolls."""
        reader = self.reader
        now = self.context.clock.now()
        previous, self._last_snapshot_at = self._last_snapshot_at, now
        last_hsds, self._last_hsds = self._last_hsds, snapshot.raw.get("HSDS")
        if reader is None or reader.hex is not self._hex_session:
            return  # a new connection reads it in _poll_hex
        if previous is not None and now - previous > self.context.stale_after:
            self._read_history(reader, "gap")
        elif last_hsds is not None and self._last_hsds not in (None, last_hsds):
            self._read_history(reader, "day roll")

    def _same_device(self, snapshot: Snapshot) -> bool:
        """Return False while the port carries another device than the first one read.

        A renumbered ttyUSB (or a swapped cable) must not mix a second device's values
        into the first one's rows: the serial number (TEXT SER#, else HEX 0x010A) of
        the first device is kept; another one is logged once and its values unused.
        """
        key = snapshot.serial or _first_serial(self.hex.identity.get("serial"))
        if key is None:
            # Without SER# in TEXT (a BMV-700), hold a reconnected port's values until
            # its HEX serial number is known or the device did not tell it.
            return self._device_key is None or not self.hex.serial_pending
        if self._device_key is None:
            self._device_key = key
        if key == self._device_key:
            if self._wrong_device is not None:
                log.warning("%s: device SER# %s is back on %s; its values are used again",
                            self.name, key, self.reader.port if self.reader else "?")
                self._wrong_device = None
            return True
        if self._wrong_device != key:
            self._wrong_device = key
            log.warning("%s: %s now carries SER# %s, not SER# %s read before; its values are "
                        "not used (restart to adopt the new device)", self.name,
                        self.reader.port if self.reader else "?", key, self._device_key)
        return False

    def _updated(self, _name: str, snapshot: Snapshot) -> None:
        """Tell the listeners about a new complete snapshot."""
        if snapshot.complete:
            self._poll_hex(after_block=snapshot.blocks > 1)
            self._history_triggers(snapshot)
            if self._supervisor is not None and not self._identity_ok(snapshot):
                self._wake.set()  # another device on the port: the supervisor acts now
        if snapshot.complete and self._unknown_columns:
            self._warn_unknown_columns(snapshot)
        if snapshot.complete:
            for callback in self._listeners:
                callback()

    def _warn_unknown_columns(self, snapshot: Snapshot) -> None:
        """Name, once, the columns the device does not send either (with the nearest label)."""
        asked, self._unknown_columns = list(self._unknown_columns), {}
        missing = [column for column in asked if column not in snapshot.raw]
        if missing:
            known = [*FIELD_BY_LABEL, *snapshot.raw]
            log.warning("%s: columns neither VE.Direct fields nor sent by the device, missing "
                        "from every row: %s", self.name,
                        ", ".join(describe_unknown(column, known) for column in missing))

    def _identity_ok(self, snapshot: Snapshot | None) -> bool:
        """Return True unless the port now carries a device that fails serialTest."""
        return snapshot is None or not self.config.serialTest or matches(
            snapshot, self.config.tests())

    def _detach(self) -> None:
        """Stop reading the current port and give it back (another connector may own it)."""
        with self._lock:
            old, self.reader = self.reader, None
        if old is not None:
            old.close()
        self.scanner.release(self.name)

    def _supervise(self) -> None:
        """Search again when the device is missing, stays unavailable, or is not ours any more.

        While the device is there and passes serialTest it looks every HEALTHY_LOOK_S
        (issue 24: a look a second was a tenth of the daemon's CPU); a snapshot that
        fails serialTest wakes it at once (``_updated``), and how long the device has
        been unavailable is taken from its last valid block, not from when it was noticed.
        """
        unavailable_since: float | None = None
        warned_at: float | None = None
        pause = SICK_LOOK_S
        while not self._stop.is_set():
            self._wake.wait(pause)
            self._wake.clear()
            if self._stop.is_set():
                return
            pause = SICK_LOOK_S
            reader = self.reader
            if reader is not None and not self._identity_ok(reader.latest):
                log.warning("%s: the device on %s no longer passes serialTest (%s); searching "
                            "again", self.name, reader.port,
                            reader.latest.product if reader.latest else "?")
                self._detach()
                reader = None
            if reader is not None and reader.available:
                unavailable_since = None
                pause = HEALTHY_LOOK_S
                continue
            now = time.monotonic()
            unavailable_since = unavailable_since or _unavailable_from(reader, now)
            waited = now - unavailable_since
            if reader is not None and waited < self.config.rescan_after:
                continue
            if not self.config.serialTest:
                continue  # a fixed port: the reader itself keeps reopening it
            path = self._search(fresh=True)
            if path is None:
                warned_at = self._guide(warned_at)
                self._stop.wait(self.config.rescan_after)
                continue
            warned_at = None
            unavailable_since = None
            if reader is None or path != reader.port:
                self._attach(path, self._found)
