"""48 simulated hours, checked from the decoded frames: days as a real MPPT makes them.

The simulator's own device sources (``ProfileSource``: the physics snapshot rendered and
encoded as the pty writer sends it) run from noon for 48 hours of device time, a cycle
every 5 device seconds; the project's decoder reads the bytes back. What a person, or
the report, would see in those frames must hold:

* the battery voltage never steps further than the model's physics allows
  (``World.max_voltage_step``: R0 x the largest current step + the polarisation's
  relaxation), so no 14.4 V / 12.7 V chatter at dusk;
* the charge state goes Off -> Bulk -> Absorption -> Float -> Off at most once a day,
  never back and forth;
* H20 never decreases within a device day, HSDS counts up exactly once per night (at
  the first light, not at midnight), and the daily yields the report computes sum to
  the growth of H19.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hw_sim.devices import PROFILES, make_serial
from hw_sim.physics import CS_ABSORPTION, CS_BULK, CS_FLOAT, CS_OFF, World
from hw_sim.simulator import ProfileSource
from vemonitor.vedirect.days import yield_days

Decoder = pytest.importorskip("vemonitor.vedirect.decoder").Decoder
Block = pytest.importorskip("vemonitor.vedirect.events").Block

DAY = 86400.0
START = 20_000 * DAY + 12 * 3600.0  # a noon (the model's clock is UTC here)
HOURS = 48
STEP = 5.0  # device seconds between two cycles read back
ORDER = (CS_OFF, CS_BULK, CS_ABSORPTION, CS_FLOAT, CS_OFF)


@dataclass(frozen=True)
class Frame:
    """One decoded MPPT block with the device time it was written at."""

    time: float
    fields: dict[str, str]

    def int(self, label: str) -> int:
        return int(self.fields[label])


def _frames(world: World) -> Iterator[Frame]:
    """Yield the MPPT blocks decoded from 48 h of bmv700 + mppt output (every STEP s)."""
    sources = [ProfileSource(PROFILES[kind], world, kind, make_serial(kind))
               for kind in ("bmv700", "mppt")]
    decoder = Decoder()
    t = START
    while t < START + HOURS * 3600:
        for source in sources:
            blocks, _ = source.cycle(t)
            for event in decoder.feed(b"".join(b.data for b in blocks)):
                if isinstance(event, Block) and event.fields.get("PID") == "0xA053":
                    yield Frame(t, dict(event.fields))
        t += STEP


@pytest.fixture(scope="module")
def run() -> tuple[World, list[Frame]]:
    world = World(START, {"mppt": PROFILES["mppt"].charger}, soc=0.8, seed=5,
                  utc_offset_s=0.0)
    frames = list(_frames(world))
    assert len(frames) == HOURS * 3600 / STEP  # every block decoded
    return world, frames


def test_battery_voltage_moves_only_as_the_physics_allows(run: tuple[World, list[Frame]]
                                                          ) -> None:
    world, frames = run
    limit_mv = world.max_voltage_step(STEP) * 1000 + 1  # + the wire's 1 mV rounding
    steps = [abs(b.int("V") - a.int("V")) for a, b in zip(frames, frames[1:])]
    assert max(steps) <= limit_mv, (max(steps), limit_mv)
    assert sum(step > 800 for step in steps) == 0  # the reported dusk chatter: > 0.8 V jumps
    volts = [f.int("V") for f in frames]
    assert min(volts) > 12_000 and max(volts) < 14_600


def test_charge_states_progress_once_a_day_without_flapping(run: tuple[World, list[Frame]]
                                                             ) -> None:
    _, frames = run
    changes = [(b.time, b.int("CS")) for a, b in zip(frames, frames[1:])
               if b.int("CS") != a.int("CS")]
    for _, cs in changes:
        assert cs in ORDER
    # From the first Off on, the states repeat the real order, one step at a time.
    states = [cs for _, cs in changes]
    first_off = states.index(CS_OFF)
    for a, b in zip(states[first_off:], states[first_off + 1:]):
        assert b == ORDER[ORDER.index(a) + 1] or (a == CS_OFF and b == CS_BULK), states
    offs = [t for t, cs in changes if cs == CS_OFF]
    assert len(offs) == 2  # two dusks in 48 h from noon
    for t in offs:  # at dusk, with no power left to harvest
        assert 17.5 * 3600 <= t % DAY <= 18.5 * 3600
    night = [f for f in frames if not 6.5 * 3600 < f.time % DAY < 17.5 * 3600]
    assert all(f.int("PPV") == 0 for f in night if f.int("CS") == CS_OFF)
    assert all(f.int("PPV") == 0 for f in frames if f.time % DAY < 5.9 * 3600)


def test_day_counter_and_yields_follow_the_device_day(run: tuple[World, list[Frame]]) -> None:
    _, frames = run
    first = frames[0]
    assert first.int("H20") > 0  # the noon start already holds its morning's yield
    rolls = [(a, b) for a, b in zip(frames, frames[1:]) if b.int("HSDS") != a.int("HSDS")]
    assert len(rolls) == 2  # exactly once per night
    for before, after in rolls:
        assert 6 * 3600 <= after.time % DAY <= 6.5 * 3600  # at first light, not midnight
        assert after.int("HSDS") == (before.int("HSDS") + 1) % 365
        assert after.int("H22") == before.int("H20")
        assert after.int("H20") <= 1
    for a, b in zip(frames, frames[1:]):
        if a.int("HSDS") == b.int("HSDS"):
            assert b.int("H20") >= a.int("H20"), (a, b)  # never decreases within a day
            assert b.int("H19") >= a.int("H19")
    # The report's rule (vemonitor.vedirect.days) on these frames, in kWh as decoded.
    rows = [(f.time, {k: f.int(k) / 100 for k in ("H20", "H22")} | {"HSDS": f.int("HSDS")})
            for f in frames]
    days = yield_days(rows)
    assert [d.complete for d in days] == [True, True, False]
    harvested = (frames[-1].int("H19") - first.int("H19")) / 100
    counted = sum(d.kwh for d in days) - first.int("H20") / 100
    assert abs(counted - harvested) <= 0.01 * (len(days) + 1), (counted, harvested)
    assert all(d.kwh > 0.3 for d in days[:2])
