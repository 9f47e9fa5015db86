"""The exit statuses of ``vemonitor`` (documented in docs/operations.md).

======  ===========================================================  ==================
status  meaning                                                      systemd unit
======  ===========================================================  ==================
0       the run ended as asked (duration, SIGINT/SIGTERM)            no restart
1       a bug: an unexpected exception (traceback on stderr)         restarts
2       a configuration mistake (file, key, what), including a       no restart
        state_dir held by another daemon and a YAML bomb             (RestartPrevent...)
3       the state directory or disk cannot be used (disk full,       restarts (the disk
        read-only, outbox cannot be created, summary.json unwritable) may be freed)
130     interrupted during start-up (Ctrl-C)                         -
======  ===========================================================  ==================

These are a run's statuses. The tool subcommands (``scan``, ``hex``, ``history``,
``report``) use 0 = answered, 1 = the device or store gave no answer (one line, not a
bug), 2 = a usage mistake; docs/operations.md says the same.
"""

from __future__ import annotations

import errno

OK = 0
BUG = 1
CONFIG = 2
STATE = 3
INTERRUPTED = 130


def describe_disk_error(err: BaseException) -> str:
    """Return one line for a disk or state-directory failure (no traceback)."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        where = f" ({err.filename})" if err.filename else ""
        return f"disk full{where}: free some space; nothing is lost from outboxes already written"
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror or err}"
    return str(err)
