"""SIGINT and SIGTERM: the handler only records the signal; the run acts on it.

Why: a Python signal handler runs in the main thread *between two bytecodes* of
whatever that thread was doing. If the handler takes a lock that the main thread
already holds at that moment, the process deadlocks for ever. ``Event.set()``
takes the event's condition lock, and the main thread spends its life inside
``Event.wait()`` on that very event, so a handler calling ``engine.stop()`` hung a
daemon at stop (issue 25, point 8). So:

* :func:`install` sets a handler that appends the signal number to a list
  (``list.append`` is one atomic step under the GIL; no lock) and lets CPython's
  C-level wake-up fd (``signal.set_wakeup_fd``) write one byte to a pipe; nothing
  else happens inside the handler.
* :func:`watching` runs a small thread blocked on that pipe. When a byte arrives
  (the signal's number, written by CPython's C-level handler at once, while the
  Python-level one waits for the main thread) it calls ``stop()`` from *its own*
  thread, where taking a lock is safe, and the engine's main loop wakes up and
  does the ordered shutdown itself.
* A signal that arrives during start-up (composing and validating the
  configuration, before the engine runs) is only recorded; the start-up checks
  :func:`requested` at its checkpoints and ends without starting anything
  (``vemonitor.cli``: exit 0 for SIGTERM, 130 for Ctrl-C).

A signal before :func:`install` (the interpreter's own start, a fraction of a
second) ends the process by the signal's default action: nothing has started,
and systemd counts a SIGTERM death as a clean stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
log = logging.getLogger("vemonitor")

_received: list[int] = []  # appended by the handler only (atomic; no lock)
_pipe: tuple[int, int] | None = None  # (read end, write end) of the wake-up pipe


def _record(signum: int, _frame: object) -> None:
    """The handler: record the signal and return (the wake-up fd byte is written by C)."""
    _received.append(signum)


def install() -> None:
    """Record SIGINT/SIGTERM from now on (main thread only; idempotent)."""
    global _pipe
    if threading.current_thread() is not threading.main_thread():
        return
    if _pipe is None:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # a full pipe drops the byte, never blocks C code
        _pipe = (read_end, write_end)
    signal.set_wakeup_fd(_pipe[1], warn_on_full_buffer=False)
    for sig in SIGNALS:
        signal.signal(sig, _record)


def reset_in_child() -> None:
    """In a forked child: default handlers again, and no share of the parent's wake-up pipe."""
    if _pipe is None:
        return
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def hold_from_now() -> None:
    """Block SIGINT/SIGTERM for the rest of this process (its work is done, it exits).

    The interpreter's finalisation puts the default handlers back, so a SIGTERM landing
    after the summary would still kill the process (status -15 instead of 0). A blocked
    signal stays pending and dies with the process.
    """
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, set(SIGNALS))


def requested() -> int | None:
    """Return the first signal received since :func:`install`, or None."""
    return _received[0] if _received else None


def name(signum: int) -> str:
    """Return ``SIGTERM`` for 15 and so on."""
    return signal.Signals(signum).name


@contextlib.contextmanager
def watching(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop()`` from a watcher thread when a signal is (or was already) recorded.

    The watcher ends when the block ends. ``stop`` must be safe from another thread
    (``Engine.stop`` sets two events).
    """
    install()
    if _pipe is None:  # not the main thread: nothing can be recorded here
        yield
        return
    done = threading.Event()
    read_end = _pipe[0]
    wake_r, wake_w = os.pipe()  # to end the watcher when the block ends

    def watch() -> None:
        while not done.is_set():
            signum = requested()
            if signum is not None:
                log.info("stopping (%s)", name(signum))
                stop()
                return
            ready, _, _ = select.select([read_end, wake_r], [], [])
            if read_end in ready:
                # The wake-up fd carries each signal's number (one byte per signal). The
                # Python-level handler runs later, in the main thread, when that thread
                # next runs bytecode (after a long C call, say): the byte is the record
                # this thread must not wait for.
                _received.extend(b for b in os.read(read_end, 512) if b in SIGNALS)

    thread = threading.Thread(target=watch, name="vemonitor-signals", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        os.write(wake_w, b"x")
        thread.join(5.0)
        os.close(wake_r)
        os.close(wake_w)
