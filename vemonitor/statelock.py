"""One daemon per state directory: an exclusive lock on ``<state_dir>/vemonitor.lock``.

Two daemons on one state directory would share outboxes and send each other's
rows (issue 14 item 8). The lock is ``fcntl.flock`` on a file holding the
holder's pid: the kernel releases it when the process dies (even by ``kill -9``),
so a stale lock file never blocks a restart. A second daemon exits with status 2
(a configuration mistake: give each daemon its own ``state_dir``), naming the pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from vemonitor.errors import ConfigError

LOCK_NAME = "vemonitor.lock"


@contextlib.contextmanager
def hold(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's lock for the duration of the block, or raise ConfigError."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ConfigError(f"cannot create the lock file {path} ({err.strerror or err})",
                          key="state_dir") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise ConfigError(f"{state_dir} is in use by another vemonitor (pid {holder}); "
                              f"give each daemon its own state_dir", key="state_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
