"""Every command in README.md and docs/*.md code blocks runs, bounded, as a user would type it.

How a Markdown file's code blocks are read (the convention for anyone writing docs):

* A block runs when its language is ``sh``, ``bash``, ``shell`` or ``console``. Other
  blocks (``yaml``, ``python``, ``text``, untagged) are examples or output, never run.
* In a runnable block, when some lines start with ``$ ``, only those are commands (the
  rest is their output); otherwise every line is one. ``\\`` continues a line and ``#``
  starts a comment, as in the shell.
* A block whose info string carries ``notest`` (```` ```sh notest ````) is not run here:
  use it for commands that need what a test cannot have (hardware, systemd, another
  package installed), and say in the text where they are tested instead.
* Every other command must be one this test knows how to run (``vemonitor``,
  ``vemonitor-sim``, ``vemonitor-decode``); an unknown program fails with that advice.

Bounding: a ``vemonitor`` run gets ``duration=`` (replaced when given, so ``speed=60
duration=3600`` lasts seconds too); ``vemonitor-sim`` gets ``--duration``. Paths under
``/tmp/`` become the test's own folder, ``capture.dump`` is a capture written here from
the encoder, and a command that needs something first gets it (``PREREQUISITES``: the
Demo runs before ``vemonitor report``). Runs use a fresh ``$HOME`` and state directory, from the repo root
(so ``config_dir=examples/legacy`` is the shipped legacy example).

The README's first two blocks are its set-up commands (``pip install ...``); their
``pip``/``pytest`` parts are run by ``.ci/run`` in a fresh venv, so here they are only
checked to be exactly those two blocks, and their ``vemonitor`` part runs like any other.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"sh", "bash", "shell", "console"}
SKIP_MARK = "notest"
FENCE = re.compile(r"^(`{3,}|~{3,})\s*(.*)$")
README_SETUP = ["pip install -e . && vemonitor", "pip install -e '.[test]' && python -m pytest"]
SETUP_PARTS = ("pip install", "python -m pytest")  # run by .ci/run in a fresh venv
RUN_SECONDS = 4  # device-clock seconds a bounded vemonitor run lasts (times speed)
TIMEOUT = 150  # a run's wall-clock limit on a loaded two-core machine
# Exit statuses other than 0 a command documents: `vemonitor scan` exits 1 when it found
# no device (docs/operations.md), which is what a machine without hardware gives.
DOCUMENTED_STATUS: dict[tuple[str, ...], set[int]] = {("vemonitor", "scan"): {0, 1}}
# What a command needs done first, as its docs say: a report reads a store, so the Demo
# runs (bounded) before `vemonitor report`.
PREREQUISITES: dict[tuple[str, ...], list[str]] = {
    ("vemonitor", "report"): ["vemonitor", f"duration={RUN_SECONDS}"]}


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its info string and its lines."""

    doc: Path
    line: int
    info: str
    lines: tuple[str, ...]

    @property
    def language(self) -> str:
        return self.info.split()[0].lower() if self.info.split() else ""

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE and SKIP_MARK not in self.info.split()[1:]


def blocks(doc: Path) -> list[Block]:
    """Return the fenced code blocks of a Markdown file, in order."""
    found: list[Block] = []
    fence: str | None = None
    start, info, body = 0, "", []
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, start, info, body = match[1], number, match[2].strip(), []
        elif fence is not None and line.strip() == fence:
            found.append(Block(doc, start, info, tuple(body)))
            fence = None
        elif fence is not None:
            body.append(line)
    return found


def commands(block: Block) -> list[str]:
    """Return the block's commands: prompt lines only when it has prompts, continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in block.lines:
        pending += raw
        if pending.rstrip().endswith("\\"):
            pending = pending.rstrip()[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    prompted = [line[2:] for line in logical if line.startswith("$ ")]
    chosen = prompted if prompted else logical
    return [line.strip() for line in chosen if shlex.split(line, comments=True)]


@dataclass(frozen=True)
class Command:
    """One documented command, where it is written."""

    where: str
    text: str

    @property
    def label(self) -> str:
        return f"{self.where} {shlex.join(shlex.split(self.text, comments=True))}"


def documented_commands() -> list[Command]:
    """Return every command of every runnable block of the docs."""
    out: list[Command] = []
    for doc in DOCS:
        for block in blocks(doc):
            if block.runnable:
                out += [Command(f"{doc.relative_to(ROOT)}:{block.line}", text)
                        for text in commands(block)]
    return out


def test_readme_starts_with_exactly_the_two_setup_commands() -> None:
    """.ci/run runs the README's first two sh blocks in a fresh venv: they must be the set-up."""
    first_two = blocks(ROOT / "README.md")[:2]
    assert [b.language for b in first_two] == ["sh", "sh"]
    assert ["\n".join(b.lines) for b in first_two] == README_SETUP
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "readme_block 1" in ci and "readme_block 2" in ci


