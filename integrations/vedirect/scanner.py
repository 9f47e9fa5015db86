"""The vedirect integration's port scanner: one per run, shared by its serial connectors.

Connectors starting together share one scan, and a port is claimed by one
connector only. The run's scanner lives in ``Context.shared`` under
:data:`SHARED_KEY` (see :func:`scanner_for`); the ports a service adds (the
simulator's ``ttyVE_*`` links) come from ``Context.port_globs``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vemonitor.api import Clock, Context
from vemonitor.scan import (
    DEFAULT_GLOBS,
    NEXT_STEPS,
    PROBE_TIMEOUT,
    ProbeResult,
    allowed,
    candidate_ports,
    expected_device,
    matches,
    port_verdict,
    scan,
)

SHARED_KEY = "vedirect.scanner"


def scanner_for(context: Context) -> Scanner:
    """Return the run's scanner (made on first use)."""
    found = context.shared.get(SHARED_KEY)
    if not isinstance(found, Scanner):
        found = context.shared.setdefault(
            SHARED_KEY, Scanner(extra_globs=context.port_globs, clock=context.clock))
    return found


@dataclass
class Scanner:
    """Shares one scan between connectors and keeps each port claimed by one connector."""

    globs: tuple[str, ...] = DEFAULT_GLOBS
    extra_globs: tuple[str, ...] = ()  # ports a service adds to every scan (the simulator's)
    timeout: float = PROBE_TIMEOUT
    clock: Clock | None = None
    reuse_for: float = 10.0  # seconds a scan's results serve the next connectors
    claims: dict[str, str] = field(default_factory=dict)  # realpath -> connector
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last: dict[str, ProbeResult] = field(default_factory=dict)
    _last_at: float = -1e9

    def find(self, connector: str, tests: Mapping[str, Mapping[str, Any]],
             globs: Sequence[str] | None = None, fresh: bool = False,
             allow: Sequence[str] = ()) -> ProbeResult | None:
        """Return the first unclaimed port whose device passes ``tests``, claiming it.

        Connectors starting together share one scan (ports are probed once);
        ``fresh`` forces a new scan (a device that disappeared is searched again).
        ``allow`` (the connector's ``allowed_ports``) limits the ports ever opened.
        """
        with self._lock:
            paths = [p for p in candidate_ports([*(globs or self.globs), *self.extra_globs])
                     if self.claims.get(os.path.realpath(p), connector) == connector
                     and allowed(p, allow)]
            for result in self._results(paths, fresh, allow):
                if result.snapshot is not None and matches(result.snapshot, tests):
                    self.claims[os.path.realpath(result.path)] = connector
                    return result
        return None

    def _results(self, paths: list[str], fresh: bool,
                 allow: Sequence[str] = ()) -> list[ProbeResult]:
        """Return probe results for ``paths``, reusing a recent scan where possible."""
        recent = not fresh and time.monotonic() - self._last_at < self.reuse_for
        missing = [p for p in paths if not (recent and p in self._last)]
        if missing:
            for result in scan(missing, self.timeout, self.clock, allow):
                self._last[result.path] = result
            self._last_at = time.monotonic()
        return [self._last[p] for p in paths]

    def explain(self, connector: str, tests: Mapping[str, Mapping[str, Any]],
                globs: Sequence[str] | None = None, allow: Sequence[str] = ()) -> str:
        """Return one line: the ports probed, what each showed, what is expected, what to try.

        Said when a connector's search finds nothing (the last scan's results, no new probe).
        """
        patterns = (*(globs or self.globs), *self.extra_globs)
        with self._lock:
            paths = [p for p in candidate_ports(patterns) if allowed(p, allow)]
            shown = [f"{p}: " + port_verdict(self._last[p], tests, self._owner(p, connector))
                     for p in paths if p in self._last]
        wanted = f"no device with {expected_device(tests)} found"
        if not paths:
            probed = "no serial port matches " + " ".join(patterns) + (
                f" within allowed_ports {' '.join(allow)}" if allow else "")
        else:
            probed = f"{len(paths)} port(s) probed: " + "; ".join(shown or paths)
        return f"{wanted}; {probed}. Next: {NEXT_STEPS}"

    def _owner(self, path: str, connector: str) -> str | None:
        owner = self.claims.get(os.path.realpath(path))
        return owner if owner not in (None, connector) else None

    def claim(self, connector: str, path: str) -> None:
        """Mark ``path`` as used by ``connector`` (a fixed serialPort)."""
        with self._lock:
            self.claims[os.path.realpath(path)] = connector

    def release(self, connector: str) -> None:
        """Forget every port claimed by ``connector``."""
        with self._lock:
            for real in [r for r, c in self.claims.items() if c == connector]:
                del self.claims[real]
