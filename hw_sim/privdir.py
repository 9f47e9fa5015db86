"""The simulator's link folder: private, unpredictable, removed on exit (issue 14 item 12).

The default ``simulator.dir`` (resolver ``vm_sim_dir``) is a fresh name
``<tmp>/vemonitor-sim-<random>`` (never the predictable pid). The run creates it
with ``mkdir`` mode 0700, which fails if anybody created that name first, and
removes it at exit. A folder the user named is used as given, but only when it
belongs to us and no one else can write to it (another user could otherwise swap
a link for a path of their choice).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vemonitor.api import ConfigError

PREFIX = "vemonitor-sim-"


@functools.cache
def fresh_name() -> str:
    """Return this process's unpredictable folder name under the temp dir (not created yet).

    Cached: every interpolation of ``${simulator.dir}`` must name the same folder.
    """
    # os.urandom is what secrets.token_hex reads; importing secrets loads hmac/hashlib
    # (OpenSSL libcrypto, ~4 MiB of RSS in every daemon: docs/performance.md).
    return os.path.join(tempfile.gettempdir(), f"{PREFIX}{os.urandom(8).hex()}")


@contextlib.contextmanager
def private_dir(path: str) -> Iterator[str]:
    """Yield a folder only we can write to; remove it after when this run created it."""
    folder = Path(path)
    try:
        folder.mkdir(mode=0o700, parents=False)
        created = True
    except FileExistsError:
        created = False
        _check_owned(folder)
    except OSError as err:
        raise ConfigError(f"cannot create {folder} ({err.strerror or err})",
                          key="simulator.dir") from err
    try:
        yield str(folder)
    finally:
        if created:
            shutil.rmtree(folder, ignore_errors=True)


def check_given(path: str | Path, key: str = "simulator.dir") -> None:
    """Refuse an existing folder that is not ours or that others can write to (ConfigError).

    ``vemonitor-sim --dir`` goes through this too (issue 25): another user could swap a
    ``ttyVE_*`` link in a world-writable folder for a path of their choice.
    """
    folder = Path(path)
    if folder.exists() or folder.is_symlink():
        _check_owned(folder, key)


def _check_owned(folder: Path, key: str = "simulator.dir") -> None:
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{folder} exists and is not a directory", key=key)
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{folder} belongs to another user or others can write to it; "
                          f"use a private folder", key=key)