def test_the_docs_have_commands_and_a_way_to_skip() -> None:
    """The discovery finds the README's and the docs' commands (a parser bug would find none)."""
    found = documented_commands()
    where = {c.where.split(":")[0] for c in found}
    assert {"README.md", "docs/configuration.md", "docs/simulator.md"} <= where
    assert any(c.text.startswith("vemonitor-decode") for c in found)
    assert len(found) >= 20


# ------------------------------------------------------------------ running them
def _bounded_vemonitor(argv: list[str]) -> list[str]:
    """Return a vemonitor command line bounded by duration= (a run, not a short command)."""
    short = {"scan", "integrations", "help", "report"}
    if (argv[1:2] and argv[1] in short) or any(
            a in ("--help", "-h", "--version", "--cfg", "-c", "--hydra-help") or
            a.startswith("dry_run=true") for a in argv):
        return argv
    speed = next((float(a.split("=", 1)[1]) for a in argv if a.startswith("speed=")), 1.0)
    duration = f"duration={RUN_SECONDS * speed:g}"
    kept = [a for a in argv if not a.startswith("duration=")]
    return [*kept, duration]


def _bounded_sim(argv: list[str], tmp: Path) -> list[str]:
    """Return a vemonitor-sim command line with its own folder and a --duration."""
    out = [str(tmp / "sim") if a.startswith("/tmp/vemonitor-sim") else a for a in argv]
    return out if "--duration" in out else [*out, "--duration", "2"]


def _capture(path: Path) -> None:
    """Write a small capture: BMV blocks, as a cable would record them."""
    from vemonitor.vedirect.encoder import encode_block

    data = b"".join(encode_block([("PID", "0x203"), ("V", str(12800 + i)), ("I", "-1500"),
                                  ("SOC", "876"), ("Alarm", "OFF")]) for i in range(20))
    path.write_bytes(data)


def _environment(tmp: Path) -> dict[str, str]:
    """Return a fresh user's environment whose PATH finds this interpreter's scripts first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEMONITOR", "XDG_"))}
    env.update(HOME=str(tmp / "home"), XDG_STATE_HOME=str(tmp / "state"), TMPDIR=str(tmp),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    (tmp / "home").mkdir(exist_ok=True)
    return env


def _prepare(text: str, tmp: Path) -> list[list[str]]:
    """Return the argv of each runnable part of a documented command ('a && b' is two)."""
    parts = [p.strip() for p in text.split("&&")]
    out: list[list[str]] = []
    for part in parts:
        if part.startswith(SETUP_PARTS):
            assert text in README_SETUP, f"'{part}' belongs to the README's set-up only"
            continue
        argv = shlex.split(part, comments=True)
        if argv[0] == "vemonitor":
            out.append(_bounded_vemonitor(argv))
        elif argv[0] == "vemonitor-sim":
            out.append(_bounded_sim(argv, tmp))
        elif argv[0] == "vemonitor-decode":
            out.append(argv)
        else:
            pytest.fail(f"don't know how to run '{argv[0]}': tag its block ```sh {SKIP_MARK} "
                        "and say where it is tested, or teach tests/docs/test_doc_commands.py")
    return out


@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", documented_commands(), ids=lambda c: c.label)
def test_documented_command_runs(command: Command, tmp_path: Path) -> None:
    """The command exits 0 (or its documented status) without a traceback; a run prints its summary."""
    env = _environment(tmp_path)
    capture = tmp_path / "capture.dump"
    _capture(capture)
    for argv in _prepare(command.text, tmp_path):
        before = PREREQUISITES.get(tuple(argv[:2]))
        if before:
            subprocess.run(before, cwd=ROOT, env=env, capture_output=True, timeout=TIMEOUT,
                           check=True)
        argv = [f"{tmp_path}/{a[5:]}" if a.startswith("/tmp/") else a for a in argv]
        argv = [re.sub(r"(^|=)capture\.dump$", rf"\g<1>{capture}", a) for a in argv]
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=TIMEOUT, check=False)
        said = f"{command.where}: {shlex.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        assert result.returncode in DOCUMENTED_STATUS.get(tuple(argv[:2]), {0}), said
        assert "Traceback" not in result.stderr, said
        if any(a.startswith("duration=") for a in argv):
            assert "summary of block" in result.stdout, said
