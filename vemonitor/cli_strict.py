"""The command line, checked before anything runs: flags, run-level keys, --version, help.

``vemonitor.cli.main`` calls :func:`screen` first. Decisions:

* An unknown flag (``--foo``, ``-v``, ``--dry-run``) or an unknown run-level key, with
  or without Hydra's ``+``/``++``/``~`` (``durration=10``, ``+durration=10``), is one
  line with the closest valid name and exit status 2: it never starts the Demo, never
  scans ports, and Hydra's own hint (``use +durration=10``), which leads to a run that
  ignores the key, is never reached. Common habits from other tools get their
  equivalent (``--dry-run`` -> ``dry_run=true``, ``-v`` -> ``--version``).
* Keys under ``block.``, ``appConnectors.``, ``batteryBanks.`` and ``hydra.`` are the
  schemas' to check (one line naming the key, from the run's validation).
* ``--version`` prints ``vemonitor X.Y.Z``; ``--help`` (and ``vemonitor help``) prints
  the usage, every run-level key with its default and meaning (read from the shipped
  ``conf/config.yaml``, the one place they are set) and the blocks found; Hydra's own
  help stays available as ``--hydra-help``.

Everything here is light (no Hydra import) except the help and error paths, which
end the process. Imports are local where the check needs them: what the daemon loads
before it forks its configuration child counts twice in the start-up peak
(docs/performance.md).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from vemonitor import exits
from vemonitor.commandline import FLAGS, OPTIONAL_VALUES, SUBCOMMANDS
from vemonitor.errors import ConfigError

# Habits from other tools, and what they are here.
HABITS: dict[str, str] = {
    "--dry-run": "dry_run=true", "--dryrun": "dry_run=true", "-n": "dry_run=true",
    "-v": "--version (or debug=true for more output)", "-V": "--version",
    "--verbose": "debug=true", "-d": "debug=true", "--duration": "duration=SECONDS",
    "--state-dir": "state_dir=PATH", "--speed": "speed=N", "--config": "config_dir=PATH",
}
OPEN_ROOTS = ("block", "appConnectors", "batteryBanks", "hydra", "connectors")
KEY = re.compile(r"^(?P<prefix>\+\+|\+|~)?(?P<key>[A-Za-z_][\w.\[\]-]*)(?P<eq>=|$)")


class UsageError(Exception):
    """A command-line mistake: the message is the one line to print."""


def _sections() -> dict[str, type]:
    """Return the run-level sections: metrics, and each installed service's (simulator)."""
    import dataclasses

    from vemonitor.registry import discover_services
    from vemonitor.schema import MetricsConfig

    found: dict[str, type] = {"metrics": MetricsConfig}  # + each service's (the simulator's)
    for key, service in discover_services().items():
        if dataclasses.is_dataclass(service.schema):
            found[key] = service.schema
    return found


def run_level_keys() -> list[str]:
    """Return every run-level key: top-level fields and the fields of each section."""
    import dataclasses

    from vemonitor.schema import VemonitorConfig

    keys: list[str] = []
    sections = _sections()
    for f in dataclasses.fields(VemonitorConfig):
        if f.name in sections:
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(sections[f.name])]
        elif f.name not in OPEN_ROOTS:
            keys.append(f.name)
    for name, section in sections.items():
        if name not in {f.name for f in dataclasses.fields(VemonitorConfig)}:
            keys += [f"{name}.{g.name}" for g in dataclasses.fields(section)]
    return keys


def closest(word: str, choices: Sequence[str]) -> str | None:
    """Return the valid name closest to ``word`` (None when nothing is close)."""
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def check_flag(arg: str) -> None:
    """Raise a UsageError for a flag vemonitor does not have, naming what was meant."""
    name = arg.split("=", 1)[0]
    if name in FLAGS:
        return
    if name in HABITS:
        raise UsageError(f"unknown option {name}: use {HABITS[name]}")
    as_key = name.lstrip("-").replace("-", "_")
    if as_key in run_level_keys():
        raise UsageError(f"unknown option {name}: run-level settings are KEY=VALUE, "
                         f"e.g. {as_key}=...")
    near = closest(name, list(FLAGS))
    hint = f" (did you mean {near}?)" if near else ""
    raise UsageError(f"unknown option {name}{hint}; `vemonitor --help` lists the options "
                     "and keys")


