"""A small, coherent energy-system model: one battery, solar chargers and a house load.

Everything steps by *device* time. Values only move the way real devices move them:
cumulative counters never go back, min/max only extend, daily yields roll at midnight.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field

# Integration step cap: long jumps (fast speed, manual clock) are cut into these.
MAX_STEP_S = 10.0
DAY_S = 86400.0

# Charger state codes (CS) used by the model.
CS_OFF, CS_BULK, CS_ABSORPTION, CS_FLOAT = 0, 3, 4, 5
# MPPT tracker codes.
MPPT_OFF, MPPT_LIMITED, MPPT_TRACKING = 0, 1, 2
OR_NO_INPUT_POWER = 0x00000001

# SOC thresholds of the charge algorithm (data, not branches): state -> (leave above, next).
CHARGE_STEPS: dict[int, tuple[float, int]] = {
    CS_BULK: (0.85, CS_ABSORPTION),
    CS_ABSORPTION: (0.995, CS_FLOAT),
}
REBULK_SOC = 0.90  # float drops back to bulk below this (a big evening load in daylight)

# House load in amps per hour of the day (a 12 V off-grid cabin).
LOAD_PROFILE_A: tuple[float, ...] = (
    1.0, 0.9, 0.9, 0.9, 0.9, 1.0, 2.0, 3.5, 3.0, 2.0, 1.8, 1.8,
    2.5, 1.8, 1.6, 1.6, 1.8, 2.5, 4.5, 6.0, 5.5, 4.0, 2.0, 1.2,
)
# Night lights on a charger's load output, amps per hour of the day.
LOAD_OUTPUT_A: tuple[float, ...] = tuple(0.6 if h >= 19 or h < 1 else 0.0 for h in range(24))
LVD_OFF_SOC, LVD_ON_SOC = 0.05, 0.20  # low-voltage disconnect hysteresis of the house load


@dataclass
class BatteryParams:
    """Static battery characteristics (12 V lead-acid style)."""

    capacity_ah: float = 200.0
    internal_r: float = 0.01
    absorption_v: float = 14.4
    float_v: float = 13.8
    charged_v: float = 13.2
    low_alarm_v: float = 11.0
    high_alarm_v: float = 15.0
    temp_coeff_v: float = -0.018  # per degC from 25 degC, on the charge set points


@dataclass
class ChargerSpec:
    """Static charger + panel characteristics."""

    max_current_a: float
    panel_peak_w: float
    panel_voc_v: float
    has_load_output: bool = False
    efficiency: float = 0.97


@dataclass
class Yields:
    """Solar yield counters as a charger reports them (H19..H23, HSDS)."""

    total_wh: float = 0.0
    today_wh: float = 0.0
    max_today_w: float = 0.0
    yesterday_wh: float = 0.0
    max_yesterday_w: float = 0.0
    day_seq: int = 0

    def add(self, power_w: float, dt: float) -> None:
        """Accumulate ``power_w`` for ``dt`` seconds."""
        wh = power_w * dt / 3600.0
        self.total_wh += wh
        self.today_wh += wh
        self.max_today_w = max(self.max_today_w, power_w)

    def roll_day(self) -> None:
        """Move today to yesterday and start a new day (HSDS 0..364)."""
        self.yesterday_wh, self.max_yesterday_w = self.today_wh, self.max_today_w
        self.today_wh, self.max_today_w = 0.0, 0.0
        self.day_seq = (self.day_seq + 1) % 365


@dataclass
class Charger:
    """One solar charger's live state."""

    name: str
    spec: ChargerSpec
    cs: int = CS_OFF
    mppt: int = MPPT_OFF
    off_reason: int = OR_NO_INPUT_POWER
    current_a: float = -0.01
    ppv_w: float = 0.0
    vpv_v: float = 0.01
    load_on: bool = True
    load_a: float = 0.0
    yields: Yields = field(default_factory=Yields)


@dataclass
class History:
    """BMV history counters in wire units (mAh, mV, s, counts, 0.01 kWh as Wh floats)."""

    deepest_mah: float = -149322.0
    last_mah: float = -82854.0
    average_mah: float = -60000.0
    cycles: int = 26
    full_discharges: int = 0
    cumulative_mah: float = -5526294.0
    min_mv: float = 11733.0
    max_mv: float = 14612.0
    since_full_s: float = 3600.0
    syncs: int = 26
    low_alarms: int = 0
    high_alarms: int = 0
    discharged_wh: float = 68430.0
    charged_wh: float = 85270.0


