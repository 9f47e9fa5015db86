"""Schemas of the VE.Direct connector (``appConnectors.serial.<name>``) and input items."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from vemonitor.api import Connector, InputItem

HEX_MODES = ("auto", "full", "never")  # words YAML does not read as booleans


class TestType(Enum):
    """How a serialTest recognises a device (the seed's two kinds)."""

    value = "value"  # snapshot[key] == value
    columns = "columns"  # the snapshot has every listed column


@dataclass
class SerialTest:
    """One test a device must pass to be this connector's device."""

    typeTest: TestType = TestType.value  # noqa: N815 (seed's name)
    key: str | None = None
    value: str | None = None
    columns: list[str] = field(default_factory=list)


@dataclass
class ControlConfig:
    """One control of the device (docs/control.md): off unless enabled; an enabled control
    only shows what it would write until ``dry_run: false`` is given as well."""

    enabled: bool = False
    dry_run: bool = True


@dataclass
class ControlsConfig:
    """``controls:`` of a serial connector (issue 23, docs/control.md "Configuration")."""

    charger: ControlConfig = field(default_factory=ControlConfig)
    charge_current_limit: ControlConfig = field(default_factory=ControlConfig)
    load_output: ControlConfig = field(default_factory=ControlConfig)
    relay: ControlConfig = field(default_factory=ControlConfig)
    # The serial number the controls are for; None = the first device read on the port
    # (a device with another serial is then refused: ttyUSB numbers move).
    serial: str | None = None
    nv_writes_per_day: int = 20  # at most 20 (HEX.md §8.7); lower is allowed
    lease_s: float = 600.0  # default lease of the charge-current limit (30 .. 86400 s)

    def enabled(self) -> dict[str, ControlConfig]:
        """Return the configured controls by name."""
        return {name: getattr(self, name) for name in
                ("charger", "charge_current_limit", "load_output", "relay")}


@dataclass
class VedirectConnector(Connector):
    """A serial port given by path (``serialPort``) or found by scanning (``serialTest``).

    Keys the seed documents but vemonitor does not need (``baud``, ``timeout``,
    ``blockLengthInputs``, ``intervalDataSend``, ``delimiters``) are accepted so
    the seed's files load; VE.Direct is always 19200 8N1.
    """

    serialPort: str | None = None  # noqa: N815
    serialTest: dict[str, SerialTest] = field(default_factory=dict)  # noqa: N815
    serialpath: str | None = None
    scan_globs: list[str] = field(default_factory=list)
    # The allow-list: when set, scanning opens no port but these (glob patterns, matched
    # against the path and what it links to), and may set one of them to 19200 8N1 even
    # when another device talks on it at other settings (vemonitor.scan, "What is probed").
    allowed_ports: list[str] = field(default_factory=list)
    rescan_after: float = 15.0
    baud: int = 19200
    timeout: float = 10
    blockLengthInputs: int | None = None  # noqa: N815
    intervalDataSend: int | None = None  # noqa: N815
    delimiters: dict[str, str] = field(default_factory=dict)
    # HEX (issue 22, docs/hex.md): "auto" speaks HEX only when an input names a HEX
    # register or reads the history (history: true); "full" also reads the identity and
    # the MPPT's history at every connect; "never" never writes a byte to the port.
    # Not "full" by default: a device whose RX pin is set to remote on/off would take
    # our bytes as a switch (HEX.md Q4).
    hex: str = "auto"
    # Control (issue 23): every control off by default; see ControlsConfig.
    controls: ControlsConfig = field(default_factory=ControlsConfig)

    def validate(self) -> None:
        """Check the connector can find its port (no I/O)."""
        if not self.serialPort and not self.serialTest:
            raise ValueError("needs serialPort or serialTest (or both)")
        if self.hex not in HEX_MODES:
            raise ValueError(f"hex must be one of {', '.join(HEX_MODES)}, got {self.hex!r}")
        if self.hex == "never" and any(c.enabled for c in self.controls.enabled().values()):
            raise ValueError("controls need HEX, but hex is never")
        if not 0 <= self.controls.nv_writes_per_day <= 20:
            raise ValueError("controls.nv_writes_per_day must be 0..20 (HEX.md §8.7), got "
                             f"{self.controls.nv_writes_per_day}")
        if not 30.0 <= self.controls.lease_s <= 86400.0:
            raise ValueError(f"controls.lease_s must be 30..86400 s, got {self.controls.lease_s}")
        if self.baud != 19200:
            raise ValueError(f"VE.Direct runs at 19200 baud, got baud={self.baud}")
        for name, test in self.serialTest.items():
            if test.typeTest is TestType.value and (not test.key or test.value is None):
                raise ValueError(f"serialTest.{name}: a 'value' test needs key and value")
            if test.typeTest is TestType.columns and not test.columns:
                raise ValueError(f"serialTest.{name}: a 'columns' test needs columns")

    def globs(self) -> list[str]:
        """Return where to scan: scan_globs, else serialpath/*, else the defaults."""
        if self.scan_globs:
            return list(self.scan_globs)
        if self.serialpath:
            return [f"{self.serialpath.rstrip('/')}/*"]
        return []

    def tests(self) -> dict[str, dict[str, object]]:
        """Return the tests as plain mappings for vemonitor.scan.matches."""
        return {name: {"typeTest": t.typeTest.value, "key": t.key, "value": t.value,
                       "columns": list(t.columns)} for name, t in self.serialTest.items()}


@dataclass
class VedirectInput(InputItem):
    """An input reading columns of a VE.Direct device (``device`` is informational).

    ``history: true`` makes it an input of the MPPT's own day records instead (HEX,
    issue 22: one row per closed device day, dated by the device's day; see
    ``integrations/vedirect/history.py``). Its columns default to every day field.
    """

    history: bool = False
