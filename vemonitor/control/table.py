"""The allow-list of named controls and the hard deny list, as data (HEX.md §8.2).

Nothing outside this table is ever written: surfaces name a control, never a register
(a raw ``0x....`` is refused by name lookup, and the deny list below is checked again
right before a frame is built, whatever the configuration says).
"""

from __future__ import annotations

from dataclasses import dataclass

from vemonitor.vedirect.hex_registers import BMV, MPPT

# Registers never written, whatever the configuration (HEX.md §8.2 "Hard deny", §3.3
# "Never write (BMV)": PM's Commands/Miscellaneous groups; 0x034D relay invert: PM, VR
# and stefanor/signalk-victron-ble#28; 0x200E network mode: HEX.md Q1 "do not write in
# phase 1"). Every id not in CONTROLS is refused as well; this list is the second lock.
DENIED_REGISTERS: frozenset[int] = frozenset({
    0x0004, 0x0090, 0x034D, 0x200E, 0x2001, 0xEB99, 0x1029, 0x102C, 0x1030, 0xEEF6,
    0xEEFA, 0xEEFB,
})
# Commands never sent by a control (HEX.md §8.2: 0 enter boot, 6 restart).
DENIED_COMMANDS: frozenset[int] = frozenset({0x0, 0x6})

# Capability bits of 0x0140 (VR; HEX.md §3.1).
CAP_LOAD_OUTPUT = 1 << 0
CAP_ALARM_RELAY = 1 << 17
CAP_VIRTUAL_RELAY = 1 << 20

# 0x034F relay mode 2 = remote: the only mode in which 0x034E takes effect (HEX.md B4,
# SignalK#36; KR's MPPT enum has 2 = remote too).
RELAY_MODE_REMOTE = 2
# 0x0207 off reason bit 0x004: "switched off (device mode register)" (PROTOCOL.md OR bits).
OFF_BY_DEVICE_MODE = 0x004


@dataclass(frozen=True)
class ControlSpec:
    """One named control: its register, values, limits and the rules its writes follow."""

    name: str
    register: int
    kind: str  # "switch" | "select" | "number" (controltypes.ControlKind)
    options: tuple[tuple[str, int], ...]  # option name -> wire value (switch, select)
    families: frozenset[str]  # device families that have it (hex_registers)
    nv: bool  # stored in non-volatile memory: no retry, counted against the daily budget
    retry_on_timeout: bool  # one retry on timeout (HEX.md §8.5: 0x0200, 0x034E, 0x2015)
    min_interval_s: float  # rate limit between two user writes (HEX.md §8.7)
    capability_any: int = 0  # one of these 0x0140 bits must be set (0: no bit needed)
    unit: str | None = None
    step: float | None = None  # number: the wire step in `unit` (0.1 A)
    limit_registers: tuple[int, ...] = ()  # number: maximum = the least of these (device limits)
    condition_register: int | None = None  # must read `condition_value` before a write
    condition_value: int | None = None
    effect_register: int | None = None  # read after the write to see the effect
    lease: bool = False  # volatile on the device: held as a lease and re-sent

    def option_value(self, name: str) -> int | None:
        """Return the wire value of an option name, None when it is not an option."""
        return dict(self.options).get(name)

    def option_name(self, raw: int) -> str | None:
        """Return the option name of a wire value, None for other values (e.g. load mode 2)."""
        return {value: name for name, value in self.options}.get(raw)


CONTROLS: dict[str, ControlSpec] = {spec.name: spec for spec in (
    # 0x0200 device mode: MPPT 1 = on, 4 = off (HEX.md §3.2: GV, KR; frames
    # :8000200014A / :80002000447 are public). Effect: 0x0207 off reason bit 0x004.
    ControlSpec("charger", 0x0200, "switch", (("off", 4), ("on", 1)), frozenset({MPPT}),
                nv=False, retry_on_timeout=True, min_interval_s=10.0,
                effect_register=0x0207),
    # 0x2015 charge-current limit, volatile, 0.1 A, 0 .. min(0xEDF0, 0xEDDF) (HEX.md §3.2,
    # Q1: expires after ~60 s, so it is a lease re-sent every <= 30 s).
    ControlSpec("charge_current_limit", 0x2015, "number", (), frozenset({MPPT}), nv=False,
                retry_on_timeout=True, min_interval_s=5.0, unit="A", step=0.1,
                limit_registers=(0xEDF0, 0xEDDF), lease=True),
    # 0xEDAB load output: 0 off, 1 auto (BatteryLife), 4 on (FS, VC 49788 confirmed 0 and
    # 4); NV ("written to storage at each change"): >= 60 s apart, daily budget, no retry.
    # The other modes (2, 3, 5, 6, 7) are shown, never written. Effect: 0xEDA8.
    ControlSpec("load_output", 0xEDAB, "select", (("off", 0), ("auto", 1), ("on", 4)),
                frozenset({MPPT}), nv=True, retry_on_timeout=False, min_interval_s=60.0,
                capability_any=CAP_LOAD_OUTPUT, effect_register=0xEDA8),
    # 0x034E relay control 0/1: BMV-70x/712 or an MPPT with a (virtual) relay, only in
    # relay mode 2 = remote (HEX.md §8.2, B4).
    ControlSpec("relay", 0x034E, "switch", (("off", 0), ("on", 1)), frozenset({MPPT, BMV}),
                nv=False, retry_on_timeout=True, min_interval_s=10.0,
                capability_any=CAP_ALARM_RELAY | CAP_VIRTUAL_RELAY,
                condition_register=0x034F, condition_value=RELAY_MODE_REMOTE),
)}

# Device limits and state read at connect besides each control's own register.
IDENTITY_REGISTERS = (0x010A, 0x0140)  # serial number, capabilities
