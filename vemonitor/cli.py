"""The ``vemonitor`` command: every run begins in :func:`main`.

* ``vemonitor`` runs the ``Demo`` block (simulated devices, local store).
* ``vemonitor block=BatteryMonitor debug=true`` runs a shipped block.
* ``vemonitor --block NAME --debug`` (the seed's command line) and
  ``vemonitor block=NAME config_dir=DIR`` run a block of a legacy ``vm_conf.yaml``.
* ``vemonitor -m block=BatteryMonitor duration=30 block.outputs.sqlite.store.cache_interval=1,5,10``
  sweeps settings, one job after another, each printing its summary.
* ``vemonitor scan`` lists serial ports and the device found on each;
  ``vemonitor integrations`` lists the integrations found; ``vemonitor report`` writes
  the local store's report.

This module classifies the arguments (:func:`single_run`, with the subcommand and flag
tables of :mod:`vemonitor.commandline`, which :mod:`vemonitor.cli_strict` checks first)
and owns the one place a configuration mistake becomes one line and exit status 2
(:func:`exit_config_error`). The layers below it: :mod:`vemonitor.compose`
(Hydra) -> :mod:`vemonitor.job` (validate, run, summarise) -> :mod:`vemonitor.engine`.

A daemon on a Raspberry Pi runs for months, so what it keeps loaded matters.
Hydra, its override grammar and the composed config tree take several MB
(docs/performance.md) and are needed for a fraction of a second at start-up. So the
``vemonitor`` command composes its configuration with Hydra, builds the run, writes it
(pickled) to a memory file and ``exec``s its own command line again: the new image reads
the run and never imports Hydra, and only one image exists at a time, so the start-up
peak is no higher than the daemon's steady RSS (:func:`_compose_then_exec`; Linux).
Where that is not available, or when :func:`main` is called with arguments (tests,
embedding), a single run composes in a short-lived child process
(``os.fork``): the child imports Hydra, composes and resolves the configuration
(the seed's legacy files included) and hands back plain data through a pipe; the
daemon itself never imports Hydra. The parent waits for the child before it imports
the engine and the integrations, so while the child composes the parent holds only its
light pre-fork imports (the tree's peak on the original's Redis sample: about 46 MiB
instead of 60 with the two overlapping; docs/performance.md). The parent forks light:
the command line's keys are checked in the child too (:func:`compose_payload`), so
neither omegaconf nor ``importlib.metadata`` is loaded in the daemon before the fork.
Where ``os.fork`` does not exist, the configuration is composed in-process.

Everything else (``--cfg``, ``--help``, ``-m`` multirun) is Hydra's own and runs
in-process; each ``-m`` job is validated exactly as a single run
(:func:`vemonitor.job.prepare_run`).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from vemonitor import exits
from vemonitor.commandline import CONFIG_FLAGS, HYDRA_ONLY_FLAGS, SUBCOMMANDS, has_flag
from vemonitor.errors import ConfigError, IntegrationError


class ComposeError(ConfigError):
    """The configuration could not be composed; the message is the one line to print."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (``sys.argv`` by default); exit with its status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None and PREPARED_FD in os.environ:  # re-executed after composing: run it
        _install_stop_signals()  # exec put the default handlers back
        _single(args, _receive_prepared())
        return
    from vemonitor.cli_strict import screen

    single = single_run(args)
    # --version, help, and mistakes answered before anything starts; a single run's keys
    # are checked in its configuration child (compose_payload), not in the daemon.
    screen(args, check_keys=not single)
    if args and args[0] in SUBCOMMANDS:
        sys.exit(SUBCOMMANDS[args[0]](args[1:]))
    _install_stop_signals()
    if single:
        composed = _compose_then_exec(args) if argv is None and hasattr(os, "memfd_create") \
            else None  # returns only when the run could not be handed over (then: here)
        _single(args, composed)
    else:
        _with_hydra(args)


def exit_config_error(err: BaseException, args: Sequence[str] | None = None) -> NoReturn:
    """Print a configuration mistake as one line on stderr and exit with status 2.

    The line names the command line when the key was set there; secrets are masked (a
    value typed on the command line is never echoed back). Every path ends here: a
    single run, a ``-m`` job, ``--cfg``.
    """
    from vemonitor.cli_strict import blame_command_line
    from vemonitor.secretpolicy import scrub

    given = list(sys.argv[1:] if args is None else args)
    blame_command_line(err, given)
    text = scrub(str(err), given)
    print(f"vemonitor: config error: {text}", file=sys.stderr)
    sys.exit(exits.CONFIG)