@dataclass(frozen=True)
class BmvReading:
    """What a BMV shows at one instant (wire units)."""

    v_mv: int
    i_ma: int
    p_w: int
    ce_mah: int
    soc_permille: int
    ttg_min: int
    alarm: bool
    relay: bool
    ar: int
    synchronised: bool
    h: dict[str, int]


@dataclass(frozen=True)
class ChargerReading:
    """What a solar charger shows at one instant (wire units)."""

    v_mv: int
    i_ma: int
    vpv_mv: int
    ppv_w: int
    cs: int
    mppt: int
    off_reason: int
    err: int
    load_on: bool
    il_ma: int
    relay: bool
    h19: int
    h20: int
    h21: int
    h22: int
    h23: int
    hsds: int


def local_offset(t: float) -> float:
    """Return the machine's UTC offset in seconds at epoch ``t``."""
    return float(time.localtime(t).tm_gmtoff)


def irradiance(hour: float) -> float:
    """Return clear-sky irradiance 0..1 for a local hour of day (sunrise 6, sunset 18)."""
    if not 6.0 < hour < 18.0:
        return 0.0
    sun = math.sin(math.pi * (hour - 6.0) / 12.0)
    return sun * math.sqrt(sun)  # sin^1.5: a narrower, more realistic bell


def open_circuit_v(soc: float, temp_c: float) -> float:
    """Return resting voltage of a 12 V lead-acid battery at ``soc`` (0..1)."""
    return 11.8 + 0.95 * soc + 0.002 * (temp_c - 25.0)


