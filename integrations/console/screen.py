"""The live screen: one panel per device, the fields that matter first, fitted to the terminal.

Decisions (what a person at 80x24 needs to read):

* One panel per source, never one table of the union of every column: a device's
  fields do not depend on which device answered first, and no cell is cut.
* Fields in the order that matters (``PRIORITY``): a battery monitor's V, I, P, SOC,
  TTG, alarm first; a charger's PPV, V, I, CS, yield today, error first; then the rest
  in arrival order. Values carry their unit and codes are decoded (``CS Bulk``, ``ERR
  No error``, ``TTG 3h25m``) from the codec's field table.
* The layout is computed at each render from the terminal's size: as many
  label/value pairs per line as fit the width, as many lines as fit the height; what
  does not fit is counted (``+3 more``). So SOC (4th) is never hidden, and a wider or
  taller terminal shows more pairs.
* A source with no new row for ``stale_after`` seconds (real time) is marked STALE
  with its age, and its values are dimmed: the last values stay readable, but nobody
  takes them for live ones.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vemonitor.vedirect.fields import FIELD_BY_LABEL, FieldSpec

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

# The fields that matter first (battery monitor, then charger), in the order shown.
PRIORITY: dict[str, tuple[str, ...]] = {
    "battery": ("V", "I", "P", "SOC", "TTG", "Alarm", "AR", "Relay", "CE", "VS", "VM", "T"),
    "charger": ("PPV", "V", "I", "CS", "H20", "ERR", "VPV", "MPPT", "H21", "H19", "IL",
                "LOAD", "OR"),
}
CHARGER_HINTS = frozenset({"PPV", "VPV", "CS", "MPPT", "H20"})  # fields only a charger sends
# Names a person reads for the labels that are codes on the wire (the rest: as sent).
NAMES: dict[str, str] = {
    "CE": "Consumed", "AR": "Alarm cause", "CS": "State", "ERR": "Error", "VPV": "Panel V",
    "PPV": "Panel P", "MPPT": "Tracker", "H17": "Discharged", "H18": "Charged",
    "H19": "Yield total", "H20": "Yield today", "H21": "Max P today", "H22": "Yield yday",
    "H23": "Max P yday", "IL": "Load I", "OR": "Off reason", "VS": "Starter V",
    "VM": "Mid V", "T": "Temp",
}
# Code names too long for a cell at 80 columns, said shorter on the screen.
SHORT_CODES: dict[str, dict[int, str]] = {"MPPT": {1: "V or I limited", 2: "MPP tracking"}}
LABEL_WIDTH = 12
MIN_VALUE_WIDTH = 18  # 2 pairs at 80 columns, 4 at 160
GAP = 2  # spaces between two columns of the grid (none at its edges)
ON_OFF = {True: "on", False: "off"}


def device_kind(columns: Mapping[str, Any]) -> str:
    """Return 'charger' when the row has a charger's fields, else 'battery'."""
    return "charger" if CHARGER_HINTS.intersection(columns) else "battery"


def ordered_fields(columns: Mapping[str, Any]) -> list[str]:
    """Return the row's columns, the ones that matter for its kind of device first."""
    first = [c for c in PRIORITY[device_kind(columns)] if c in columns]
    return first + [c for c in columns if c not in first]


def _duration(minutes: float) -> str:
    if minutes < 0:
        return "∞"  # TTG -1: the device says infinite (charging or not discharging)
    hours, rest = divmod(int(minutes), 60)
    return f"{hours}h{rest:02d}m" if hours else f"{rest} min"


def _number(value: float) -> str:
    from vemonitor_integrations.console.sink import short_float

    return short_float(value) if isinstance(value, float) else str(value)


def show_value(label: str, value: Any) -> str:
    """Return a value as a person reads it: decoded code, unit, on/off, n/a."""
    from vemonitor_integrations.console.sink import NONE_TEXT, format_value

    if value is None:
        return NONE_TEXT
    if isinstance(value, bool):
        return ON_OFF[value]
    spec: FieldSpec | None = FIELD_BY_LABEL.get(label)
    if spec is None or not isinstance(value, int | float):
        return format_value(value, quote=False)
    if spec.kind == "code" and spec.codes is not None:
        short = SHORT_CODES.get(label, {}).get(int(value))
        return short or spec.codes.get(int(value), f"code {int(value)}")
    if spec.kind == "flags" and spec.codes is not None:
        names = [name for bit, name in spec.codes.items() if int(value) & bit]
        return ", ".join(names) or "none"
    if label == "TTG":
        return _duration(float(value))
    return f"{_number(value)} {spec.unit}" if spec.unit else _number(value)


@dataclass
class SourceState:
    """What the screen knows of one source: its latest row and when it arrived."""

    time: float
    values: dict[str, Any]
    arrived: float  # time.monotonic() of the write that brought it


class Screen:
    """A rich renderable of every source's panel, laid out for the console's size at render."""

    def __init__(self, title: str, sources: Mapping[str, SourceState], stale_after: float,
                 max_fields: int) -> None:
        self.title = title
        self.sources = dict(sources)
        self.stale_after = stale_after
        self.max_fields = max_fields

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        width = options.max_width
        height = options.height or console.height
        yield Text(self.title, style="bold", no_wrap=True, overflow="ellipsis")
        if not self.sources:
            yield Text("waiting for the first rows...", style="dim")
            return
        per_panel = max(1, (height - 2) // len(self.sources) - 2)  # title + spare, borders
        for name, state in self.sources.items():
            yield self._panel(name, state, width, per_panel)

    def _panel(self, name: str, state: SourceState, width: int, lines: int) -> Any:
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text
        from vemonitor_integrations.console.sink import format_time

        inner = width - 4  # borders and padding
        pairs = max(1, (inner + GAP) // (LABEL_WIDTH + MIN_VALUE_WIDTH + 2 * GAP))
        # Table.grid pads between columns only: 2 * pairs - 1 gaps of GAP.
        value_width = max(8, (inner - GAP * (2 * pairs - 1)) // pairs - LABEL_WIDTH)
        fields = ordered_fields(state.values)
        room = min(len(fields), pairs * lines, self.max_fields)
        if room < len(fields):  # the count of hidden fields takes the last cell
            room = max(1, room - 1)
        age = time.monotonic() - state.arrived
        stale = age > self.stale_after
        grid = Table.grid(padding=(0, GAP))
        for _ in range(pairs):
            grid.add_column(width=LABEL_WIDTH, no_wrap=True, overflow="ellipsis",
                            style="dim" if stale else "cyan")
            grid.add_column(width=value_width, no_wrap=True, overflow="ellipsis",
                            style="dim" if stale else "")
        cells: list[Text] = []
        for label in fields[:room]:
            cells += [Text(NAMES.get(label, label)), Text(show_value(label, state.values[label]))]
        if room < len(fields):
            cells += [Text(""), Text(f"+{len(fields) - room} more", style="dim")]
        for start in range(0, len(cells), 2 * pairs):
            chunk = cells[start:start + 2 * pairs]
            grid.add_row(*chunk, *[Text("")] * (2 * pairs - len(chunk)))
        mark = (Text(f" STALE, no data for {age:.0f} s ", style="bold red") if stale
                else Text(f" {format_time(state.time, iso=False)} ", style="green"))
        title = Text.assemble(Text(f" {name} ", style="bold"), mark)
        return Panel(grid, title=title, title_align="left", width=width,
                     border_style="red" if stale else "blue")