def exit_state_error(err: BaseException) -> NoReturn:
    """Print a disk or state-directory failure as one line and exit with status 3."""
    print(f"vemonitor: {exits.describe_disk_error(err)}", file=sys.stderr)
    sys.exit(exits.STATE)


def _install_stop_signals() -> None:
    """From here a SIGINT/SIGTERM is recorded, and acted on (vemonitor.stopsignals)."""
    from vemonitor import stopsignals

    stopsignals.install()


def exit_if_stopped() -> None:
    """End a start-up that a SIGINT/SIGTERM interrupted: nothing started, one line.

    Exit status 0 for SIGTERM (``systemctl stop`` asked for it: no restart, no failed
    unit), 130 for Ctrl-C (the shell's convention); docs/operations.md.
    """
    from vemonitor import stopsignals

    signum = stopsignals.requested()
    if signum is None:
        return
    print(f"vemonitor: stopped during start-up ({stopsignals.name(signum)}); nothing started",
          file=sys.stderr, flush=True)
    sys.exit(exits.INTERRUPTED if signum == signal.SIGINT else exits.OK)


def execute_job(spec: Any, registry: Any, args: Sequence[str]) -> None:
    """Run a validated job; a mistake found only now or a disk failure is one line."""
    from vemonitor.job import execute
    from vemonitor.outbox import OutboxError

    exit_if_stopped()
    try:
        execute(spec, registry)
    except (ConfigError, IntegrationError) as err:
        exit_config_error(err, args)
    except (OutboxError, OSError) as err:
        exit_state_error(err)


def single_run(args: list[str]) -> bool:
    """Return True for a plain run of one block (no subcommand, no Hydra-only flag)."""
    if args and args[0] in SUBCOMMANDS:
        return False
    return not (any(arg in HYDRA_ONLY_FLAGS for arg in args) or has_flag(args, *CONFIG_FLAGS))


# ------------------------------------------------------------------ a single run
def _single(args: list[str], composed: dict[str, Any] | None = None) -> None:
    """Compose and validate in a child (or take what was composed before the exec), then run
    the job in this (Hydra-free) process."""
    try:
        composed = composed or compose_isolated(args)
        spec, registry = composed["prepared"]
        from vemonitor.job import check_wiring

        check_wiring(spec, registry)
    except KeyboardInterrupt:  # Ctrl-C during start-up: nothing started, nothing to say
        sys.exit(exits.INTERRUPTED)
    except (ConfigError, IntegrationError) as err:
        exit_if_stopped()  # a signal during start-up wins over what it interrupted
        exit_config_error(err, args)
    exit_if_stopped()
    from vemonitor.secretpolicy import remember

    for value in composed.get("env_secrets", ()):
        remember(value)  # read from the environment in the child: masked in this process too
    import logging.config  # here, not at the top: what the daemon imports before the fork
    # is counted twice in the start-up peak (its pages are in the child's RSS too)

    logging.config.dictConfig(composed["logging"])
    try:
        execute_job(spec, registry, args)
    finally:
        from vemonitor import stopsignals

        stopsignals.hold_from_now()  # a signal after the summary changes nothing


PREPARED_FD = "VEMONITOR_PREPARED_FD"  # the re-executed daemon reads its run from this fd


def _compose_then_exec(args: list[str]) -> dict[str, Any]:
    """Compose and build the run in this process, then replace it with a fresh interpreter.

    The command itself (``vemonitor ...``, ``python -m vemonitor ...``) composes with Hydra,
    writes the pickled result to a memory file and ``exec``s its own command line again;
    the new image reads the run from that file and never imports Hydra. One process at a
    time: the start-up peak is the larger of the two images, not a parent's and a child's
    sum (docs/performance.md), and the daemon keeps its PID (systemd, supervisors).
    Only for the real command line (``main()`` without arguments) and where
    ``os.memfd_create`` exists (Linux); elsewhere the child process composes. Returns the
    composed run only when it cannot be handed over (the memory file cannot be written,
    e.g. under a file size limit): the run then goes on in this image, Hydra loaded.
    """
    try:
        payload = compose_payload(args)
        _unwrap(payload)  # a mistake: one line and exit 2 here, before any exec
    except KeyboardInterrupt:  # Ctrl-C during start-up: nothing started, nothing to say
        sys.exit(exits.INTERRUPTED)
    except (ConfigError, IntegrationError) as err:
        exit_config_error(err, args)
    # A signal recorded while composing dies with this image: act on it before the exec.
    exit_if_stopped()
    try:
        fd = os.memfd_create("vemonitor-run")
        with os.fdopen(os.dup(fd), "wb") as out:
            pickle.dump(payload, out)
    except OSError:  # no room for it (a file size limit, no memory): run in this image
        return payload
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
                  dict(os.environ, **{PREPARED_FD: str(fd)}))
    except OSError:  # the interpreter cannot be started again: run in this image
        os.close(fd)
    return payload


