"""A small, coherent energy-system model: one battery, solar chargers and a house load.

Everything steps by *device* time, and every value moves the way a real device moves
it (docs/simulator.md, "The model"):

* The battery is a one-RC Thevenin equivalent circuit, the usual lead-acid model
  (e.g. Ceraolo, "New dynamical models of lead-acid batteries", IEEE Trans. Power
  Systems 15(4), 2000): terminal voltage = open-circuit voltage(SOC, T) + I x R0 +
  a polarisation voltage that follows I x Rp with a time constant. So the voltage
  moves continuously with current and charge; only a current step moves it at once,
  by R0 x the step. ``World.max_voltage_step`` is that bound, and the tests hold
  the decoded frames to it.
* A charger is Off at night, starts when the panel's open-circuit voltage is 5 V above
  the battery's and stops below 1 V above it (hysteresis), charges Bulk -> Absorption
  (at the absorption voltage, for a time set by the battery voltage at the day's
  start, or until the tail current) -> Float, each step once a day, as the Victron
  MPPT manuals describe (sources at the constants below).
* A charger's day is its own: it begins at the first light after at least an hour
  without charging. Then yield today (H20) and max power today (H21) move to
  yesterday (H22, H23) and the day sequence number (HSDS) counts up: never at
  midnight. The counters start consistent with the sun: a model started at noon
  already holds that morning's yield (``Yields.preroll``).
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

# Charger state codes (CS) used by the model (PROTOCOL.md's CS table).
CS_OFF, CS_BULK, CS_ABSORPTION, CS_FLOAT = 0, 3, 4, 5
# MPPT tracker codes.
MPPT_OFF, MPPT_LIMITED, MPPT_TRACKING = 0, 1, 2
OR_NO_INPUT_POWER = 0x00000001
OR_DEVICE_MODE = 0x00000004  # "switched off (device mode register)" (PROTOCOL.md OR bits)

# Start and stop of a charger by panel voltage: it starts when the PV voltage is 5 V
# above the battery voltage and, once running, stops when it falls below battery + 1 V
# (Victron BlueSolar MPPT 150/45..150/100 manual, 3.3: "PV voltage must exceed Vbat +
# 5V for the controller to start. Thereafter minimum PV voltage is Vbat + 1V").
START_MARGIN_V, STOP_MARGIN_V = 5.0, 1.0
# A new charge cycle, and a new history day, after an hour without charging: "The
# charging algorithm will reset if charging has stopped for an hour" (Victron
# SmartSolar MPPT 75/10..100/20 manual, "Variations to expected behaviour" 2), at the
# first light: "The charge controller starts a new charge cycle every morning, when the
# sun starts shining" (same manual, 3.8). Some owners see the reset near an estimated
# midnight instead (hoylabs/OpenDTU-OnBattery#188, #1703); either way it is at night.
NEW_DAY_DARK_S = 3600.0
# Absorption time by the battery voltage at the day's start, 12 V lead-acid default
# (manual 3.8: < 11.9 V 6 h, < 12.2 V 4 h, < 12.6 V 2 h, else 1 h): (below V, hours).
ABSORPTION_HOURS: tuple[tuple[float, float], ...] = ((11.9, 6.0), (12.2, 4.0), (12.6, 2.0))
ABSORPTION_HOURS_DEFAULT = 1.0
# Absorption also ends below this tail current (SmartSolar manual 3.8: 2 A; the battery
# terminals' current on models with a load output, the output's on larger ones).
TAIL_CURRENT_A = 2.0
AT_SET_POINT_V = 0.05  # the absorption timer runs while the voltage is this close to it

# The battery's polarisation (one RC pair): time constant, resistance on discharge,
# and on charge a resistance that rises steeply toward full (the charge acceptance of
# lead-acid falls as it fills); the polarisation voltage is bounded by the gassing
# overvoltage (about 0.3 V per cell above the open-circuit voltage at 2.4 V/cell).
TAU_POLARISATION_S = 600.0
RP_DISCHARGE_OHM = 0.005
RP_CHARGE_OHM = (0.003, 0.013)  # a + b / (1 - SOC + 1e-4)
MAX_POLARISATION_V = 2.0

# House load in amps per hour of the day (a 12 V off-grid cabin); interpolated between
# hours, with a slow random wander of a few per cent (appliances, a fridge).
LOAD_PROFILE_A: tuple[float, ...] = (
    1.0, 0.9, 0.9, 0.9, 0.9, 1.0, 2.0, 3.5, 3.0, 2.0, 1.8, 1.8,
    2.5, 1.8, 1.6, 1.6, 1.8, 2.5, 4.5, 6.0, 5.5, 4.0, 2.0, 1.2,
)
LOAD_WANDER = 0.05  # +-5 % at most
LOAD_WANDER_TAU_S = 600.0
# Night lights on a charger's load output, amps per hour of the day.
LOAD_OUTPUT_A: tuple[float, ...] = tuple(0.6 if h >= 19 or h < 1 else 0.0 for h in range(24))
LVD_OFF_SOC, LVD_ON_SOC = 0.05, 0.20  # low-voltage disconnect hysteresis of the house load
# A charger already in service when the model starts: this many full days of yield in H19.
DAYS_IN_SERVICE = 120
NOMINAL_V = 13.0  # battery voltage for the yield estimate of the days before the start
SUNRISE_H, SUNSET_H = 6.0, 18.0  # the model's sun, local hours
SELF_CONSUMPTION_A = 0.01  # a charger that is off draws about 10 mA from the battery


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

    @classmethod
    def preroll(cls, spec: ChargerSpec, hour: float) -> Yields:
        """Return the counters of a charger in service, at local ``hour`` of its day.

        Its day began at the last first light (06:00 of the model's sun): from then to
        ``hour`` (or to dusk) it harvested a clear sky's power, so a model started at
        noon holds its morning; yesterday was a whole clear day; H19 holds
        DAYS_IN_SERVICE such days more.
        """
        # Before first light the day that began yesterday goes on: it holds a whole day.
        today_wh, today_w = _clear_sky_yield(spec, 0.0, hour if hour >= SUNRISE_H else 24.0)
        day_wh, day_w = _clear_sky_yield(spec, 0.0, 24.0)
        return cls(total_wh=DAYS_IN_SERVICE * day_wh + today_wh, today_wh=today_wh,
                   max_today_w=today_w, yesterday_wh=day_wh, max_yesterday_w=day_w,
                   day_seq=DAYS_IN_SERVICE % 365)


def _clear_sky_yield(spec: ChargerSpec, start_h: float, end_h: float) -> tuple[float, float]:
    """Return (Wh, peak W) a charger harvests from a clear sky between two local hours."""
    step_h = 1.0 / 60.0
    energy, peak = 0.0, 0.0
    hour = start_h
    while hour < end_h:
        power = min(spec.panel_peak_w * irradiance(hour + step_h / 2),
                    spec.max_current_a * NOMINAL_V / spec.efficiency)
        energy += power * min(step_h, end_h - hour)
        peak = max(peak, power)
        hour += step_h
    return energy, peak


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
    dark_s: float = 0.0  # seconds without charging (a new day after NEW_DAY_DARK_S)
    absorption_left_s: float = ABSORPTION_HOURS_DEFAULT * 3600.0
    limit_a: float = 0.0  # the most it could deliver this step (panel, rating)
    # What a host set over HEX (issue 23; hw_sim/hex_device.py applies the Sets):
    load_mode: int = 1  # 0xEDAB: 0 off, 1 auto (the low-voltage logic below), 4 on
    mode_on: bool = True  # 0x0200: 1 on, 4 off (OR bit 0x004 while off by it)
    current_limit_a: float | None = None  # 0x2015 while it holds (None: not set / expired)

    @property
    def running(self) -> bool:
        """Return True while the charger is on (any state but Off)."""
        return self.cs != CS_OFF


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
    if not SUNRISE_H < hour < SUNSET_H:
        return 0.0
    sun = math.sin(math.pi * (hour - SUNRISE_H) / (SUNSET_H - SUNRISE_H))
    return sun * math.sqrt(sun)  # sin^1.5: a narrower, more realistic bell


def open_circuit_v(soc: float, temp_c: float) -> float:
    """Return resting voltage of a 12 V lead-acid battery at ``soc`` (0..1)."""
    return 11.8 + 0.95 * soc + 0.002 * (temp_c - 25.0)


def panel_voc(spec: ChargerSpec, sun: float) -> float:
    """Return the panel's open-circuit voltage at relative irradiance ``sun`` (0..1).

    Voc grows with the logarithm of irradiance (the diode equation; about 6 % of Voc per
    e-fold): a panel reads most of its Voc from the first light, and nothing at night.
    """
    if sun <= 0.0:
        return 0.0
    return max(0.0, spec.panel_voc_v * (1.0 + 0.06 * math.log(sun)))


def absorption_seconds(start_v: float) -> float:
    """Return the absorption time for the battery voltage at the day's start (manual 3.8)."""
    hours = next((h for below, h in ABSORPTION_HOURS if start_v < below),
                 ABSORPTION_HOURS_DEFAULT)
    return hours * 3600.0


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
        self.utc_offset_s = local_offset(start) if utc_offset_s is None else utc_offset_s
        self._rng = random.Random(seed)
        self._cloud = 1.0
        self._wander = 0.0
        self._alarm_state = (False, False)
        self._lock = threading.RLock()
        self.polarisation_v = 0.0
        self.regulated = False
        self.temp_c = self._temperature(self.hour())
        self.voltage_v = open_circuit_v(self.soc, self.temp_c)
        self.chargers = {name: self._new_charger(name, spec)
                         for name, spec in (chargers or {}).items()}
        self._settle()

    def _settle(self) -> None:
        """Start with the currents of this moment and a polarisation that has settled to
        them (not a battery at rest under a noon sun); no time passes, nothing is counted."""
        hour = self.hour()
        house_a = self._house_load(hour, 0.0)
        for charger in self.chargers.values():
            self._update_load_output(charger, hour)
            self._switch(charger, irradiance(hour), 0.0)
        self.load_a = house_a + sum(c.load_a for c in self.chargers.values())
        self._solve(10 * TAU_POLARISATION_S)

    def _new_charger(self, name: str, spec: ChargerSpec) -> Charger:
        """Return a charger in service: counters of its day so far, on if the sun is up."""
        hour = self.hour()
        charger = Charger(name, spec, yields=Yields.preroll(spec, hour))
        charger.absorption_left_s = absorption_seconds(self.voltage_v)
        if panel_voc(spec, irradiance(hour)) > self.voltage_v + START_MARGIN_V:
            charger.cs = CS_BULK
        elif hour >= SUNSET_H or hour < SUNRISE_H:  # dark since dusk
            charger.dark_s = ((hour - SUNSET_H) % 24.0) * 3600.0
        return charger

    # -- time ---------------------------------------------------------------

    def hour(self, t: float | None = None) -> float:
        """Return the local hour of day (0..24) at ``t`` (default: model time)."""
        t = self.time if t is None else t
        return ((t + self.utc_offset_s) % DAY_S) / 3600.0

    def advance(self, to: float) -> None:
        """Step the model forward to epoch ``to``; earlier times are ignored."""
        with self._lock:
            while self.time < to:
                end = min(to, self.time + MAX_STEP_S)
                self._step(end - self.time)
                self.time = end

    def max_voltage_step(self, dt: float) -> float:
        """Return the largest battery-voltage change the model allows in ``dt`` seconds.

        Only a current step moves the voltage at once, by R0 x the step: the largest is
        every charger's rated current plus the whole load switching (a low-voltage
        disconnect, the end of absorption). The polarisation moves at most its whole
        range times (1 - e^(-dt/tau)); the open-circuit voltage 0.95 V per full charge.
        """
        p = self.params
        amps = (sum(c.spec.max_current_a for c in self.chargers.values())
                + max(LOAD_PROFILE_A) * self.load_scale * (1 + LOAD_WANDER)
                + max(LOAD_OUTPUT_A) * len(self.chargers))
        relax = 2 * MAX_POLARISATION_V * (1.0 - math.exp(-dt / TAU_POLARISATION_S))
        ocv = 0.95 * amps * dt / (p.capacity_ah * 3600.0)
        # The set points follow temperature (-18 mV/degC), which moves <= 1.6 degC/h.
        drift = abs(p.temp_coeff_v) * 1.6 * dt / 3600.0
        return p.internal_r * amps + relax + ocv + drift

    # -- one step -----------------------------------------------------------

    @staticmethod
    def _temperature(hour: float) -> float:
        return 20.0 + 6.0 * math.sin(math.pi * (hour - 9.0) / 12.0)

    def _step(self, dt: float) -> None:
        hour = self.hour(self.time + dt / 2)
        self._cloud = min(1.0, max(0.55, self._cloud + self._rng.gauss(0.0, 0.01 * math.sqrt(dt))))
        self.temp_c = self._temperature(hour)
        house_a = self._house_load(hour, dt)
        for charger in self.chargers.values():
            self._update_load_output(charger, hour)
        self.load_a = house_a + sum(c.load_a for c in self.chargers.values())
        sun = irradiance(hour) * self._cloud
        for charger in self.chargers.values():
            self._switch(charger, sun, dt)
        self._solve(dt)
        self._integrate(dt)
        self._advance_states(dt)
        self._update_history(dt)
        for charger in self.chargers.values():
            charger.yields.add(charger.ppv_w, dt)

    def _house_load(self, hour: float, dt: float) -> float:
        if self.soc < LVD_OFF_SOC and not self.lvd:
            self.lvd = True
            self.history.full_discharges += 1
        elif self.soc > LVD_ON_SOC:
            self.lvd = False
        # A slow random wander (Ornstein-Uhlenbeck), not a new draw each step: real loads
        # do not jump by 5 % every second.
        pull = math.exp(-dt / LOAD_WANDER_TAU_S)
        self._wander = self._wander * pull + self._rng.gauss(0.0, 0.01 * math.sqrt(dt / 60.0))
        self._wander = min(LOAD_WANDER, max(-LOAD_WANDER, self._wander))
        here, frac = int(hour) % 24, hour % 1.0
        base = LOAD_PROFILE_A[here] * (1 - frac) + LOAD_PROFILE_A[(here + 1) % 24] * frac
        return 0.0 if self.lvd else base * self.load_scale * (1.0 + self._wander)

    def _update_load_output(self, charger: Charger, hour: float) -> None:
        if not charger.spec.has_load_output:
            charger.load_on, charger.load_a = False, 0.0
            return
        if charger.load_mode in (0, 4):  # forced off / on by 0xEDAB
            charger.load_on = charger.load_mode == 4
            charger.load_a = LOAD_OUTPUT_A[int(hour) % 24] if charger.load_on else 0.0
            return
        # Load output's own low-voltage disconnect, with hysteresis.
        charger.load_on = self.voltage_v > 12.5 or (charger.load_on and self.voltage_v > 11.5)
        charger.load_a = LOAD_OUTPUT_A[int(hour) % 24] if charger.load_on else 0.0

    def _switch(self, charger: Charger, sun: float, dt: float) -> None:
        """Start or stop a charger by its panel voltage (hysteresis); a new day at first light."""
        voc = panel_voc(charger.spec, sun)
        volts = max(self.voltage_v, 11.0)
        charger.limit_a = min(charger.spec.max_current_a,
                              charger.spec.panel_peak_w * sun * charger.spec.efficiency / volts)
        if charger.current_limit_a is not None:  # 0x2015: effective = min(0x2015, 0xEDF0)
            charger.limit_a = min(charger.limit_a, charger.current_limit_a)
        if not charger.mode_on:  # switched off by its device mode register (0x0200 = 4)
            charger.cs, charger.mppt, charger.off_reason = CS_OFF, MPPT_OFF, OR_DEVICE_MODE
            charger.current_a, charger.ppv_w = -SELF_CONSUMPTION_A, 0.0
            charger.vpv_v = max(voc, 0.01)
            return
        if charger.off_reason == OR_DEVICE_MODE:  # switched on again: off for want of sun
            charger.off_reason = OR_NO_INPUT_POWER
        if not charger.running:
            charger.vpv_v = max(voc, 0.01)
            if voc <= volts + START_MARGIN_V:
                charger.dark_s += dt
                return
            if charger.dark_s >= NEW_DAY_DARK_S:  # first light after the night: a new day
                charger.yields.roll_day()
                charger.absorption_left_s = absorption_seconds(self.voltage_v)
            charger.cs, charger.dark_s, charger.off_reason = CS_BULK, 0.0, 0
        elif voc < volts + STOP_MARGIN_V:
            charger.cs, charger.mppt, charger.off_reason = CS_OFF, MPPT_OFF, OR_NO_INPUT_POWER
            charger.current_a, charger.ppv_w = -SELF_CONSUMPTION_A, 0.0
            charger.vpv_v = max(voc, 0.01)
            charger.dark_s = dt

    def _set_point(self, charger: Charger) -> float:
        """Return the voltage a running charger holds: absorption (also the cap of bulk)
        or float, temperature-compensated."""
        p = self.params
        base = p.float_v if charger.cs == CS_FLOAT else p.absorption_v
        return base + p.temp_coeff_v * (self.temp_c - 25.0)

    def _battery_v(self, amps: float, dt: float) -> tuple[float, float]:
        """Return (terminal voltage, polarisation) after ``dt`` s at battery current ``amps``.

        Exact for a constant current over the step: the RC pair relaxes toward
        I x Rp with e^(-dt/tau), so any step length is stable.
        """
        decay = math.exp(-dt / TAU_POLARISATION_S)
        target = max(-MAX_POLARISATION_V, min(MAX_POLARISATION_V, amps * self._rp(amps)))
        pol = target + (self.polarisation_v - target) * decay
        return open_circuit_v(self.soc, self.temp_c) + amps * self.params.internal_r + pol, pol

    def _rp(self, amps: float) -> float:
        if amps <= 0:
            return RP_DISCHARGE_OHM
        a, b = RP_CHARGE_OHM
        return a + b / (1.0 - self.soc + 1e-4)

    def _solve(self, dt: float) -> None:
        """Set the chargers' currents and the battery's current and voltage for this step.

        Every running charger gives what it can (MPPT tracking), unless that would lift
        the battery above the lowest set point of the running chargers: then they give
        just the current that holds it there (voltage or current limited), shared by
        their ratings. The battery voltage follows from the current (``_battery_v``).
        """
        running = [c for c in self.chargers.values() if c.running]
        # What the battery feeds besides the running chargers' output: the loads, and
        # each charger that is off draws its own 10 mA (its I reads -0.01 A at night).
        draw = self.load_a + SELF_CONSUMPTION_A * (len(self.chargers) - len(running))
        most = sum(c.limit_a for c in running)
        amps = most - draw
        volts, pol = self._battery_v(amps, dt)
        regulated = False
        if running:
            cap = min(self._set_point(c) for c in running)
            if volts > cap:
                amps = max(-draw, min(self._current_for(cap, dt), most - draw))
                volts, pol = self._battery_v(amps, dt)
                regulated = True
        self.current_a, self.voltage_v, self.polarisation_v = amps, volts, pol
        self.regulated = regulated
        given = amps + draw
        for charger in running:
            share = given * (charger.limit_a / most) if most > 0 else 0.0
            charger.current_a = max(0.0, share)
            charger.ppv_w = charger.current_a * volts / charger.spec.efficiency
            charger.mppt = MPPT_LIMITED if regulated else MPPT_TRACKING
            # Off the maximum power point the panel voltage rises toward open circuit.
            spare = 1.0 - charger.current_a / charger.limit_a if charger.limit_a > 0 else 1.0
            charger.vpv_v = charger.spec.panel_voc_v * (0.80 + 0.15 * min(1.0, spare))

    def _current_for(self, volts: float, dt: float) -> float:
        """Return the battery current that puts the terminal voltage at ``volts`` after dt."""
        decay = math.exp(-dt / TAU_POLARISATION_S)
        free = volts - open_circuit_v(self.soc, self.temp_c) - self.polarisation_v * decay
        r0 = self.params.internal_r
        amps = free / (r0 + self._rp(free) * (1.0 - decay))
        if abs(amps * self._rp(amps)) > MAX_POLARISATION_V:  # past the gassing bound
            sign = 1.0 if amps > 0 else -1.0
            amps = (free - sign * MAX_POLARISATION_V * (1.0 - decay)) / r0
        return amps

    def _advance_states(self, dt: float) -> None:
        """Bulk -> Absorption at the set point; Absorption -> Float after its time or at
        the tail current. Each step happens once per charge cycle: no flapping."""
        for charger in self.chargers.values():
            # At the set point: its own, or the lower one another charger holds.
            at_abs = self.regulated or self.voltage_v >= self._set_point(charger) - AT_SET_POINT_V
            if charger.cs == CS_BULK and at_abs:
                charger.cs = CS_ABSORPTION
            elif charger.cs == CS_ABSORPTION and at_abs:
                charger.absorption_left_s -= dt
                # The battery's current: what parallel chargers see alike, so they go to
                # Float together (the manual's own models measure it at the battery).
                tail = self.current_a
                if charger.absorption_left_s <= 0 or tail < TAIL_CURRENT_A:
                    charger.cs = CS_FLOAT

    def _integrate(self, dt: float) -> None:
        cap_as = self.params.capacity_ah * 3600.0
        self.soc = min(1.0, max(0.0, self.soc + self.current_a * dt / cap_as))

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