def check_key(arg: str) -> None:
    """Raise a UsageError for an override of a run-level key that does not exist."""
    match = KEY.match(arg)
    if match is None:
        raise UsageError(f"cannot read {arg!r}: expected KEY=VALUE (e.g. duration=60) or "
                         "a flag; `vemonitor --help` lists them")
    key = match["key"]
    if not match["eq"] and match["prefix"] != "~":
        raise UsageError(_positional(key))
    root = key.split(".")[0].split("[")[0]
    if root in OPEN_ROOTS:
        return
    valid = run_level_keys()
    if key in valid:
        return
    near = closest(key, valid)
    hint = f" (did you mean {near}?)" if near else ""
    raise UsageError(f"{key}: unknown key{hint}; run-level keys: {', '.join(valid)}")


def _positional(word: str) -> str:
    """Return the message for a bare word: a block name given without block=, or a typo."""
    near = closest(word, list(SUBCOMMANDS))
    if near:
        return f"unknown command {word!r} (did you mean `vemonitor {near}`?)"
    from vemonitor.compose import hydra_blocks

    blocks = list(hydra_blocks())
    if word in blocks:
        return f"{word!r}: to run that block, give block={word}"
    return (f"cannot read {word!r}: expected KEY=VALUE (e.g. block=BatteryMonitor), a flag "
            f"or a command ({', '.join(SUBCOMMANDS)}); `vemonitor --help` lists them")


def check(args: Sequence[str]) -> None:
    """Raise a UsageError for the first thing on the command line that vemonitor lacks."""
    position = 0
    while position < len(args):
        arg = args[position]
        position += 1
        if arg.startswith("-") and not arg.startswith("--=") and len(arg) > 1:
            check_flag(arg)
            name = arg.split("=", 1)[0]
            if "=" in arg:
                continue
            if FLAGS.get(name, False):
                position += 1  # its value
            elif position < len(args) and args[position] in OPTIONAL_VALUES.get(name, ()):
                position += 1  # `--info config`: the topic
        else:
            check_key(arg)


def blame_command_line(err: BaseException, args: Sequence[str]) -> None:
    """Name the command line first when the wrong key was set there.

    ``+block.outputs.sqlite.store.bogus=1`` is the user's typing, not a line of
    conf/block/BatteryMonitor.yaml: the error sends them to what they typed
    (``command line, over conf/block/BatteryMonitor.yaml: block.outputs...``).
    """
    key = getattr(err, "key", None)
    if not isinstance(err, ConfigError) or not key:
        return
    # block=NAME and connectors=NAME choose a file: what it holds is not the command line's.
    given = [m["key"] for a in args if (m := KEY.match(a)) and m["eq"]
             and m["key"] not in ("block", "connectors")]
    if any(key == k or key.startswith((f"{k}.", f"{k}[")) for k in given):
        # "file: key" stays together: the file whose block the override changes.
        err.file = f"command line, over {err.file}" if err.file else "command line"


# ------------------------------------------------------------------ version and help
def version() -> str:
    """Return 'vemonitor X.Y.Z' (the installed distribution's version)."""
    from importlib import metadata

    try:
        return f"vemonitor {metadata.version('vemonitor')}"
    except metadata.PackageNotFoundError:
        return "vemonitor (not installed: running from a source tree)"


