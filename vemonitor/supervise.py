"""Thread supervision: a component's loop never dies silently.

Every long-lived thread of the daemon (a sender per output, a reader per serial
port, a source's watcher) runs its loop through :func:`supervised`. An
unexpected exception (a bug, or data nobody foresaw) is

* logged ONCE per kind of failure, as one ERROR line naming the thread and the
  error, with the traceback only at DEBUG level (journald stays readable);
* counted in :data:`RESTARTS` (summary.json ``thread_restarts`` and the metric
  ``vemonitor_thread_restarts_total{thread=...}``);
* followed by a restart of the loop after a capped exponential backoff, so a
  failure that repeats cannot spin a core.

Decision (like emonhub's interfacer supervisor, and systemd's ``Restart=``): the
process never runs on with a dead thread. A loop that returns normally has
finished (its stop was asked); one that raises is restarted until ``stop`` is
set. Only ``BaseException`` that is not an ``Exception`` (SystemExit from a
library, KeyboardInterrupt) ends the thread, and then :data:`FATAL` is set and
the engine stops the whole run (exit status 1, the service manager restarts it).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)

RESTARTS: Counter[str] = Counter()  # thread name -> restarts after an unexpected exception
FATAL = threading.Event()  # set when a supervised thread ended for good (the run must stop)
_LOCK = threading.Lock()

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


def backoff(restarts: int) -> float:
    """Return the real seconds to wait before restart number ``restarts`` (1-based)."""
    return float(min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** min(max(restarts - 1, 0), 16)))


def supervised(name: str, loop: Callable[[], None], stop: threading.Event,
               context: Callable[[], str] | None = None) -> Callable[[], None]:
    """Return a thread target running ``loop`` until it returns, restarting it on exceptions.

    ``context`` returns a short description of what the component was doing
    (a port, an outbox batch), added to the one ERROR line.
    """

    def target() -> None:
        said: set[str] = set()
        restarts = 0
        while True:
            try:
                loop()
                return
            except Exception as err:  # the point of a supervisor: nothing kills the component
                restarts += 1
                with _LOCK:
                    RESTARTS[name] += 1
                kind = type(err).__name__
                if kind not in said:
                    said.add(kind)
                    where = f" ({context()})" if context is not None else ""
                    log.error("thread %s crashed%s: %s: %s; restarting it (further %s "
                              "failures counted, not logged)", name, where, kind,
                              _first_line(err), kind)
                log.debug("thread %s traceback", name, exc_info=True)
                if stop.wait(backoff(restarts)):
                    return
            except BaseException:
                FATAL.set()
                raise

    return target


def restarts() -> dict[str, int]:
    """Return a copy of the restart counts by thread name."""
    with _LOCK:
        return dict(RESTARTS)


def _first_line(err: BaseException) -> str:
    text = str(err)
    return (text.splitlines() or [""])[0][:200]