def _receive_prepared() -> dict[str, Any]:
    """Return the run the previous image composed (and forget the fd and its variable)."""
    fd = int(os.environ.pop(PREPARED_FD))
    with os.fdopen(fd, "rb") as source:
        return _unwrap(pickle.load(source))


def compose_isolated(args: list[str]) -> dict[str, Any]:
    """Return the composed run (container, origins, logging) from a child process."""
    if not hasattr(os, "fork"):
        return _unwrap(compose_payload(args))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compose, send, exit without running the parent's cleanup
        os.close(read_fd)
        from vemonitor import stopsignals

        stopsignals.reset_in_child()
        _child(args, write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ComposeError(f"composing the configuration failed (child exit status "
                           f"{os.waitstatus_to_exitcode(status)})")
    return _unwrap(pickle.loads(data))


def compose_payload(args: list[str]) -> dict[str, Any]:
    """Compose, resolve and validate the configuration; return the run or the error line.

    ``prepared`` is :func:`vemonitor.job.prepare_spec`'s (RunSpec, Registry): built and
    checked in the child, the daemon receives it pickled, so the schemas' checker
    (omegaconf) stays out of the daemon; the daemon then checks the wiring
    (:func:`vemonitor.job.check_wiring`) before anything starts.

    The command line's flags and keys are checked first (``usage``: exit status 2, as
    :func:`vemonitor.cli_strict.screen` does for every other command).
    """
    from vemonitor.cli_strict import usage_problem

    problem = usage_problem(args)
    if problem is not None:
        return {"usage": problem}
    from vemonitor.compose import compose_run
    from vemonitor.job import prepare_spec

    try:
        payload = compose_run(args)
        payload["prepared"] = prepare_spec(payload["container"], payload["origins"])
        return payload
    except (ConfigError, IntegrationError) as err:
        from vemonitor.cli_strict import blame_command_line

        blame_command_line(err, args)
        return {"error": str(err)}


def _child(args: list[str], write_fd: int) -> None:
    """Run in the forked child: write the pickled payload to the pipe, then ``os._exit``."""
    status = 0
    try:
        payload = compose_payload(args)
        with os.fdopen(write_fd, "wb") as pipe:
            pickle.dump(payload, pipe)
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C, or the parent is gone: quietly
        status = 130
    except BaseException:  # a bug, not a user mistake: show it, and the parent says it failed
        traceback.print_exc()
        status = 1
    finally:
        sys.stderr.flush()
        os._exit(status)


def _unwrap(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the payload, or raise its error line (a command-line mistake: exit 2 here)."""
    if "usage" in payload:
        from vemonitor.cli_strict import fail

        fail(str(payload["usage"]))
    if "error" in payload:
        raise ComposeError(str(payload["error"]))
    return payload


# ------------------------------------------------------- Hydra's own (in-process)
def _with_hydra(args: list[str]) -> None:
    """Answer ``--cfg`` (secrets redacted), or hand the command line to Hydra's runner."""
    from vemonitor import compose

    try:
        compose.register_resolvers()
        compose.register_schema()
        prepared = compose.prepare(args)
        if has_flag(prepared.argv, *CONFIG_FLAGS):
            sys.exit(compose.print_config(prepared))
    except (ConfigError, IntegrationError) as err:
        exit_config_error(err, args)
    from vemonitor.secretpolicy import ConfigPrintFilter

    logging.getLogger("hydra._internal.hydra").addFilter(ConfigPrintFilter())  # --info config
    compose.run_hydra(prepared, run_job)


def run_job(cfg: Any, origins: dict[str, str]) -> None:
    """Run one job Hydra composed (a ``-m`` sweep's): validated exactly like a single run."""
    from vemonitor.compose import resolved
    from vemonitor.job import prepare_run
    from vemonitor.secretpolicy import protect_sweep

    protect_sweep()  # multirun.yaml: secrets masked, mode 0600
    try:
        spec, registry = prepare_run(resolved(cfg, origins), origins)
    except (ConfigError, IntegrationError) as err:
        exit_config_error(err)
    execute_job(spec, registry, sys.argv[1:])


def preflight(prepared: Any) -> tuple[Any, Any]:
    """Compose a prepared command line in this process and validate it completely: the run
    and the registry, or a ConfigError naming the mistake (what a single run checks)."""
    from vemonitor.compose import compose_config, resolved
    from vemonitor.job import prepare_run

    return prepare_run(resolved(compose_config(prepared), prepared.origins), prepared.origins)
