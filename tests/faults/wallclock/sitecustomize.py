"""A faketime for Python: steps ``time.time()`` of a whole process, as ``date -s`` would.

Put this folder first on PYTHONPATH and name a file in VEMONITOR_TEST_WALL_OFFSET: the
process's ``time.time()`` (and ``time.time_ns()``) then returns the real wall time plus
the number of seconds written in that file, read every 50 ms by a daemon thread (a
re-executed process reads it again: PYTHONPATH and the variable are inherited).
``time.monotonic()`` is left alone, as the kernel leaves CLOCK_MONOTONIC alone when
the wall clock is set. Used by tests/faults/test_issue25_clock_steps.py; libfaketime
would do the same from C, but it is not installed everywhere the suite runs.
"""

from __future__ import annotations

import os
import threading
import time

_PATH = os.environ.get("VEMONITOR_TEST_WALL_OFFSET")
if _PATH:
    _real_time, _real_time_ns = time.time, time.time_ns
    _offset = [0.0]

    def _read() -> None:
        """Take the offset written in the file; keep the last one if the file is being
        written (the test replaces it whole, but an empty read must never mean 0)."""
        try:
            with open(_PATH, encoding="ascii") as file:
                text = file.read().strip()
            if text:
                _offset[0] = float(text)
        except (OSError, ValueError):
            pass

    def _follow() -> None:
        while True:
            _read()
            time.sleep(0.05)

    def _time() -> float:
        return _real_time() + _offset[0]

    def _time_ns() -> int:
        return _real_time_ns() + int(_offset[0] * 1e9)

    _read()
    time.time, time.time_ns = _time, _time_ns  # type: ignore[assignment]
    threading.Thread(target=_follow, name="wall-offset", daemon=True).start()
