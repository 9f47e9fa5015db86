"""The component's HEX side: identity, polled registers and the MPPT's day record.

Pure logic, no Home Assistant and no I/O (as :mod:`vemonitor.hex_session`): the
event loop feeds it the reader's HEX outcomes and asks it which requests to hand
the reader. The reader writes them in the gap after a TEXT block, one at a time,
and gives up on a device that never answers (hex_session's rules), so TEXT is never
disturbed and a device that ignores HEX keeps working as a TEXT-only device.

Decisions (docs/home-assistant.md repeats them for users):

* **Identity at every connection**: product id (``:4``), serial number (0x010A),
  model name (0x010B) and firmware (0x0102) are asked once per opened port
  (hex_session.IDENTITY_REQUESTS, as the daemon does). They fill the device
  registry and the same-device check (:func:`identity_mismatch`).
* **HEX sensors are entities of their device family** (:data:`HEX_SENSORS`), with
  unit, device_class and state_class from the register table's FieldSpecs (the
  day record's from ``DAY_RECORD_FIELDS``), the same machinery as TEXT labels.
  A HEX sensor whose value the device's TEXT block already carries (H20 is
  ``yield_today``...) is registered **disabled by default** (HA's
  entity-disabled-by-default rule for duplicates); the others are enabled. Only the
  registers of enabled entities are asked (:meth:`HexState.due`): a disabled entity
  costs no byte on the wire.
* **Polled every** :data:`POLL_SECONDS`; a value older than :data:`FRESH_POLLS`
  polls plus the entry's stale time is unknown (one lost reply does not blank it, a
  device that stopped answering does). A register the device refuses is unknown.
* **"Yesterday" is the device's own last closed day**, history record 0x1051
  (HEX.md §4.1): read at each connection and again when TEXT's HSDS says the
  device's day rolled (the MPPT rolls at first light, not at midnight: issue 26).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from vemonitor.hex_session import IDENTITY_REQUESTS, Outcome, Request, get, identity_of
from vemonitor.vedirect.fields import FieldSpec, Value
from vemonitor.vedirect.hex import DayRecord, Reading
from vemonitor.vedirect.hex_registers import (
    BMV,
    DAY_RECORD_FIELDS,
    HEX_FIELD_BY_NAME,
    HISTORY_DAY0,
    MPPT,
    REGISTER_BY_NAME,
    SHUNT,
    family_of,
)

POLL_SECONDS = 5.0  # registers that move slowly (yields, a setting): every 5 s is plenty
FRESH_POLLS = 3  # a value lives this many polls (plus the entry's stale time)
YESTERDAY = HISTORY_DAY0 + 1  # 0x1051: the last closed day (HEX.md §4.1, VR)
DAY_PREFIX = "day_"  # unique_id / translation key prefix of the day record's sensors


@dataclass(frozen=True)
class HexSensor:
    """One HEX sensor: where its value comes from and how it is presented."""

    key: str  # unique_id suffix and translation key
    spec: FieldSpec  # label == key; unit, device_class, state_class
    register: int  # the register asked (the day record for day sensors)
    record_field: str | None  # the DayRecord attribute, None for a scalar register
    families: frozenset[str]
    text_twin: str | None  # the TEXT label carrying the same value, if any


def _register_sensor(name: str, families: Iterable[str], twin: str | None) -> HexSensor:
    return HexSensor(name, HEX_FIELD_BY_NAME[name], REGISTER_BY_NAME[name].id, None,
                     frozenset(families), twin)


def _day_sensor(name: str, twin: str | None = None) -> HexSensor:
    spec = dataclasses.replace(DAY_RECORD_FIELDS[name], label=DAY_PREFIX + name)
    return HexSensor(spec.label, spec, YESTERDAY, name, frozenset({MPPT}), twin)


# The HEX sensors (issue 22: "yield today, yield yesterday, max power today, load
# current, the MPPT's battery temperature, SmartShunt capacity" and the day's totals).
# Twins: PROTOCOL.md's TEXT labels for the same quantity (H20 yield today, H21 max
# power today, IL load current, T battery temperature, H22/H23 yesterday's yield/power).
HEX_SENSORS: tuple[HexSensor, ...] = (
    _register_sensor("yield_today", {MPPT}, "H20"),
    _register_sensor("max_power_today", {MPPT}, "H21"),
    _register_sensor("load_current", {MPPT}, "IL"),
    # 0xEDEC: an MPPT's own battery temperature (Smart Battery Sense / VE.Smart), a
    # monitor's temperature input; not available without a sensor (VR).
    _register_sensor("battery_temperature", {MPPT, BMV, SHUNT}, "T"),
    _register_sensor("capacity", {BMV, SHUNT}, None),
    _day_sensor("yield_kwh", "H22"),
    _day_sensor("max_power_w", "H23"),
    _day_sensor("consumed_kwh"),
    _day_sensor("bulk_min"),
    _day_sensor("absorption_min"),
    _day_sensor("float_min"),
    _day_sensor("battery_v_max"),
    _day_sensor("battery_v_min"),
    _day_sensor("battery_i_max"),
    _day_sensor("pv_v_max"),
)
HEX_SENSOR_KEYS = frozenset(sensor.key for sensor in HEX_SENSORS)


def device_family(pid: str | None) -> str | None:
    """Return the HEX device family of a configured PID (``0xA053``), None without HEX."""
    try:
        return family_of(int(pid or "", 16))
    except ValueError:
        return None


def sensors_for(pid: str | None) -> list[HexSensor]:
    """Return the HEX sensors of the device with product id ``pid``."""
    family = device_family(pid)
    return [sensor for sensor in HEX_SENSORS if family in sensor.families]


def enabled_by_default(sensor: HexSensor, text_labels: Iterable[str]) -> bool:
    """Return True unless the device's TEXT block already carries the sensor's value."""
    return sensor.text_twin is None or sensor.text_twin not in set(text_labels)


def identity_mismatch(configured: str | None, found: str | None, what: str) -> str | None:
    """Return why the device found is not the configured one, or None when it may be.

    Only two known values can differ: a device that does not say (no SER# in TEXT, no
    HEX answer) is not called another device.
    """
    if not configured or not found or configured.strip() == found.strip():
        return None
    return f"{what} {found} where {configured} was configured"


@dataclass
class HexState:
    """What HEX told about one connection's device, and what to ask it next."""

    poll_seconds: float = POLL_SECONDS
    identity: dict[str, str] = field(default_factory=dict)
    answered: bool = False  # the device answered a HEX request on this connection
    wanted: Counter[int] = field(default_factory=Counter)  # register -> enabled entities
    values: dict[int, tuple[object, float]] = field(default_factory=dict)
    polled_at: float | None = None

    def connect(self) -> list[Request]:
        """Forget the last connection (it may be another device); return what to ask."""
        self.identity.clear()
        self.values.clear()
        self.answered = False
        self.polled_at = None
        return [request for _key, request in IDENTITY_REQUESTS] + self.day_requests()

    def want(self, register: int) -> bool:
        """Count one more enabled entity of ``register``; True when it was not asked yet."""
        self.wanted[register] += 1
        return self.wanted[register] == 1

    def unwant(self, register: int) -> None:
        """Count one enabled entity of ``register`` less."""
        self.wanted[register] -= 1
        if self.wanted[register] <= 0:
            del self.wanted[register]

    def day_requests(self) -> list[Request]:
        """Return the day record request, when a day sensor is enabled."""
        return [get(YESTERDAY)] if YESTERDAY in self.wanted else []

    def due(self, now: float) -> list[Request]:
        """Return the scalar registers to poll now ([] when not due or none enabled)."""
        registers = sorted(r for r in self.wanted if r != YESTERDAY)
        if not registers or (self.polled_at is not None
                             and now - self.polled_at < self.poll_seconds):
            return []
        self.polled_at = now
        return [get(register) for register in registers]

    def take(self, item: Outcome | Reading, now: float) -> bool:
        """Keep what an outcome or async line tells; return True when identity changed."""
        if isinstance(item, Reading):
            if not item.error:
                self.values[item.register] = (item.value, now)
            return False
        if item.status in ("ok", "refused", "rejected", "error", "mismatch", "unknown_command"):
            self.answered = True  # any reply at all: the device speaks HEX
        found = identity_of(item)
        if found is not None:
            key, value = found
            changed = self.identity.get(key) != value
            self.identity[key] = value
            return changed
        register = item.request.register
        if register is None:
            return False
        if item.status == "ok" and item.reading is not None:
            self.values[register] = (item.reading.value, now)
        elif item.status in ("refused", "error"):
            self.values.pop(register, None)  # absent, never a stale value
        return False

    def value(self, sensor: HexSensor, now: float, stale_after: float) -> Value:
        """Return the sensor's value (None: unknown, refused, not available or too old)."""
        found = self.values.get(sensor.register)
        if found is None:
            return None
        value, at = found
        if sensor.record_field is not None:
            # A day record stays valid all day: it changes only when the day rolls.
            if not isinstance(value, DayRecord):
                return None
            return getattr(value, sensor.record_field)  # type: ignore[no-any-return]
        if now - at > self.poll_seconds * FRESH_POLLS + stale_after:
            return None
        return value  # type: ignore[return-value]
