"""The ``vemonitor`` command's entry point: a single run never keeps Hydra in memory.

A daemon on a Raspberry Pi runs for months, so what it keeps loaded matters.
Hydra, its override grammar and the composed config tree take several MB
(docs/performance.md) and are needed for a fraction of a second at start-up. So a
single run composes its configuration in a short-lived child process
(``os.fork``): the child imports Hydra, composes and resolves the configuration
(the seed's legacy files included) and hands back plain data through a pipe; the
daemon itself never imports Hydra. While the child composes, the parent imports
the engine and the integrations, so on two cores the split costs no start-up time.

Everything else (``--cfg``, ``--help``, ``-m`` multirun, ``scan``,
``integrations``) is Hydra's own or a short command and runs in-process
(:func:`vemonitor.cli.main`). Where ``os.fork`` does not exist, the
configuration is composed in-process.
"""

from __future__ import annotations

import logging.config
import os
import pickle
import sys
import traceback
from collections.abc import Sequence
from typing import Any

SUBCOMMAND_NAMES = ("scan", "integrations", "report")
HYDRA_ONLY_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc",
                    "--multirun", "-m")
CONFIG_FLAGS = ("--cfg", "-c")


class ComposeError(Exception):
    """The configuration could not be composed; the message is the one line to print."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (``sys.argv`` by default); exit with its status."""
    args = list(sys.argv[1:] if argv is None else argv)
    __import__("vemonitor.cli_strict").cli_strict.screen(args)  # --version, help, mistakes
    if not single_run(args):
        from vemonitor.cli import main as in_process

        in_process(args)
        return
    from vemonitor.config.errors import ConfigError

    try:
        composed = compose_isolated(args)
        from vemonitor.job import prepare_run

        spec, registry = prepare_run(composed["container"], composed["origins"])
    except KeyboardInterrupt:  # Ctrl-C during start-up: nothing started, nothing to say
        sys.exit(130)
    except (ComposeError, ConfigError) as err:
        __import__("vemonitor.cli_strict").cli_strict.blame_command_line(err, args)
        print(f"vemonitor: config error: {err}", file=sys.stderr)
        sys.exit(2)
    from vemonitor.job import execute

    logging.config.dictConfig(composed["logging"])
    execute(spec, registry)


def single_run(args: list[str]) -> bool:
    """Return True for a plain run of one block (no subcommand, no Hydra-only flag)."""
    if args and args[0] in SUBCOMMAND_NAMES:
        return False
    return not (any(arg in HYDRA_ONLY_FLAGS for arg in args) or has_flag(args, *CONFIG_FLAGS))


def has_flag(args: list[str], *flags: str) -> bool:
    """Return True when one of ``flags`` is given (``--cfg job`` or ``--cfg=job``)."""
    return any(arg in flags or arg.startswith(tuple(f"{flag}=" for flag in flags))
               for arg in args)


def compose_isolated(args: list[str]) -> dict[str, Any]:
    """Return the composed run (container, origins, logging) from a child process."""
    if not hasattr(os, "fork"):
        return _unwrap(compose_payload(args))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compose, send, exit without running the parent's cleanup
        os.close(read_fd)
        _child(args, write_fd)
    os.close(write_fd)
    _warm_up()
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ComposeError(f"composing the configuration failed (child exit status "
                           f"{os.waitstatus_to_exitcode(status)})")
    return _unwrap(pickle.loads(data))


def compose_payload(args: list[str]) -> dict[str, Any]:
    """Compose and resolve the configuration with Hydra; return plain data or the error line."""
    from vemonitor import cli
    from vemonitor.config.errors import ConfigError

    cli.register_resolvers()
    cli.register_schema()
    try:
        prepared = cli.prepare(args)
        cfg, logging_config = cli.compose_job(prepared)
        return {"container": cli.resolved(cfg, prepared.origins), "origins": prepared.origins,
                "logging": logging_config}
    except ConfigError as err:
        __import__("vemonitor.cli_strict").cli_strict.blame_command_line(err, args)
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


def _warm_up() -> None:
    """Import what the run needs while the child composes (in parallel on a second core)."""
    import vemonitor.engine  # noqa: F401
    import vemonitor.job  # noqa: F401


def _unwrap(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the payload, or raise its error line."""
    if "error" in payload:
        raise ComposeError(str(payload["error"]))
    return payload
