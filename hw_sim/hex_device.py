"""The simulated devices' HEX side: they answer what a host sends, as real devices do.

One :class:`HexDevice` per simulated device. The writer thread of
:class:`hw_sim.simulator.Device` calls :func:`serve` between TEXT blocks (never
inside one: HEX.md T2 "a response to a hex message will always wait until the
text message finishes") and :func:`text_paused` before each block. Values come
from the TEXT block the device just wrote, so HEX and TEXT always agree; settings
are stored here.

What it answers (HEX.md §2.2, §3, §4; the behaviour each line copies is named):

* ``:1`` ping -> ``:5`` + version word (0x4000 | firmware digits: 0x4161 for FW 161,
  as GV recorded); ``:3`` app version -> Done with the same word (pmarches ``:11641FD``);
  ``:4`` product id -> Done + PID (GV ``:156A05E``); ``:6`` restart and ``:0`` boot:
  no answer (never acted upon).
* ``:7`` Get: the register map of the device family (BMV-700, SmartShunt, MPPT);
  a register the device does not have -> flags 01 and no value (GV ``:77777015F``).
* ``:8`` Set: a writable register with the right width is stored and echoed;
  a wrong width -> flags 04 (parameter error); a read-only register -> flags 02
  (no public recording: a simulator decision). 0x2015 expires 60 s after its last
  Set (HEX.md Q1: "reset to NA ... after 50 seconds"; VR "60s timeout"); every Set
  of a non-volatile register is counted in :attr:`HexDevice.nv_writes` (Q2).
  A stored Set acts on the simulated charger (issue 23): 0xEDAB forces the load output
  off (0) / on (4) or leaves it to its low-voltage logic (1); 0x0200 = 4 switches the
  charger off (CS 0, OR bit 0x004), 1 on; 0x2015 caps the charge current until it lapses
  (:attr:`HexDevice.link_ttl_s`). :attr:`HexDevice.sets` and :attr:`HexDevice.expired`
  record what happened; the fault :attr:`HexDevice.drop_sets` loses every Set (no reply).
* A line it cannot parse -> ``:4AAAAFD`` (OpenDTU#436); a well-formed unknown
  command -> ``:3`` (KR, OD name the code; the payload is not recorded: none sent).
* After HEX activity, a burst of ``:A`` lines with live registers comes *before*
  the replies (GV "Solar Piegn Main"; pbg42: 21 lines after a ping), at most once
  per :data:`BURST_EVERY_S`; and while a host speaks HEX, today's history record
  is pushed (``:A5010``) whenever today's yield changes (HEX.md §4.1).
  A device no host ever spoke HEX to sends no ``:A`` line, so TEXT-only tests see
  the stream they always saw.
* History: 0x104F and 0x1050 + n. Today is the live day (yield = H20, max power =
  H21, day = HSDS); each day roll archives the day with H22/H23 as its yield and
  max power. The past the physics started with (H19 above H20) is shown as days like
  yesterday (H22/H23) while H19's remainder lasts; :meth:`HexDevice.seed_history`
  gives a charger without a past N days and adds their yield to the physics' H19.
  So the total record is H19, day 1 is H22, and the days never sum above H19.
  Days not (yet) available answer flags 01 (VR).
* Firmware <= 1.52 (T1): TEXT pauses while HEX traffic is recent
  (:data:`TEXT_PAUSE_S`), HEX continues.
* The fault :attr:`HexDevice.ignore_hex` makes the device ignore every HEX line
  (HEX.md Q4: RX pin configured for remote on/off).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hw_sim.devices import Profile, Record
from hw_sim.physics import Charger, World
from vemonitor.vedirect import hex as h
from vemonitor.vedirect.hex_registers import (
    BMV,
    HISTORY_DAY0,
    HISTORY_DAYS,
    HISTORY_TOTAL,
    MPPT,
    REGISTER_BY_ID,
    SHUNT,
    family_of,
)

if TYPE_CHECKING:
    from hw_sim.simulator import Device

LINK_REGISTER_TTL_S = 60.0  # 0x2015 falls back to "not available" (HEX.md Q1)
VOLATILE = frozenset({0x2015})
BURST_EVERY_S = 5.0
TEXT_PAUSE_S = 3.0  # "several seconds" without HEX before TEXT resumes (T1)
LAST_PAUSING_FW = 152
TODAY_PUSH_EVERY_S = 30.0
MAX_INPUT_LINES = 32  # lines handled per call: a flood cannot stall the writer thread

# Model names as the devices report them in 0x010B (GV recordings for the form).
MODEL_NAMES: dict[int, str] = {
    0x0203: "BMV-700", 0xA389: "BMV-SmartShunt 500A/50mV",
    0xA053: "SmartSolar Charger MPPT 75/15", 0xA06C: "SmartSolar Charger MPPT 150/70 rev2",
    0xA042: "BlueSolar Charger MPPT 75/15",
}
# Registers pushed in a burst after HEX activity (pbg42's capture; those the map has).
BURST: dict[str, tuple[int, ...]] = {
    MPPT: (0x0200, 0x0201, 0x0202, 0xEDD7, 0xEDD5, 0xEDBC, 0xEDBB, 0xEDB3, 0xEDAD, 0xEDA8),
    BMV: (0xED8D, 0xED8F, 0xEEFF, 0x0FFF), SHUNT: (0xED8D, 0xED8F, 0xEEFF, 0x0FFF),
}


def _num(fields: Mapping[str, str], label: str, default: int = 0) -> int:
    """Return a TEXT label as an int (decimal or 0x hex); ``default`` when absent or '---'."""
    raw = fields.get(label)
    if raw is None or raw == "---":
        return default
    return int(raw, 16) if raw.lower().startswith("0x") else int(raw)


def _u(size: int, value: int) -> bytes:
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _s(size: int, value: int) -> bytes:
    return value.to_bytes(size, "little", signed=True)


Provider = Callable[[Mapping[str, str]], bytes]


# Live registers, from the TEXT fields just written (wire-unit conversions per VR scales).
MPPT_LIVE: dict[int, Provider] = {
    0x0201: lambda f: _u(1, _num(f, "CS")),
    0x0207: lambda f: _u(4, _num(f, "OR")),
    0xEDDA: lambda f: _u(1, _num(f, "ERR")),
    0xEDB3: lambda f: _u(1, _num(f, "MPPT")),
    0xEDD5: lambda f: _u(2, _num(f, "V") // 10),  # mV -> 0.01 V
    0xEDD7: lambda f: _u(2, max(_num(f, "I"), 0) // 100),  # mA -> 0.1 A
    0xEDBB: lambda f: _u(2, _num(f, "VPV") // 10),
    0xEDBC: lambda f: _u(4, _num(f, "PPV") * 100),  # W -> 0.01 W
    0xEDAD: lambda f: _u(2, _num(f, "IL") // 100),
    0xEDA8: lambda f: _u(1, 1 if f.get("LOAD") == "ON" else 0),
    0xEDD3: lambda f: _u(2, _num(f, "H20")),
    0xEDD1: lambda f: _u(2, _num(f, "H22")),
    0xEDD2: lambda f: _u(2, _num(f, "H21")),
    0xEDD0: lambda f: _u(2, _num(f, "H23")),
    0xEDDC: lambda f: _u(4, _num(f, "H19")),
    0xEDDD: lambda f: _u(4, _num(f, "H19")),
    0xEDDB: lambda f: _s(2, 2500),  # 25.00 °C inside the charger
    0xEDEC: lambda f: _u(2, 0xFFFF),  # no battery temperature sensor: not available
    0x2027: lambda f: _u(4, 0xFFFFFFFF),  # not in a VE.Smart network: not available
    0xEDEF: lambda f: _u(1, 12),
}
MONITOR_LIVE: dict[int, Provider] = {
    0xED8D: lambda f: _s(2, _num(f, "V") // 10),
    0xED8F: lambda f: _s(2, int(_num(f, "I") / 100)),
    0xED8C: lambda f: _s(4, _num(f, "I")),  # mA = 0.001 A
    0xED8E: lambda f: _s(2, _num(f, "P")),
    0xEEFF: lambda f: _s(4, int(_num(f, "CE") / 100)),  # mAh -> 0.1 Ah
    0x0FFF: lambda f: _u(2, _num(f, "SOC", -1) * 10 if "SOC" in f and f["SOC"] != "---"
                         else 0xFFFF),  # permille -> 0.01 %; unsynchronised: not available
    0x0FFE: lambda f: _u(2, 0xFFFF if _num(f, "TTG", -1) < 0 else _num(f, "TTG")),
    0xED7D: lambda f: _s(2, 0x7FFF),  # no aux input in use: not available
    0x0382: lambda f: _u(2, 0xFFFF),  # no mid-point: not available
    0x0383: lambda f: _s(2, 0x7FFF),
    0xEDEC: lambda f: _u(2, 0xFFFF),
    0xEEB6: lambda f: _u(1, 1),
    0x0300: lambda f: _s(4, int(_num(f, "H1") / 100)),
    0x0301: lambda f: _s(4, int(_num(f, "H2") / 100)),
    0x0302: lambda f: _s(4, int(_num(f, "H3") / 100)),
    0x0303: lambda f: _s(4, _num(f, "H4")),
    0x0304: lambda f: _s(4, _num(f, "H5")),
    0x0305: lambda f: _s(4, int(_num(f, "H6") / 100)),
    0x0306: lambda f: _s(4, _num(f, "H7") // 10),
    0x0307: lambda f: _s(4, _num(f, "H8") // 10),
    0x0308: lambda f: _s(4, _num(f, "H9")),
    0x0309: lambda f: _s(4, _num(f, "H10")),
    0x030A: lambda f: _s(4, _num(f, "H11")),
    0x030B: lambda f: _s(4, _num(f, "H12")),
    0x0310: lambda f: _u(4, _num(f, "H17")),
    0x0311: lambda f: _u(4, _num(f, "H18")),
}
# Stored settings: initial wire values (factory-like defaults; PM defaults for the BMV).
MPPT_SETTINGS: dict[int, bytes] = {
    0x0200: b"\x01", 0x0202: _u(4, 2), 0x2015: _u(2, 0xFFFF), 0xEDAB: b"\x01",
    0xEDF7: _u(2, 1440), 0xEDF6: _u(2, 1380), 0xEDF5: _u(2, 1320), 0xEDF4: _u(2, 1620),
    0xEDF2: _s(2, -1620), 0xEDFB: _u(2, 600), 0xEDFC: _u(2, 1000), 0xEDE7: _u(2, 20),
    0xEDE0: _s(2, 500), 0xED2E: _u(2, 40), 0xEDF1: b"\x03", 0x0104: b"\x0a",
    0xEDCE: bytes([8, 17]),
}
MONITOR_SETTINGS: dict[int, bytes] = {
    0x1000: _u(2, 200), 0x1001: _u(2, 132), 0x1002: _u(2, 40), 0x1003: _u(2, 3),
    0x1004: _u(2, 95), 0x1005: _u(2, 125), 0x1006: _u(2, 10), 0x1007: _u(2, 3),
    0x1008: _u(2, 500), 0x0104: b"\x0a",
}
BMV_ONLY_SETTINGS: dict[int, bytes] = {0x034E: b"\x00", 0x034F: b"\x00", 0x034D: b"\x00"}


@dataclass
class DayStats:
    """One day of a charger as its history record shows it (wire units)."""

    seq: int
    yield_c: int = 0  # 0.01 kWh
    max_power_w: int = 0
    vmax_c: int = 0  # 0.01 V
    vmin_c: int = 0xFFFF
    imax_d: int = 0  # 0.1 A
    pvmax_c: int = 0
    seconds_by_cs: Counter[int] = field(default_factory=Counter)

    def record(self) -> bytes:
        """Return the 34-byte VR day record."""
        minutes = {cs: self.seconds_by_cs[cs] // 60 for cs in (3, 4, 5)}
        return (b"\x00" + _u(4, self.yield_c) + _u(4, 0) + _u(2, self.vmax_c)
                + _u(2, self.vmin_c) + b"\x00" + b"\x00" * 4 + _u(2, minutes[3])
                + _u(2, minutes[4]) + _u(2, minutes[5]) + _u(4, self.max_power_w)
                + _u(2, self.imax_d) + _u(2, self.pvmax_c) + _u(2, self.seq))


@dataclass
class HexCounters:
    """What the HEX side did, for tests."""

    lines_in: int = 0
    replies: int = 0
    frame_errors: int = 0
    ignored: int = 0  # lines dropped by the ignore-HEX fault
    flooded: int = 0  # lines beyond MAX_INPUT_LINES in one read, dropped
    async_lines: int = 0
    dropped_sets: int = 0  # Sets lost to the drop_sets fault


class HexDevice:
    """One device's HEX responder: register map, settings, history, faults."""

    def __init__(self, pid: int, firmware: int, serial: str,
                 charger: Charger | None = None) -> None:
        family = family_of(pid)
        if family is None:
            raise ValueError(f"no HEX register map for product id 0x{pid:04X}")
        self.family, self.pid, self.firmware, self.serial = family, pid, firmware, serial
        self.charger = charger
        self.ignore_hex = False  # fault: the device ignores HEX (RX used for remote on/off)
        self.drop_sets = False  # fault: Sets are lost on the line (no reply, not stored)
        self.link_ttl_s = LINK_REGISTER_TTL_S  # when 0x2015 falls back (tests may shorten it)
        self.sets: list[tuple[int, bytes]] = []  # every Set stored, in order (tests read it)
        self.expired: list[tuple[int, float]] = []  # (register, when) volatile fall-backs
        self.settings: dict[int, bytes] = dict(
            MPPT_SETTINGS if family == MPPT else MONITOR_SETTINGS)
        if family == BMV:
            self.settings.update(BMV_ONLY_SETTINGS)
        if charger is not None:
            rating = _u(2, round(charger.spec.max_current_a * 10))
            # 0xEDDF is the rating (read-only: a Set gets flags 02); 0xEDF0 starts at it.
            self.settings.update({0xEDDF: rating, 0xEDF0: rating})
        self.nv_writes: Counter[int] = Counter()
        self.counters = HexCounters()
        self.fields: dict[str, str] = {}
        self.archive: deque[DayStats] = deque(maxlen=HISTORY_DAYS - 1)
        self.today: DayStats | None = None
        self._set_at: dict[int, float] = {}
        self._splitter = h.LineSplitter()
        self._replies: list[bytes] = []
        self._last_hex_at: float | None = None
        self._last_burst = float("-inf")
        self._burst_due = False
        self._pushed_yield: int | None = None
        self._last_push = float("-inf")
        self._started_at: float | None = None

    # ------------------------------------------------------------ identity
    @property
    def version_word(self) -> int:
        """Return the ping/app-version word: 0x4000 | firmware digits read as hex (GV)."""
        return 0x4000 | (int(str(self.firmware), 16) & 0x0FFF)

    @property
    def pauses_text(self) -> bool:
        """Return True for MPPT firmware <= 1.52, whose TEXT stops during HEX (T1)."""
        return self.family == MPPT and self.firmware <= LAST_PAUSING_FW

    def text_paused(self, now: float) -> bool:
        """Return True while TEXT must pause (old firmware, HEX traffic recent)."""
        return (self.pauses_text and self._last_hex_at is not None
                and now - self._last_hex_at < TEXT_PAUSE_S)

    # --------------------------------------------------------------- input
    def receive(self, data: bytes, now: float) -> None:
        """Take bytes the host wrote; queue the replies (written by :meth:`output`)."""
        items = self._splitter.feed(data)
        self.counters.flooded += max(len(items) - MAX_INPUT_LINES, 0)
        for item in items[:MAX_INPUT_LINES]:
            self.counters.lines_in += 1
            if self.ignore_hex:
                self.counters.ignored += 1
                continue
            self._last_hex_at = now
            self._burst_due = True
            reply = self._answer(item, now)
            if reply is not None:
                self._replies.append(reply)

    def _answer(self, item: bytes | h.Malformed, now: float) -> bytes | None:
        """Return the reply line to one request line (None: no reply)."""
        request = h.parse_request(item) if isinstance(item, bytes) else item
        if isinstance(request, h.Malformed):
            if request.reason.startswith("unknown command"):
                return h.encode(h.UNKNOWN_COMMAND)
            self.counters.frame_errors += 1
            return h.FRAME_ERROR_LINE
        if isinstance(request, h.Command):
            return self._command(request.code)
        if request.code == h.GET:
            return self._get(request.register, now)
        return self._set(request.register, request.value, now)

    def _command(self, code: int) -> bytes | None:
        """Answer ping, app version, product id; boot and restart get no answer."""
        if code == h.PING:
            return h.encode_word(h.PING_REPLY, self.version_word)
        if code == h.APP_VERSION:
            return h.encode_word(h.DONE, self.version_word)
        if code == h.PRODUCT_ID:
            return h.encode_word(h.DONE, self.pid)
        return None

    def _get(self, register: int, now: float) -> bytes:
        """Answer a Get: the value, or flags 01 without a value."""
        value = self.value(register, now)
        if value is None:
            return h.encode_register_reply(h.GET_REPLY, register, h.FLAG_UNKNOWN_ID)
        return h.encode_register_reply(h.GET_REPLY, register, h.FLAG_OK, value)

    def _set(self, register: int, value: bytes, now: float) -> bytes | None:
        """Answer a Set: store and echo, or flags 01 / 02 / 04."""
        spec = REGISTER_BY_ID.get(register)
        if spec is None or self.value(register, now) is None:
            return h.encode_register_reply(h.SET_REPLY, register, h.FLAG_UNKNOWN_ID)
        if not spec.writable or register not in self.settings:
            return h.encode_register_reply(h.SET_REPLY, register, h.FLAG_NOT_SUPPORTED)
        if len(value) != spec.size:
            return h.encode_register_reply(h.SET_REPLY, register, h.FLAG_PARAMETER_ERROR)
        if self.drop_sets:
            self.counters.dropped_sets += 1
            return None  # fault: the Set is lost (no reply, nothing stored)
        self.settings[register] = value
        if register in VOLATILE:
            self._set_at[register] = now
        if spec.nv:
            self.nv_writes[register] += 1
        self._apply(register, value)
        self.sets.append((register, value))
        return h.encode_register_reply(h.SET_REPLY, register, h.FLAG_OK, value)

    def _apply(self, register: int, value: bytes) -> None:
        """Make a stored setting act on the simulated charger (issue 23's effects)."""
        charger = self.charger
        if charger is None:
            return
        raw = int.from_bytes(value, "little")
        if register == 0xEDAB:
            charger.load_mode = raw & 0x0F  # bits 0-3 mode (VR)
        elif register == 0x0200:
            charger.mode_on = raw != 4 and raw != 0  # MPPT: 1 on, 4 (or 0) off (HEX.md §3.2)
        elif register == 0x2015:
            charger.current_limit_a = None if raw == 0xFFFF else raw / 10.0

    # ------------------------------------------------------------ registers
    def value(self, register: int, now: float) -> bytes | None:
        """Return a register's wire value now, or None when this device has no such register."""
        if register in VOLATILE and now - self._set_at.get(register, now) > self.link_ttl_s:
            self.settings[register] = _u(2, 0xFFFF)  # expired: back to "not available"
            self._set_at.pop(register, None)
            self.expired.append((register, now))
            self._apply(register, self.settings[register])
        if register in self.settings:
            return self.settings[register]
        identity = self._identity(register, now)
        if identity is not None:
            return identity
        live = (MPPT_LIVE if self.family == MPPT else MONITOR_LIVE).get(register)
        if live is not None:
            return live(self.fields)
        if self.family == MPPT:
            return self._history(register)
        return None

    def _identity(self, register: int, now: float) -> bytes | None:
        """Return an identity register (0x0100 .. 0x0140, uptime)."""
        model = MODEL_NAMES.get(self.pid, "Simulated device").encode("ascii")
        capabilities = (1 << 0 | 1 << 2) if self.family == MPPT else (
            1 << 17 if self.family == BMV else 0)
        table: dict[int, bytes] = {
            0x0100: b"\x00" + _u(2, self.pid) + b"\xff",
            0x0102: _u(3, (int(str(self.firmware), 16) << 8) | 0xFF),
            0x010A: self.serial.encode("ascii") + b"\x00" * 4,
            0x010B: model + b"\x00",
            0x0140: _u(4, capabilities),
        }
        if self.family != MPPT:
            started = self._started_at if self._started_at is not None else now
            table[0x0120] = _u(4, int(now - started))
        return table.get(register)

    # -------------------------------------------------------------- history
    def seed_history(self, days: int, seed: int = 0) -> None:
        """Give a charger without a past ``days`` past days, before start (adds them to H19).

        Nothing happens when the physics already holds a past (H19 above today's
        yield): the device then shows that past (:meth:`_infer_past`).
        """
        charger = self.charger
        if charger is None or days <= 0 or self.archive:
            return
        yields = charger.yields
        if yields.total_wh - yields.today_wh >= 10.0:
            return
        rng = random.Random(seed)
        peak = charger.spec.panel_peak_w
        for n in range(min(days, HISTORY_DAYS - 1)):
            wh = 10 * round(peak * rng.uniform(1.5, 5.5) / 10)  # whole 0.01 kWh
            self.archive.append(self._past_day(yields.day_seq + n, wh // 10,
                                               round(peak * rng.uniform(0.5, 0.95)), rng))
            yields.total_wh += wh
        last = self.archive[-1]
        yields.yesterday_wh, yields.max_yesterday_w = last.yield_c * 10.0, float(last.max_power_w)
        yields.day_seq = (last.seq + 1) % 365

    def _past_day(self, seq: int, yield_c: int, max_power_w: int,
                  rng: random.Random) -> DayStats:
        """Return a plausible past day with this yield (voltages, currents, charge phases)."""
        spec = self.charger.spec if self.charger is not None else None
        rating_a = spec.max_current_a if spec is not None else 15.0
        voc_v = spec.panel_voc_v if spec is not None else 40.0
        day = DayStats(seq=seq % 365, yield_c=yield_c, max_power_w=max_power_w,
                       vmax_c=rng.randint(1420, 1445), vmin_c=rng.randint(1190, 1260),
                       imax_d=round(rating_a * rng.uniform(3, 9)),
                       pvmax_c=round(voc_v * rng.uniform(90, 99)))
        day.seconds_by_cs.update({3: rng.randint(120, 300) * 60, 4: rng.randint(30, 180) * 60,
                                  5: rng.randint(60, 240) * 60})
        return day

    def _infer_past(self) -> None:
        """Show the past the physics started with (H19 above today): yesterday = H22/H23,
        older days like yesterday while H19's remainder lasts (the total covers more days
        than the 30 a device keeps)."""
        f = self.fields
        past = _num(f, "H19") - _num(f, "H20")
        seq, rng = _num(f, "HSDS"), random.Random(self.serial)
        days: list[DayStats] = []
        while past > 0 and len(days) < HISTORY_DAYS - 1:
            day_c = min(_num(f, "H22"), past)
            if day_c <= 0:
                break
            days.append(self._past_day(seq - 1 - len(days), day_c, _num(f, "H23"), rng))
            past -= day_c
        self.archive.extend(reversed(days))

    def observe(self, records: list[Record], now: float) -> None:
        """Take a TEXT block the device wrote: live values and today's history."""
        if self._started_at is None:
            self._started_at = now
        self.fields.update(records)
        for register in VOLATILE & self._set_at.keys():
            self.value(register, now)  # a lapsed link register falls back now, not when read
        if self.family != MPPT or "HSDS" not in dict(records):
            return
        seq = _num(self.fields, "HSDS")
        if self.today is None and not self.archive:
            self._infer_past()
        if self.today is not None and self.today.seq != seq:
            self.today.yield_c = _num(self.fields, "H22")  # the day as the device closed it
            self.today.max_power_w = _num(self.fields, "H23")
            self.archive.append(self.today)
            self.today = None
        if self.today is None:
            self.today = DayStats(seq=seq)
        self._track_today(self.today)

    def _track_today(self, day: DayStats) -> None:
        """Update today's record from the block just written (one block = one second)."""
        f = self.fields
        day.yield_c, day.max_power_w = _num(f, "H20"), _num(f, "H21")
        v_c = _num(f, "V") // 10
        day.vmax_c, day.vmin_c = max(day.vmax_c, v_c), min(day.vmin_c, v_c)
        day.imax_d = max(day.imax_d, max(_num(f, "I"), 0) // 100)
        day.pvmax_c = max(day.pvmax_c, _num(f, "VPV") // 10)
        day.seconds_by_cs[_num(f, "CS")] += 1

    def days(self) -> list[DayStats]:
        """Return today then the archived days, newest first (at most 31)."""
        out = [self.today] if self.today is not None else []
        return (out + list(reversed(self.archive)))[:HISTORY_DAYS]

    def _history(self, register: int) -> bytes | None:
        """Return 0x104F or a day record; a day not available -> None (flags 01, VR)."""
        days = self.days()
        if register == HISTORY_TOTAL:
            total = _num(self.fields, "H19")
            pv = max((d.pvmax_c for d in days), default=0)
            vmax = max((d.vmax_c for d in days), default=0)
            vmin = min((d.vmin_c for d in days), default=0xFFFF)
            return (b"\x01\x00" + b"\x00" * 4 + _u(4, total) + _u(4, total) + _u(2, pv)
                    + _u(2, vmax) + bytes([len(days)]) + _u(2, vmin) + b"\xff" * 13)
        index = register - HISTORY_DAY0
        if 0 <= index < len(days):
            return days[index].record()
        return None

    # -------------------------------------------------------------- output
    def output(self, now: float) -> bytes:
        """Return what to write in this gap: an async burst, then the queued replies."""
        lines: list[bytes] = []
        if self._burst_due and now - self._last_burst >= BURST_EVERY_S:
            self._last_burst = now
            lines += [h.encode_register_reply(h.ASYNC, reg, 0, value) for reg in
                      BURST[self.family] if (value := self.value(reg, now)) is not None]
        self._burst_due = False
        lines += self._push_today(now)
        self.counters.async_lines += len(lines)
        self.counters.replies += len(self._replies)
        lines += self._replies
        self._replies = []
        return b"".join(lines)

    def _push_today(self, now: float) -> list[bytes]:
        """Push today's record when its yield changed (only once a host has spoken HEX)."""
        if (self._last_hex_at is None or self.today is None
                or self.today.yield_c == self._pushed_yield
                or now - self._last_push < TODAY_PUSH_EVERY_S):
            return []
        self._pushed_yield, self._last_push = self.today.yield_c, now
        return [h.encode_register_reply(h.ASYNC, HISTORY_DAY0, 0, self.today.record())]


def for_profile(profile: Profile, world: World, name: str, serial: str) -> HexDevice | None:
    """Return the HEX side of a simulated device (None for a product without a map)."""
    pid = int(profile.static["PID"], 16)
    if family_of(pid) is None:
        return None
    fw_text = profile.static.get("FW") or profile.static.get("FWE", "000FF")[:-2]
    charger = world.chargers.get(name) if profile.charger is not None else None
    return HexDevice(pid, int(fw_text), serial, charger)


def serve(device: Device, records: list[Record] | None = None) -> None:
    """Between two TEXT blocks: read what the host wrote, write the replies (writer thread)."""
    hexdev = device.hex
    if hexdev is None or not device.port.is_open:
        return
    now = device.clock.now()
    if records is not None:
        hexdev.observe(records, now)
    hexdev.receive(device.port.take_input(), now)
    data = hexdev.output(now)
    if data:
        device.port.write(data)


def text_paused(device: Device) -> bool:
    """Return True when the device must skip this TEXT block (FW <= 1.52 during HEX)."""
    return device.hex is not None and device.hex.text_paused(device.clock.now())
