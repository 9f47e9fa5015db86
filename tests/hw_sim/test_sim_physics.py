"""The physics model keeps every value coherent over simulated days."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hw_sim.devices import PROFILES
from hw_sim.physics import CS_ABSORPTION, CS_BULK, CS_FLOAT, CS_OFF, World

DAY = 86400.0
MONOTONIC_UP = ("H4", "H10", "H17", "H18")
MONOTONIC_DOWN = ("H1", "H6", "H7")


def make_world(soc: float = 0.5, seed: int = 1) -> World:
    """Return a world with both simulated chargers, midnight at epoch 0 (UTC)."""
    chargers = {k: p.charger for k, p in PROFILES.items() if p.charger is not None}
    return World(0.0, chargers, soc=soc, seed=seed, utc_offset_s=0.0)


def run(world: World, seconds: float, step: float = 60.0) -> list[tuple[float, dict[str, object]]]:
    """Advance ``world`` and sample every reading each ``step`` seconds."""
    samples = []
    t = world.time
    while t < seconds:
        t += step
        world.advance(t)
        samples.append((t, {
            "bmv": world.bmv_reading(),
            **{n: world.charger_reading(n) for n in world.chargers},
            "load_a": world.load_a,
        }))
    return samples


def test_soc_stays_in_range_and_h_counters_only_move_one_way() -> None:
    """Over three days SOC stays 0..1000 and cumulative history counters never reverse."""
    samples = run(make_world(soc=0.3), 3 * DAY)
    previous = None
    for _, s in samples:
        bmv = s["bmv"]
        assert 0 <= bmv.soc_permille <= 1000
        assert bmv.ce_mah <= 0
        assert (bmv.ttg_min == -1) == (bmv.i_ma >= 0)
        if previous is not None:
            for label in MONOTONIC_UP:
                assert bmv.h[label] >= previous.h[label], label
            for label in MONOTONIC_DOWN:
                assert bmv.h[label] <= previous.h[label], label
            assert bmv.h["H8"] >= previous.h["H8"]
        previous = bmv


def test_h9_resets_at_full_charge_and_counts_seconds_otherwise() -> None:
    """H9 (seconds since full) restarts at 0 at each full charge, else grows with time."""
    samples = run(make_world(soc=0.5), 2 * DAY)
    resets = 0
    for (t0, a), (t1, b) in zip(samples, samples[1:], strict=False):
        h9a, h9b = a["bmv"].h["H9"], b["bmv"].h["H9"]
        if h9b < h9a:
            resets += 1
            assert h9b <= t1 - t0
            assert b["bmv"].h["H10"] == a["bmv"].h["H10"] + 1
        else:
            assert abs((h9b - h9a) - (t1 - t0)) <= 1
    assert resets >= 2  # one full charge per sunny day


def test_charge_states_progress_bulk_absorption_float_then_off_at_night() -> None:
    """A charger goes Off -> Bulk -> Absorption -> Float as the battery fills, Off at night."""
    samples = run(make_world(soc=0.4), DAY)
    for name in ("mppt", "mppt_fwe"):
        states = [s[name].cs for _, s in samples]
        changes = [cs for i, cs in enumerate(states) if i == 0 or cs != states[i - 1]]
        assert changes == [CS_OFF, CS_BULK, CS_ABSORPTION, CS_FLOAT, CS_OFF], name
        at_night = [s[name] for t, s in samples if t % DAY < 5 * 3600]
        assert all(r.cs == CS_OFF and r.off_reason == 1 and r.ppv_w == 0 for r in at_night)
    first_float = next(s for _, s in samples if s["mppt"].cs == CS_FLOAT)
    assert first_float["bmv"].soc_permille >= 950  # Float only once the battery is (nearly) full


def test_the_charger_day_rolls_at_first_light_not_at_midnight() -> None:
    """H19 only grows; midnight changes nothing; at the first light (06:00 of the model's
    sun, after the night) H20/H21 move to H22/H23 and HSDS advances by one."""
    world = make_world(soc=0.3)
    samples = run(world, 3 * DAY, step=60.0)
    for name in ("mppt", "mppt_fwe"):
        h19 = [s[name].h19 for _, s in samples]
        assert h19 == sorted(h19) and h19[-1] > 0
        changes = [(t, a[name], b[name]) for (_, a), (t, b) in zip(samples, samples[1:])
                   if b[name].hsds != a[name].hsds]
        assert len(changes) == 3, name  # one per night
        for t, before, after in changes:
            assert 6 * 3600 <= t % DAY <= 6.5 * 3600, (name, t % DAY)
            assert after.hsds == (before.hsds + 1) % 365
            assert after.h20 <= 1 and after.h21 <= before.h21
            assert (after.h22, after.h23) == (before.h20, before.h21)
            assert before.h20 > 0 and before.cs == 0  # yesterday's yield held all night
        at_midnight = [s[name] for t, s in samples if t % DAY == 0]
        assert at_midnight and all(r.h20 > 0 for r in at_midnight)  # not reset at midnight


def test_a_model_started_at_noon_holds_its_morning() -> None:
    """Started at noon, a charger already shows the yield of its morning and a whole
    yesterday; started at 03:00 it shows the whole previous day as today's."""
    chargers = {"mppt": PROFILES["mppt"].charger}
    noon = World(12 * 3600.0, chargers, utc_offset_s=0.0).charger_reading("mppt")
    night = World(3 * 3600.0, chargers, utc_offset_s=0.0).charger_reading("mppt")
    assert 0 < noon.h20 < noon.h22 and noon.h21 > 0 and noon.cs != CS_OFF
    assert night.h20 == night.h22 and night.cs == CS_OFF
    assert noon.h19 >= noon.h20 + 100 * noon.h22  # a charger in service for months


