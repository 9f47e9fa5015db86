"""HEX registers as input columns, and the device's identity over HEX (issue 22, points 3-4).

A serial input may name HEX registers (``hex_registers.HEX_FIELD_BY_NAME``: ``yield_today``,
``load_current``, ``battery_temperature``, ``capacity``...) among its TEXT labels. This
module decides which column is which, asks the reader for the registers at the
input's interval, keeps their latest values and hands them to ``latest()`` beside the
TEXT values. Everything goes through :meth:`SerialReader.request_hex`, so the reader's
:class:`~vemonitor.hex_session.HexSession` keeps its rules: one request at a time, in a
block gap, refused registers never asked again, FW <= 1.52 MPPTs and BMV-60x never
polled, a silent device skipped. A device that never answers HEX simply never gets the
column: its rows are exactly the TEXT rows of before.

Decisions:

* **Which columns are HEX.** TEXT labels are never all lowercase (PROTOCOL.md: ``V``,
  ``SOC``, ``Relay``, ``SER#``...); register names are snake_case. So a lowercase
  snake_case column that is not a register is a config error that lists the valid
  names (issue 22 point 3). The seed's own non-VE.Direct columns (``t_bat``, ``t_int``
  of its ARDMONITOR examples, seed ``vm_conf.yaml`` ref_cols) keep the seed's
  behaviour: one warning, never an error, so the seed's files load unchanged.
* **How fresh.** A polled value is used while it is younger than three of its
  intervals plus the source's staleness limit: one lost reply does not blank a
  column, a device that stopped answering does.
* **Identity** (point 4): at each connection the product id (``:4``), serial number
  (0x010A), model name (0x010B) and firmware (0x0102) are asked once. They feed the
  device registry (``VedirectSource.device()``: MQTT discovery's device block) and the
  same-device check after a port is reopened or renumbered.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vemonitor.api import ConfigError
from vemonitor.hex_session import IDENTITY_REQUESTS, SERIAL_REQUEST, Outcome, Request, get
from vemonitor.vedirect import hex as h
from vemonitor.vedirect.fields import FIELD_BY_LABEL, Value
from vemonitor.vedirect.hex_registers import HEX_FIELD_BY_NAME, REGISTER_BY_NAME

# The seed's columns that are no VE.Direct field (ARDMONITOR temperatures in the seed's
# vm_conf.yaml ref_cols): warned about as before, never a config error.
SEED_OTHER_COLUMNS = frozenset({"t_bat", "t_int"})
_SNAKE = re.compile(r"[a-z][a-z0-9_]*\Z")
FRESH_INTERVALS = 3  # a polled value lives this many intervals (plus stale_after)
POLL_EARLY_S = 0.25  # a poll is due this early (at most half an interval; see due())

# Identity registers asked once per connection: hex_session.IDENTITY_REQUESTS (shared
# with the Home Assistant component).
# Which identity answer a request is: one dict look-up per HEX reply, not four comparisons.
# Keyed by (command, register): a tuple hashes in C, a Request's dataclass hash in Python.
IDENTITY_KEY: dict[tuple[int, int | None], str] = {
    (request.command, request.register): key for key, request in IDENTITY_REQUESTS}


def hex_columns(input_name: str, columns: Iterable[str]) -> list[str]:
    """Return the columns that name HEX registers; raise ConfigError for an unknown one."""
    found: list[str] = []
    for column in columns:
        if column in FIELD_BY_LABEL:
            continue
        if column in HEX_FIELD_BY_NAME:
            found.append(column)
        elif _SNAKE.match(column) and column not in SEED_OTHER_COLUMNS | {"time_ref"}:
            raise ConfigError(unknown_register_message(input_name, column))
    return found


def unknown_register_message(input_name: str, column: str) -> str:
    """Return the one-line error for a column that looks like a register but is none."""
    names = sorted(HEX_FIELD_BY_NAME)
    near = difflib.get_close_matches(column, names, n=1, cutoff=0.6)
    hint = f" (nearest: '{near[0]}')" if near else ""
    return (f"input {input_name}: column '{column}' is neither a VE.Direct TEXT label nor a "
            f"HEX register{hint}; valid HEX registers: {', '.join(names)}")


@dataclass
class HexColumns:
    """The HEX side of one serial connector: polled columns and the device's HEX identity."""

    every: float | None = None  # the smallest interval of the inputs naming HEX columns
    names: dict[str, None] = field(default_factory=dict)  # ordered set of column names
    values: dict[str, tuple[Value, float]] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    polled_at: float | None = None
    requests: list[Request] = field(default_factory=list)  # the Gets of ``names``, built once
    serial_pending: bool = False  # the serial number was asked and has not been settled
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, names: list[str], interval: float) -> None:
        """Poll ``names`` at least every ``interval`` seconds."""
        if not names:
            return
        self.names.update(dict.fromkeys(names))
        self.requests = [get(REGISTER_BY_NAME[name].id) for name in self.names]
        self.every = interval if self.every is None else min(self.every, interval)

    def due(self, now: float) -> list[Request]:
        """Return the Gets to ask now; [] when not due.

        It is asked at each complete TEXT cycle, and cycles come about one interval
        apart, a few ms early or late (a device's clock, the reader's wake-up). So a
        poll is due ``POLL_EARLY_S`` before its interval is over (at most half an
        interval). A strict ``>= every`` missed every cycle that came early: a "1 s"
        column of the benchmark's BMV-700 was asked 0.6 times a second (docs/hex.md
        "Numbers").
        """
        if not self.names or self.every is None:
            return []
        early = min(POLL_EARLY_S, self.every / 2)
        if self.polled_at is not None and now - self.polled_at < self.every - early:
            return []
        self.polled_at = now
        return list(self.requests)

    def take(self, item: Outcome | h.Reading, now: float) -> None:
        """Keep what a reply or an async line says about a polled column or the identity."""
        if isinstance(item, Outcome):
            self._identity(item)
            reading = item.reading
            if reading is None or reading.spec is None or reading.spec.name not in self.names:
                return
            if item.status in ("refused", "error"):
                with self._lock:
                    self.values.pop(reading.spec.name, None)  # absent, never a stale value
                return
            if item.status != "ok":
                return
        else:
            reading = item
            if reading.error or reading.spec is None or reading.spec.name not in self.names:
                return
        with self._lock:
            self.values[reading.spec.name] = (reading.value, now)  # type: ignore[assignment]

    def ask_identity(self) -> list[Request]:
        """Return the identity requests of a new connection."""
        self.serial_pending = True
        return [request for _key, request in IDENTITY_REQUESTS]

    def _identity(self, outcome: Outcome) -> None:
        """Remember the identity answers (product id word, serial, model, firmware)."""
        request = outcome.request
        key = IDENTITY_KEY.get((request.command, request.register))
        if key is None:
            return  # a polled register or history: the common case, settled in one look-up
        if request == SERIAL_REQUEST:
            self.serial_pending = False  # answered, refused, timed out or skipped
        if outcome.status != "ok":
            return
        if outcome.word is not None:
            self.identity[key] = f"0x{outcome.word:04X}"
        elif outcome.reading is not None and outcome.reading.value is not None:
            self.identity[key] = outcome.reading.value

    def merged(self, values: dict[str, Value], now: float, stale_after: float) -> dict[str, Value]:
        """Return ``values`` plus the fresh, available polled values (a new dict)."""
        if not self.values:
            return values
        limit = (self.every or 1.0) * FRESH_INTERVALS + stale_after
        out = dict(values)
        with self._lock:
            for name, (value, at) in self.values.items():
                if value is not None and now - at <= limit:
                    out[name] = value
        return out

    def reset(self) -> None:
        """Forget everything a connection told (a reopened port may be another device)."""
        with self._lock:
            self.values.clear()
        self.identity = {}
        self.polled_at = None
        self.serial_pending = False
