"""Device profiles: what each simulated product sends, block by block, in wire format."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from hw_sim.physics import BmvReading, ChargerReading, ChargerSpec

Record = tuple[str, str]
Block = list[Record]


@dataclass(frozen=True)
class Profile:
    """One product: its fixed identity fields, block layout and (for chargers) hardware."""

    kind: str
    description: str
    static: dict[str, str]
    blocks: tuple[tuple[str, ...], ...]
    charger: ChargerSpec | None = None


PROFILES: dict[str, Profile] = {
    "bmv700": Profile(
        kind="bmv700",
        description="BMV-700 battery monitor (PID 0x203, FW 0308)",
        static={"PID": "0x203", "BMV": "700", "FW": "0308"},
        blocks=(
            ("PID", "V", "I", "P", "CE", "SOC", "TTG", "Alarm", "Relay", "AR", "BMV", "FW"),
            ("H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "H9", "H10", "H11", "H12",
             "H17", "H18"),
        ),
    ),
    "mppt": Profile(
        kind="mppt",
        description="SmartSolar MPPT 75/15 (PID 0xA053, FW 159), one block per second",
        static={"PID": "0xA053", "FW": "159"},
        blocks=(
            ("PID", "FW", "SER#", "V", "I", "VPV", "PPV", "CS", "MPPT", "OR", "ERR", "LOAD",
             "IL", "H19", "H20", "H21", "H22", "H23", "HSDS"),
        ),
        charger=ChargerSpec(max_current_a=15.0, panel_peak_w=220.0, panel_voc_v=40.0,
                            has_load_output=True),
    ),
    "mppt_fwe": Profile(
        kind="mppt_fwe",
        description="SmartSolar MPPT 150/70 rev2 (PID 0xA06C, FWE 316FF), two blocks per second",
        static={"PID": "0xA06C", "FWE": "316FF"},
        blocks=(
            ("PID", "FWE", "SER#", "V", "I", "VPV", "PPV", "MPPT", "CS", "OR"),
            ("ERR", "LOAD", "Relay", "H19", "H20", "H21", "H22", "H23", "HSDS"),
        ),
        charger=ChargerSpec(max_current_a=70.0, panel_peak_w=1000.0, panel_voc_v=90.0),
    ),
    # An old-firmware MPPT (issue 22): the block of captures/bluesolar_75_15_fw123.dump
    # (karioja). FW <= 1.52 pauses its TEXT while HEX flows (HEX.md T1; hw_sim.hex_device).
    "mppt_fw123": Profile(
        kind="mppt_fw123",
        description="BlueSolar MPPT 75/15 (PID 0xA042, FW 123), TEXT pauses during HEX",
        static={"PID": "0xA042", "FW": "123"},
        blocks=(
            ("PID", "FW", "SER#", "V", "I", "VPV", "PPV", "CS", "ERR", "LOAD", "IL", "H19",
             "H20", "H21", "H22", "H23", "HSDS"),
        ),
        charger=ChargerSpec(max_current_a=15.0, panel_peak_w=220.0, panel_voc_v=40.0,
                            has_load_output=True),
    ),
}


def on_off(flag: bool) -> str:
    """Return the wire form of a boolean."""
    return "ON" if flag else "OFF"


def _unless_unsynced(value: Callable[[BmvReading], int]) -> Callable[[BmvReading], str]:
    # A BMV that never saw a full charge since power-up does not know SOC, CE or TTG.
    return lambda r: str(value(r)) if r.synchronised else "---"


BMV_FIELDS: dict[str, Callable[[BmvReading], str]] = {
    "V": lambda r: str(r.v_mv),
    "I": lambda r: str(r.i_ma),
    "P": lambda r: str(r.p_w),
    "CE": _unless_unsynced(lambda r: r.ce_mah),
    "SOC": _unless_unsynced(lambda r: r.soc_permille),
    "TTG": _unless_unsynced(lambda r: r.ttg_min),
    "Alarm": lambda r: on_off(r.alarm),
    "Relay": lambda r: on_off(r.relay),
    "AR": lambda r: str(r.ar),
}

CHARGER_FIELDS: dict[str, Callable[[ChargerReading], str]] = {
    "V": lambda r: str(r.v_mv),
    "I": lambda r: str(r.i_ma),
    "VPV": lambda r: str(r.vpv_mv),
    "PPV": lambda r: str(r.ppv_w),
    "CS": lambda r: str(r.cs),
    "MPPT": lambda r: str(r.mppt),
    "OR": lambda r: f"0x{r.off_reason:08X}",
    "ERR": lambda r: str(r.err),
    "LOAD": lambda r: on_off(r.load_on),
    "IL": lambda r: str(r.il_ma),
    "Relay": lambda r: on_off(r.relay),
    "H19": lambda r: str(r.h19),
    "H20": lambda r: str(r.h20),
    "H21": lambda r: str(r.h21),
    "H22": lambda r: str(r.h22),
    "H23": lambda r: str(r.h23),
    "HSDS": lambda r: str(r.hsds),
}


def make_serial(name: str, seed: int | None = 0) -> str:
    """Return a stable, plausible serial ``HQyywwxxxxx`` for a device name."""
    rng = random.Random(f"{seed}:{name}")
    tail = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(5))
    return f"HQ{rng.randint(15, 23):02d}{rng.randint(1, 52):02d}{tail}"


def bmv_value(label: str, reading: BmvReading) -> str:
    """Return the wire value of a BMV label (history labels come from ``reading.h``)."""
    if label in reading.h:
        return str(reading.h[label])
    return BMV_FIELDS[label](reading)


def render(profile: Profile, reading: BmvReading | ChargerReading, serial: str) -> list[Block]:
    """Return the blocks of one device cycle as (label, value) records in wire order."""
    fixed = {**profile.static, "SER#": serial}

    def value(label: str) -> str:
        if label in fixed:
            return fixed[label]
        if isinstance(reading, BmvReading):
            return bmv_value(label, reading)
        return CHARGER_FIELDS[label](reading)

    return [[(label, value(label)) for label in labels] for labels in profile.blocks]