class World:
    """The shared system: every simulated device reads this one battery."""

    def __init__(
        self,
        start: float,
        chargers: dict[str, ChargerSpec] | None = None,
        *,
        battery: BatteryParams | None = None,
        soc: float = 0.8,
        seed: int | None = 0,
        utc_offset_s: float | None = None,
        load_scale: float = 1.0,
    ) -> None:
        self.time = start
        self.params = battery or BatteryParams()
        self.soc = min(1.0, max(0.0, soc))
        self.temp_c = 20.0
        self.current_a = 0.0
        self.load_a = 0.0
        self.load_scale = load_scale
        self.lvd = False
        self.synchronised = True
        self.synced_full = False
        self.history = History()
        self.chargers = {name: Charger(name, spec) for name, spec in (chargers or {}).items()}
        self.utc_offset_s = local_offset(start) if utc_offset_s is None else utc_offset_s
        self._rng = random.Random(seed)
        self._cloud = 1.0
        self._alarm_state = (False, False)
        self._lock = threading.RLock()
        self.voltage_v = open_circuit_v(self.soc, self.temp_c)

    # -- time ---------------------------------------------------------------

    def hour(self, t: float | None = None) -> float:
        """Return the local hour of day (0..24) at ``t`` (default: model time)."""
        t = self.time if t is None else t
        return ((t + self.utc_offset_s) % DAY_S) / 3600.0

    def advance(self, to: float) -> None:
        """Step the model forward to epoch ``to``; earlier times are ignored."""
        with self._lock:
            while self.time < to:
                midnight = self._next_midnight()
                end = min(to, self.time + MAX_STEP_S, midnight)
                self._step(end - self.time)
                self.time = end
                if end >= midnight:
                    for charger in self.chargers.values():
                        charger.yields.roll_day()

    def _next_midnight(self) -> float:
        local = self.time + self.utc_offset_s
        return (math.floor(local / DAY_S) + 1) * DAY_S - self.utc_offset_s

    # -- one step -----------------------------------------------------------

    def _step(self, dt: float) -> None:
        hour = self.hour(self.time + dt / 2)
        self._cloud = min(1.0, max(0.55, self._cloud + self._rng.gauss(0.0, 0.01 * math.sqrt(dt))))
        self.temp_c = 20.0 + 6.0 * math.sin(math.pi * (hour - 9.0) / 12.0)
        house_a = self._house_load(hour)
        for charger in self.chargers.values():
            self._update_load_output(charger, hour)
        self.load_a = house_a + sum(c.load_a for c in self.chargers.values())
        self._charge(irradiance(hour) * self._cloud, self.load_a)
        self.current_a = sum(c.current_a for c in self.chargers.values()) - self.load_a
        self._integrate(dt)
        self._update_history(dt)
        for charger in self.chargers.values():
            charger.yields.add(charger.ppv_w, dt)

    def _house_load(self, hour: float) -> float:
        if self.soc < LVD_OFF_SOC and not self.lvd:
            self.lvd = True
            self.history.full_discharges += 1
        elif self.soc > LVD_ON_SOC:
            self.lvd = False
        base = LOAD_PROFILE_A[int(hour) % 24] * self.load_scale
        return 0.0 if self.lvd else base * (1.0 + self._rng.uniform(-0.05, 0.05))

    def _update_load_output(self, charger: Charger, hour: float) -> None:
        if not charger.spec.has_load_output:
            charger.load_on, charger.load_a = False, 0.0
            return
        # Load output's own low-voltage disconnect, with hysteresis.
        charger.load_on = self.voltage_v > 12.5 or (charger.load_on and self.voltage_v > 11.5)
        charger.load_a = LOAD_OUTPUT_A[int(hour) % 24] if charger.load_on else 0.0

    def _charge(self, sun: float, load_a: float) -> None:
        """Set each charger's state, output current and panel values for this step."""
        volts = max(self.voltage_v, 11.0)
        available = {n: c.spec.panel_peak_w * sun * c.spec.efficiency / volts
                     for n, c in self.chargers.items()}
        active = {n: min(a, c.spec.max_current_a)
                  for n, c in self.chargers.items() if (a := available[n]) > 0.05}
        acceptance = self._acceptance_a()
        demand = load_a + acceptance
        total_active = sum(active.values()) or 1.0
        for name, charger in self.chargers.items():
            if name not in active:
                self._set_night(charger)
                continue
            cs = self._next_cs(charger.cs)
            limit = active[name]
            share = limit if cs == CS_BULK else min(limit, demand * limit / total_active)
            self._set_day(charger, cs, share, available[name], volts)

    def _acceptance_a(self) -> float:
        """Return the current the battery takes while the voltage is held (tapering)."""
        cap = self.params.capacity_ah
        if self.soc >= 0.995:
            return 0.002 * cap
        return max(0.01 * cap, 0.1 * cap * (1.0 - self.soc) / 0.15)

    def _next_cs(self, cs: int) -> int:
        if cs == CS_OFF:
            cs = CS_BULK
        if cs == CS_FLOAT and self.soc < REBULK_SOC:
            cs = CS_BULK
        while cs in CHARGE_STEPS and self.soc >= CHARGE_STEPS[cs][0]:
            cs = CHARGE_STEPS[cs][1]
        return cs

    @staticmethod
    def _set_night(charger: Charger) -> None:
        charger.cs, charger.mppt, charger.off_reason = CS_OFF, MPPT_OFF, OR_NO_INPUT_POWER
        charger.current_a, charger.ppv_w, charger.vpv_v = -0.01, 0.0, 0.01  # self-consumption

    @staticmethod
    def _set_day(charger: Charger, cs: int, out_a: float, avail_a: float, volts: float) -> None:
        spec = charger.spec
        charger.cs, charger.off_reason = cs, 0
        charger.current_a = max(0.0, out_a)
        charger.ppv_w = charger.current_a * volts / spec.efficiency
        tracking = out_a >= avail_a - 1e-9
        charger.mppt = MPPT_TRACKING if tracking else MPPT_LIMITED
        # Off the maximum power point the panel voltage rises toward open circuit.
        spare = 0.0 if tracking else 1.0 - charger.current_a / max(avail_a, 1e-9)
        charger.vpv_v = spec.panel_voc_v * (0.80 + 0.15 * spare)

    def _integrate(self, dt: float) -> None:
        cap_as = self.params.capacity_ah * 3600.0
        self.soc = min(1.0, max(0.0, self.soc + self.current_a * dt / cap_as))
        self.voltage_v = self._voltage()

    def _voltage(self) -> float:
        """Return terminal voltage: set point while a charger regulates, else OCV + I*R."""
        p = self.params
        comp = p.temp_coeff_v * (self.temp_c - 25.0)
        states = {c.cs for c in self.chargers.values()}
        resting = open_circuit_v(self.soc, self.temp_c) + self.current_a * p.internal_r
        if self.current_a < 0:
            return resting  # chargers cannot even cover the load: nothing is regulated
        if CS_ABSORPTION in states:
            return p.absorption_v + comp
        if CS_FLOAT in states:
            return p.float_v + comp
        if CS_BULK in states:
            # Voltage climbs steeply toward absorption as the battery fills.
            fill = self.soc / CHARGE_STEPS[CS_BULK][0]
            rise = (p.absorption_v - 12.8) * fill**6
            return min(p.absorption_v + comp, resting + rise)
        return resting

    def _update_history(self, dt: float) -> None:
        h = self.history
        v_mv = self.voltage_v * 1000.0
        h.min_mv, h.max_mv = min(h.min_mv, v_mv), max(h.max_mv, v_mv)
        if self.current_a < 0:
            h.cumulative_mah += self.current_a * dt / 3.6
            h.discharged_wh += -self.current_a * self.voltage_v * dt / 3600.0
        else:
            h.charged_wh += self.current_a * self.voltage_v * dt / 3600.0
        h.since_full_s += dt
        ce = self.consumed_mah()
        h.last_mah, h.deepest_mah = min(h.last_mah, ce), min(h.deepest_mah, ce)
        self._count_alarm_edges(v_mv)
        if self.soc < 0.98:
            self.synced_full = False
        if not self.synced_full and self._is_full():
            self._sync_full()

    def _count_alarm_edges(self, v_mv: float) -> None:
        was = self._alarm_state
        now = (v_mv < self.params.low_alarm_v * 1000, v_mv > self.params.high_alarm_v * 1000)
        self.history.low_alarms += int(now[0] and not was[0])
        self.history.high_alarms += int(now[1] and not was[1])
        self._alarm_state = now

    def _is_full(self) -> bool:
        tail_a = 0.04 * self.params.capacity_ah
        return (self.soc >= 0.995 and self.voltage_v >= self.params.charged_v
                and self.current_a < tail_a)

    def _sync_full(self) -> None:
        """Do what a BMV does at a full charge: SOC 100 %, CE 0, H9 reset, counters."""
        h = self.history
        self.soc, self.synced_full, self.synchronised = 1.0, True, True
        if h.last_mah < 0:
            h.cycles += 1
            h.average_mah = (h.average_mah * (h.cycles - 1) + h.last_mah) / h.cycles
        h.syncs += 1
        h.since_full_s = 0.0
        h.last_mah = 0.0

    # -- readings -----------------------------------------------------------

    def consumed_mah(self) -> float:
        """Return consumed charge since full (<= 0 mAh)."""
        return -(1.0 - self.soc) * self.params.capacity_ah * 1000.0

    def bmv_reading(self, at: float | None = None) -> BmvReading:
        """Advance to ``at`` (if given) and return a consistent BMV view."""
        with self._lock:
            if at is not None:
                self.advance(at)
            return self._bmv_reading()

    def _bmv_reading(self) -> BmvReading:
        h = self.history
        v_mv, i_ma = round(self.voltage_v * 1000), round(self.current_a * 1000)
        remaining_ah = self.soc * self.params.capacity_ah
        ttg = -1 if i_ma >= 0 else min(round(remaining_ah / -self.current_a * 60), 14400)
        ar = (1 if v_mv < self.params.low_alarm_v * 1000 else 0) | (
            2 if v_mv > self.params.high_alarm_v * 1000 else 0) | (4 if self.soc < 0.1 else 0)
        hist = {
            "H1": round(h.deepest_mah), "H2": round(h.last_mah), "H3": round(h.average_mah),
            "H4": h.cycles, "H5": h.full_discharges, "H6": round(h.cumulative_mah),
            "H7": round(h.min_mv), "H8": round(h.max_mv), "H9": int(h.since_full_s),
            "H10": h.syncs, "H11": h.low_alarms, "H12": h.high_alarms,
            "H17": int(h.discharged_wh / 10), "H18": int(h.charged_wh / 10),
        }
        return BmvReading(
            v_mv=v_mv, i_ma=i_ma, p_w=round(self.voltage_v * self.current_a),
            ce_mah=round(self.consumed_mah()), soc_permille=round(self.soc * 1000),
            ttg_min=ttg, alarm=ar != 0, relay=False, ar=ar,
            synchronised=self.synchronised, h=hist,
        )

    def charger_reading(self, name: str, at: float | None = None) -> ChargerReading:
        """Advance to ``at`` (if given) and return a consistent view of charger ``name``."""
        with self._lock:
            if at is not None:
                self.advance(at)
            c = self.chargers[name]
            y = c.yields
            return ChargerReading(
                v_mv=round(self.voltage_v * 1000), i_ma=round(c.current_a * 1000),
                vpv_mv=round(c.vpv_v * 1000), ppv_w=round(c.ppv_w), cs=c.cs, mppt=c.mppt,
                off_reason=c.off_reason, err=0, load_on=c.load_on, il_ma=round(c.load_a * 1000),
                relay=False, h19=int(y.total_wh / 10), h20=int(y.today_wh / 10),
                h21=round(y.max_today_w), h22=int(y.yesterday_wh / 10),
                h23=round(y.max_yesterday_w), hsds=y.day_seq,
            )
