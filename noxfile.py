"""nox sessions: tests, lint, typecheck, bench (run `nox -l` to list)."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (needs redis-server and mosquitto on PATH for the server tests)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff on the project."""
    session.install("ruff")
    session.run("ruff", "check", "vemonitor", "hw_sim", "integrations", "tests", "benchmarks")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy (strict) on the core package."""
    session.install("-e", ".", "mypy", "types-requests")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks: decoder throughput against the PyPI peers, and the daemon's cost."""
    session.install("-e", ".[bench,test]")
    session.run("python", "benchmarks/bench_decoder.py", *session.posargs)
    session.run("python", "benchmarks/bench_delivery.py")
    session.run("python", "benchmarks/bench_daemon.py", "--write-doc")


HA_PYTEST_ARGS = (
    "tests/homeassistant",
    # Home Assistant's fixtures are async: pytest-asyncio must run in auto mode.
    "-o", "asyncio_mode=auto",
    "-o", "asyncio_default_fixture_loop_scope=function",
    "-p", "no:sugar",
)


@nox.session(python="3.13")
def homeassistant(session: nox.Session) -> None:
    """Run the native Home Assistant integration tests (HA 2025.4.4 needs Python 3.13).

    Not a default session: installing Home Assistant takes 3.5 to 6 minutes.
    """
    # No `-e .`: the tests run the bundle, as Home Assistant has no vemonitor distribution.
    session.install("-r", "integrations/homeassistant/requirements_test.txt",
                    "pyserial==3.5", "hypothesis", "pytest-timeout")
    session.run("pytest", *HA_PYTEST_ARGS, *session.posargs)
    # The core must keep working on 3.13 too: its codec tests, in the same interpreter.
    session.run("pytest", "-q", "tests/vedirect", env={"PYTHONPATH": str(Path.cwd())})
