"""The command line's vocabulary, in one place: its subcommands and its flags.

``vemonitor.cli`` dispatches with these tables and ``vemonitor.cli_strict`` checks a
command line against them, so a new subcommand or flag is added here once.
"""

from __future__ import annotations

from collections.abc import Callable


def _scan(args: list[str]) -> int:
    from vemonitor.commands import scan_command

    return scan_command(args)


def _integrations(args: list[str]) -> int:
    from vemonitor.commands import integrations_command

    return integrations_command(args)


def _report(args: list[str]) -> int:
    from vemonitor.report import report_command

    return report_command(args)


def _hex(args: list[str]) -> int:
    from vemonitor.hex_cli import hex_command

    return hex_command(args)


def _history(args: list[str]) -> int:
    from vemonitor.history_cli import history_command

    return history_command(args)


# Subcommand -> what runs it (argv after the subcommand -> exit status). Imported lazily:
# `vemonitor report` need not load the serial stack, nor a run the report's.
SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "scan": _scan,
    "integrations": _integrations,
    "report": _report,
    "hex": _hex,
    "history": _history,
}

# Every flag vemonitor accepts, and whether it takes a value (Hydra's flags, and the
# seed's --block/--debug).
FLAGS: dict[str, bool] = {
    "--help": False, "-h": False, "--hydra-help": False, "--version": False,
    "--cfg": True, "-c": True, "--resolve": False, "--package": True, "-p": True,
    "--info": False, "-i": False, "--multirun": False, "-m": False, "--run": False,
    "-r": False, "--shell-completion": False, "-sc": False, "--config-path": True,
    "-cp": True, "--config-name": True, "-cn": True, "--config-dir": True, "-cd": True,
    "--experimental-rerun": True, "--block": True, "--debug": False,
}
# Flags whose value is optional, and the values they take (Hydra's `--info [TOPIC]`).
INFO_TOPICS = frozenset({"all", "config", "defaults", "defaults-tree", "plugins",
                         "searchpath"})
OPTIONAL_VALUES: dict[str, frozenset[str]] = {"--info": INFO_TOPICS, "-i": INFO_TOPICS}
# Flags only Hydra's own runner answers (help, info, completion, sweeps), and the flags
# that print the configuration (answered in-process, secrets masked).
HYDRA_ONLY_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc",
                    "--multirun", "-m")
CONFIG_FLAGS = ("--cfg", "-c")


def has_flag(args: list[str], *flags: str) -> bool:
    """Return True when one of ``flags`` is given (``--cfg job`` or ``--cfg=job``)."""
    return any(arg in flags or arg.startswith(tuple(f"{flag}=" for flag in flags))
               for arg in args)