DEFAULT_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>\w+):\s*(?P<value>[^#]*?)\s*(#\s*(?P<doc>.*))?$")


def key_defaults() -> list[tuple[str, str, str]]:
    """Return (key, default, meaning) of each run-level key, from the shipped conf/config.yaml."""
    from importlib import resources

    from vemonitor.config.paths import CONFIG_PACKAGE

    text = (resources.files(CONFIG_PACKAGE) / "config.yaml").read_text(encoding="utf-8")
    out: list[tuple[str, str, str]] = []
    parent = ""
    for line in text.split("\nhydra:", 1)[0].splitlines():
        match = DEFAULT_LINE.match(line)
        if match is None or line.lstrip().startswith(("-", "#")):
            continue
        key, value = match["key"], match["value"]
        if not match["indent"]:
            parent = key if not value else ""
            if value:
                out.append((key, value, match["doc"] or ""))
        elif parent:
            shown = "(per run)" if value.startswith("${") else value
            out.append((f"{parent}.{key}", shown, match["doc"] or ""))
    known = set(run_level_keys())
    return [row for row in out if row[0] in known]


def help_text() -> str:
    """Return ``vemonitor --help``: usage, run-level keys with defaults, blocks found."""
    from vemonitor.compose import hydra_blocks
    from vemonitor.config.legacy import find_legacy_dir, load_legacy

    lines = [version(), "", "usage:",
             "  vemonitor [KEY=VALUE ...]          run a block (no block=: the Demo, simulated)",
             "  vemonitor -m KEY=A,B ...           a sweep: one run per value (give duration=)",
             "  vemonitor --cfg job [KEY=VALUE]    print the composed configuration (secrets ***)",
             "  vemonitor scan | integrations | report | hex | history   (each with --help)",
             "  vemonitor --version | --help | help | --hydra-help", "",
             "run-level keys (KEY=VALUE; default, meaning):"]
    rows = key_defaults()
    width = max(len(f"{k}={v}") for k, v, _ in rows)
    lines += [f"  {f'{k}={v}':<{width}}  {doc}".rstrip() for k, v, doc in rows]
    lines += ["", "blocks (block=NAME):"]
    blocks = hydra_blocks()
    width = max(len(name) for name in blocks)
    lines += [f"  {name:<{width}}  {path}" for name, path in sorted(blocks.items())]
    legacy_dir = find_legacy_dir()
    if legacy_dir is not None:
        try:
            names = load_legacy(legacy_dir).block_names()
        except Exception as err:  # a broken legacy file must not break --help: say it
            names = [f"(cannot read: {str(err).splitlines()[0]})"]
        lines += [f"  {name}  (legacy, {legacy_dir})" for name in names]
    lines += ["", "keys of a block: block.outputs.sqlite.store.cache_interval=60 changes one,",
              "  +block.outputs.console.screen.mode=lines adds one (docs/configuration.md).",
              "legacy vm_conf.yaml: --block NAME --debug [config_dir=DIR] (examples/legacy).",
              "exit status: 0 done, 2 configuration or command-line mistake (one line), "
              "130 Ctrl-C at start-up."]
    return "\n".join(lines)


def screen(args: Sequence[str], check_keys: bool = True) -> None:
    """Answer --version/--help/help and stop on a command-line mistake (exit 2), else return.

    ``check_keys=False`` leaves the check of flags and keys to the caller: a single run
    checks them in its configuration child (:func:`usage_problem`), because knowing the
    run-level keys means importing the schemas (omegaconf) and discovering the installed
    services (``importlib.metadata``), about 15 MiB the daemon would otherwise carry into
    the fork and keep for months (docs/performance.md, "Cuts").
    """
    if (args and args[0] in SUBCOMMANDS) or {"--help", "-h", "--version", "help"} & set(args):
        _end_quietly_on_closed_pipe()
    if args and args[0] in SUBCOMMANDS:
        return
    if list(args[:1]) == ["help"] or any(a in ("--help", "-h") for a in args):
        print(help_text())
        sys.exit(exits.OK)
    if "--version" in args:
        print(version())
        sys.exit(exits.OK)
    if check_keys:
        problem = usage_problem(args)
        if problem is not None:
            fail(problem)


def usage_problem(args: Sequence[str]) -> str | None:
    """Return the first command-line mistake as its one line, or None."""
    try:
        check(args)
    except UsageError as err:
        return str(err)
    return None


def _end_quietly_on_closed_pipe() -> None:
    """Let a short command end like any Unix tool when its reader goes (``| head``).

    Only short commands: the daemon keeps Python's default (a closed stdout is an
    error it reports), so a restarted journal never kills a run silently.
    """
    import signal

    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def fail(message: str) -> NoReturn:
    """Print a command-line mistake as one line and exit with status 2."""
    print(f"vemonitor: command line: {message}", file=sys.stderr)
    sys.exit(exits.CONFIG)  # a command-line mistake is a configuration mistake
