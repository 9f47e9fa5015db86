"""The control contract (issue 23): what a surface (HA, MQTT, the CLI) sees and asks.

Fixed by the lead so three surfaces can be built at once (docs/control.md). Fields and
methods may be added, never renamed or removed. Stdlib only: ``vemonitor.api``
re-exports these names, and the device side (``vemonitor.control``, codec layer)
implements :class:`Controls` without importing the contract.

Vocabulary of :attr:`ControlResult.result`:

* ``ok``: written, the reply and the read-back agree with the value sent (or nothing
  needed sending: the device already had that value; ``frame`` is then "");
* ``refused``: a check before the write failed; nothing was sent;
* ``rejected``: the device answered with non-zero flags;
* ``mismatch``: the reply or the read-back differs from the value sent;
* ``timeout``: no matching reply within 1 s;
* ``dry_run``: nothing was sent; ``frame`` is the exact line that would have been.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

ControlKind = Literal["switch", "select", "number"]
ResultKind = Literal["ok", "refused", "rejected", "mismatch", "timeout", "dry_run"]
RESULT_KINDS: tuple[str, ...] = ("ok", "refused", "rejected", "mismatch", "timeout", "dry_run")


@dataclass(frozen=True)
class ControlView:
    """What a surface shows for one control of one device."""

    device: str  # the device key: the serial input's name (rows and MQTT topics use it)
    name: str  # "charger" | "charge_current_limit" | "load_output" | "relay"
    kind: ControlKind  # charger, relay: switch; load_output: select; the limit: number
    options: tuple[str, ...]  # select: ("off", "auto", "on"); switch: ("off", "on")
    minimum: float | None  # number only, in `unit`, from the device's own limits
    maximum: float | None
    step: float | None  # 0.1 for the charge-current limit
    unit: str | None  # "A" for the charge-current limit
    value: str | float | None  # the last value read from the device; None = unknown
    unavailable: str | None  # None when every precondition holds, else the one-line reason
    dry_run: bool  # the control is enabled in dry-run mode (nothing is written)
    # Added by issue-23 (allowed by the contract): when a charge-current lease is held,
    # the wall-clock time it ends (None: no lease).
    lease_until: float | None = None


@dataclass(frozen=True)
class ControlResult:
    """The outcome of one request (or of a lease keep-alive / lease end)."""

    device: str
    control: str
    result: ResultKind
    reason: str  # one line: which check failed / what the device said; "" when ok
    old: str | float | None
    new: str | float | None
    frame: str  # the exact frame sent or (dry-run) that would be sent; "" if none
    reply: str  # the reply line, "" if none
    readback: str | float | None
    surface: str  # "ha" | "mqtt" | "cli" (and "lease" for the keep-alive's own results)
    caller: str  # HA entity id / MQTT topic / CLI user
    time: float  # wall clock, seconds
    # Added by issue-23: what produced the result. "write" (a request), "keepalive" (the
    # lease's re-send of the charge-current limit), "lease_end" (the lease was not
    # renewed: vemonitor stopped re-sending and the device falls back within ~60 s).
    event: str = "write"


@runtime_checkable
class Controls(Protocol):
    """What a surface holds: the controls of one or more devices."""

    def views(self, device: str | None = None) -> list[ControlView]:
        """Return the views of every enabled control (of ``device`` only, when given)."""
        ...

    def request(self, device: str, control: str, value: str | float, *, surface: str,
                caller: str, dry_run: bool = False,
                lease_s: float | None = None) -> ControlResult:
        """Write one control (blocking, thread-safe, returns within ~5 s).

        ``value`` by option name ("on", "off", "auto") or a number in the control's
        unit; ``lease_s`` only for charge_current_limit (None = the default lease).
        """
        ...

    def subscribe(self, callback: Callable[[ControlResult], None]) -> Callable[[], None]:
        """Call ``callback`` for every result (all surfaces, any thread); return an
        unsubscribe function."""
        ...
