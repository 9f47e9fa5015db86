"""Run the suite in parallel by default: pytest-xdist with WORKERS workers, when installed.

Loaded by ``-p tests.parallel`` in pyproject's addopts, so ``python -m pytest`` (the README's
command) runs in parallel without any option. Why a plugin rather than ``-n`` in addopts: the
Home Assistant test venvs (.ci/run) install only their own requirements, without xdist, and an
unknown ``-n`` would stop their runs; here the option is added only where xdist is importable.

Why more workers than cores: most tests wait on real time (a device's one-second frames, a
server's start, a reconnect delay), not on the CPU, so extra workers overlap the waits. Each
worker starts its own servers on ports reserved for it (tests/servers.py, ``free_port``), and a
session-scoped fixture is one per worker.

The default is left alone when the command line says how to run: ``-n``/``--numprocesses``/
``--dist``, ``-p no:xdist``, a debugger (``--pdb``, ``--trace``), or ``VEMONITOR_TEST_WORKERS=0``
(any other number there sets the count).
"""

from __future__ import annotations

import copy
import fcntl
import importlib.util
import os
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

WORKERS = 6  # measured on the 2-core machine under load (docs/performance.md, "The test suite")
ENV_WORKERS = "VEMONITOR_TEST_WORKERS"
# Options that mean "the user decides how to run": the default is not added.
USER_CHOICES = ("-n", "--numprocesses", "--dist", "--pdb", "--trace", "--collect-only",
                "--co", "--setup-plan")


def _user_decides(args: list[str]) -> bool:
    """Return whether the command line already says how to run (or asks for one process)."""
    for index, arg in enumerate(args):
        if arg.split("=", 1)[0] in USER_CHOICES or (arg.startswith("-n") and arg[2:].isdigit()):
            return True
        if arg == "-p" and index + 1 < len(args) and args[index + 1] == "no:xdist":
            return True
        if arg == "-pno:xdist":
            return True
    return False


def workers() -> int:
    """Return the number of workers: VEMONITOR_TEST_WORKERS when set, else WORKERS."""
    value = os.environ.get(ENV_WORKERS, "").strip()
    return int(value) if value.isdigit() else WORKERS


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> Generator[None, None, None]:
    """Add ``-n WORKERS --dist worksteal`` to the command line unless one of the above holds.

    A wrapper, so this runs before every plugin's own hook: pytest-cov, for one, decides
    there whether the run is distributed, from ``early_config.known_args_namespace``,
    which is therefore parsed again with the added options.
    """
    if _parallel_by_default(args):
        # worksteal: an idle worker takes queued tests from a busy one, so a few long
        # tests do not leave the others idle at the end.
        args[:0] = ["-n", str(workers()), "--dist", "worksteal"]
        early_config.known_args_namespace = parser.parse_known_args(
            args, namespace=copy.copy(early_config.known_args_namespace))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None,
                            ) -> Generator[None, None, None]:
    """Run the tests marked ``cpu_heavy`` one at a time across the run's workers.

    They run simulated devices hundreds of times faster than real time and need about
    half a core each to keep up: two at once on two shared cores missed device cycles,
    and rows. (xdist's own ``xdist_group`` does not hold with pytest 9's node ids.) A
    worker holds an exclusive lock on a file of this run while it runs one; another
    waits for it. Outside a parallel run there is nothing to wait for.
    """
    del nextitem
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None or item.get_closest_marker("cpu_heavy") is None:
        yield
        return
    lock = Path(tempfile.gettempdir()) / f"vemonitor-cpu-heavy-{run}.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes (or we die)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    # The file stays (a few bytes in the temp dir): removing it while another worker
    # waits on it would let a third lock a new file and run beside the second.


@pytest.hookimpl(trylast=True)  # after conftests that add the marker themselves
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests marked ``cpu_heavy`` first, in their collection order.

    They run one at a time (above), so together they are the run's longest chain: about
    half the wall time under load (docs/performance.md, "The test suite"). worksteal hands
    each worker a contiguous slice of the collection at the start and idle workers steal
    from the end of a busy one's queue; first in the collection, the chain starts at once
    on one worker (no lock waits) while the others take the rest, instead of starting
    wherever its files sort and ending after everything else. The order changes nothing
    else: every test starts its own servers or uses its worker's.
    """
    items.sort(key=lambda item: item.get_closest_marker("cpu_heavy") is None)  # stable


def _parallel_by_default(args: list[str]) -> bool:
    """Return whether to add the default: xdist installed, not a worker, nothing chosen."""
    if os.environ.get("PYTEST_XDIST_WORKER") or importlib.util.find_spec("xdist") is None:
        return False  # a worker itself, or a venv without xdist
    return not _user_decides(args) and workers() >= 2