def test_battery_current_is_charger_current_minus_load() -> None:
    """All devices share one battery: BMV I = sum of charger I - load current."""
    world = make_world(soc=0.6)
    for _, s in run(world, DAY, step=900.0):
        chargers_ma = sum(s[n].i_ma for n in world.chargers)
        expected = chargers_ma - round(s["load_a"] * 1000)
        assert abs(s["bmv"].i_ma - expected) <= 3
        assert s["mppt"].v_mv == s["bmv"].v_mv == s["mppt_fwe"].v_mv


def test_advance_is_independent_of_how_time_is_cut() -> None:
    """One long jump and many small steps land on the same state (same seed)."""
    a, b = make_world(seed=7), make_world(seed=7)
    a.advance(DAY / 2)
    for t in range(1, 4321):
        b.advance(t * 10.0)
    assert a.bmv_reading() == b.bmv_reading()


@settings(max_examples=25, deadline=None)
@given(soc=st.floats(0.0, 1.0), start=st.floats(0.0, DAY), seed=st.integers(0, 1000),
       steps=st.lists(st.floats(0.5, 7200.0), min_size=1, max_size=40))
def test_invariants_hold_for_any_start_and_steps(soc: float, start: float, seed: int,
                                                 steps: list[float]) -> None:
    """Whatever the start, SOC stays in range, CE <= 0, yields and H6 never reverse."""
    chargers = {k: p.charger for k, p in PROFILES.items() if p.charger is not None}
    world = World(start, chargers, soc=soc, seed=seed, utc_offset_s=0.0)
    last_h19, last_h6 = -1, 1
    for step in steps:
        world.advance(world.time + step)
        bmv, mppt = world.bmv_reading(), world.charger_reading("mppt")
        assert 0 <= bmv.soc_permille <= 1000 and bmv.ce_mah <= 0
        assert mppt.h19 >= last_h19 and bmv.h["H6"] <= last_h6
        assert 0 <= mppt.hsds < 365
        last_h19, last_h6 = mppt.h19, bmv.h["H6"]
