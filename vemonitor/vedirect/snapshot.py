"""Assemble the blocks of one device cycle into snapshots.

A block is not a snapshot: a BMV sends a main block and a history block every
second, a split-style MPPT sends two blocks per cycle. The assembler merges the
valid blocks of a cycle; a block that starts with ``PID`` starts a new cycle.

Decisions:

* The cycle length (blocks per cycle) is learned from the last clean cycle, so a
  snapshot is emitted as soon as its last block arrives instead of one cycle
  late. Until it is learned, a cycle ends at a block holding a label that
  only ever ends a device's cycle (``CYCLE_END_LABELS``: H18 for battery
  monitors, HSDS for solar chargers), else when the next ``PID`` arrives.
* A block that arrives after its cycle was emitted (the device grew a block)
  is merged and the cycle emitted again; the length is learned anew.
* A field its block left out of range (``Block.out_of_range``) is absent from
  the snapshot, as a "not available" (``---``) value is absent from its
  ``values``; the snapshot lists it in ``out_of_range`` (label -> raw value), and
  stays complete: one impossible reading costs that reading, not the cycle.
* A rejected block marks its cycle incomplete (``complete=False``); its values
  are never used, and nothing of one cycle leaks into the next.
* Blocks before the first ``PID`` (the tail of a cycle we joined midway, or of a
  cycle whose ``PID`` block was lost) belong to no device identity and are
  dropped (counted in ``orphan_blocks``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vemonitor.vedirect.events import Block, Event, Rejected
from vemonitor.vedirect.fields import Value, decode_fields

# Labels sent only in the last block of a device's cycle (PROTOCOL.md field orders):
# they let the very first cycle after opening a port be emitted without waiting
# for the next PID block.
CYCLE_END_LABELS = frozenset({"H18", "HSDS"})
# The decoded values of the last snapshot, by label, are reused while the wire text is the
# same (issue 24g: decoding was half of a block's handling; of a BMV-700's 26 fields only
# V, I, P, CE, SOC and a few history counters change from one second to the next).
# A device sends a few dozen labels; more than this (a stream of odd labels) starts afresh.
MEMO_LABELS = 256
_ABSENT = object()  # a "not available" value: left out of the decoded fields


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One device's complete state for one cycle, with the time it was received."""

    raw: dict[str, str]
    values: dict[str, Value]
    received_at: float | None
    start: int
    end: int
    blocks: int
    complete: bool
    out_of_range: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> str | None:
        """Return the raw product id (e.g. '0x203')."""
        return self.raw.get("PID")

    @property
    def serial(self) -> str | None:
        """Return the serial number (SER#), when the device sends one."""
        return self.raw.get("SER#")

    @property
    def product(self) -> str:
        """Return the product name from the PID."""
        pid = self.values.get("PID")
        return str(pid) if pid is not None else "unknown"

    @property
    def firmware(self) -> str | None:
        """Return the firmware version from FW or FWE."""
        value = self.values.get("FW", self.values.get("FWE"))
        return None if value is None else str(value)


@dataclass
class _Cycle:
    raw: dict[str, str] = field(default_factory=dict)
    start: int = 0
    end: int = 0
    blocks: int = 0
    damaged: bool = False
    emitted: bool = False
    received_at: float | None = None
    out_of_range: dict[str, str] = field(default_factory=dict)


class SnapshotAssembler:
    """Turn decoder events into snapshots (see the module doc for the rules)."""

    def __init__(self) -> None:
        self._cycle: _Cycle | None = None
        self._cycle_length: int | None = None
        self.orphan_blocks = 0
        self._memo: dict[str, tuple[str, object]] = {}  # label -> (wire text, decoded)

    def feed(self, events: list[Event], now: float | None = None) -> list[Snapshot]:
        """Consume decoder events received at ``now`` and return finished snapshots."""
        out: list[Snapshot] = []
        for event in events:
            if isinstance(event, Block):
                self._on_block(event, now, out)
            elif isinstance(event, Rejected) and self._cycle is not None:
                self._on_rejected(self._cycle)
        return out

    def flush(self) -> list[Snapshot]:
        """Return the pending cycle, if it was not emitted yet (end of stream)."""
        cycle, self._cycle = self._cycle, None
        if cycle is None or cycle.emitted:
            return []
        return [self._snapshot(cycle, complete=False)]

    def _on_block(self, block: Block, now: float | None, out: list[Snapshot]) -> None:
        """Merge one valid block into the current cycle."""
        cycle = self._cycle
        if "PID" in block.fields:
            if cycle is not None:
                self._close(cycle, out)
            cycle = self._cycle = _Cycle(start=block.start)
        elif cycle is None:
            self.orphan_blocks += 1
            return
        elif cycle.emitted:
            # The device sends more blocks than we learned: take them, re-learn.
            self._cycle_length = None
        cycle.raw.update(block.fields)
        if block.out_of_range:
            cycle.out_of_range.update(block.out_of_range)
            for label, _ in block.out_of_range:  # a later block's value is not kept either
                cycle.raw.pop(label, None)
        cycle.end = block.end
        cycle.blocks += 1
        cycle.received_at = now
        ends = (self._cycle_length is None and not cycle.emitted
                and not CYCLE_END_LABELS.isdisjoint(block.fields))
        if ends or (self._cycle_length is not None and cycle.blocks >= self._cycle_length):
            out.append(self._snapshot(cycle, complete=not cycle.damaged))
            cycle.emitted = True
        elif cycle.emitted:
            out.append(self._snapshot(cycle, complete=not cycle.damaged))

    def _on_rejected(self, cycle: _Cycle) -> None:
        """Mark the open cycle damaged; after a finished cycle, the loss opens the next one."""
        if cycle.emitted:
            # The finished cycle expected nothing more: the lost block began a new
            # cycle, whose later blocks must not be merged into this one.
            self._cycle = None
        else:
            cycle.damaged = True

    def _close(self, cycle: _Cycle, out: list[Snapshot]) -> None:
        """Finish a cycle when the next PID block arrives; learn the cycle length."""
        if not cycle.damaged:
            self._cycle_length = cycle.blocks
        if not cycle.emitted:
            complete = not cycle.damaged and cycle.blocks == self._cycle_length
            out.append(self._snapshot(cycle, complete=complete))

    def _snapshot(self, cycle: _Cycle, complete: bool) -> Snapshot:
        """Build an immutable snapshot of a cycle."""
        raw = dict(cycle.raw)
        return Snapshot(raw, self._decode(raw), cycle.received_at, cycle.start, cycle.end,
                        cycle.blocks, complete, dict(cycle.out_of_range))

    def _decode(self, raw: dict[str, str]) -> dict[str, Value]:
        """Return ``decode_fields(raw)``, decoding only the fields whose text changed.

        Decoding is a pure function of (label, text) and its values are immutable
        (numbers, strings, Code and Flags tuples), so a value may be shared between
        snapshots. The fields keep the wire's order.
        """
        memo = self._memo
        changed = {label: text for label, text in raw.items()
                   if label not in memo or memo[label][0] != text}
        if changed:
            if len(memo) + len(changed) > MEMO_LABELS:
                memo.clear()
                changed = raw
            decoded = decode_fields(changed)
            for label, text in changed.items():
                memo[label] = (text, decoded.get(label, _ABSENT))
        return {label: value for label in raw  # type: ignore[misc]
                if (value := memo[label][1]) is not _ABSENT}
