"""The entry point: a single run composes in a child process and never keeps Hydra loaded."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli_run import _env
from vemonitor import cli

PROBE = """
import sys
from vemonitor.cli import main
main(sys.argv[1:])
print("HYDRA-LOADED" if "hydra" in sys.modules else "HYDRA-NOT-LOADED")
"""


def test_a_single_run_stores_rows_without_ever_importing_hydra(tmp_path: Path) -> None:
    """The daemon process runs the Demo block to its end with Hydra only in the child."""
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-c", PROBE, "speed=4", "duration=12",
                           f"state_dir={state}"], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "summary of block Demo" in proc.stdout
    assert proc.stdout.rstrip().endswith("HYDRA-NOT-LOADED"), proc.stdout[-300:]
    # Hydra's job_logging (composed in the child) is applied in the daemon.
    assert "INFO vemonitor.serial_reader: bmv700: available" in proc.stderr
    with sqlite3.connect(state / "store.sqlite") as db:
        assert db.execute("select count(*) from rows").fetchone()[0] > 0


def test_a_mistake_found_by_the_child_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vemonitor", "block=Nope",
                           f"state_dir={tmp_path}/state"], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "vemonitor: config error: block: unknown block 'Nope' (available: "
        "BatteryAndPannelsMonitor, BatteryMonitor, Demo, FleetCentral, FleetEdge)"]


@pytest.mark.parametrize(("args", "single"), [
    ([], True),
    (["block=BatteryMonitor", "debug=true"], True),
    (["--block", "Home", "--debug"], True),
    (["-m", "duration=1,2"], False),
    (["--multirun", "duration=1,2"], False),
    (["--cfg", "job"], False),
    (["--cfg=job"], False),
    (["--help"], False),
    (["scan"], False),
    (["integrations"], False),
])
def test_what_counts_as_a_single_run(args: list[str], single: bool) -> None:
    assert cli.single_run(args) is single


def test_a_crash_while_composing_is_reported_not_hung(monkeypatch: pytest.MonkeyPatch,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    """A bug in the child (not a user mistake) ends it; the parent says so instead of waiting."""
    def broken(args: list[str]) -> dict[str, object]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "compose_payload", broken)
    with pytest.raises(cli.ComposeError, match="child exit status 1"):
        cli.compose_isolated(["duration=1"])
    assert "RuntimeError: a bug" in capfd.readouterr().err


def test_the_child_hands_back_plain_data(tmp_path: Path) -> None:
    """What crosses the pipe is the resolved config, the origins and the logging config."""
    composed = cli.compose_isolated(["block=BatteryMonitor", f"state_dir={tmp_path}"])
    assert composed["container"]["block"]["name"] == "BatteryMonitor"
    assert composed["container"]["state_dir"] == str(tmp_path)
    assert composed["origins"]["block"] == "conf/block/BatteryMonitor.yaml"
    assert composed["logging"]["root"]["handlers"] == ["console"]


@pytest.mark.parametrize("mistake", [
    "+block.outputs.sqlite.store.bogus=1",
    "block.app=${oc.env:VEMONITOR_TEST_UNSET_VAR}",
])
def test_a_sweep_job_says_a_mistake_exactly_as_a_single_run(tmp_path: Path, mistake: str) -> None:
    """`-m` jobs are validated by the same prepare_run and end in the same exit_config_error:
    the same one line (naming the command line and the file), status 2 (issue 16)."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vemonitor", *args, mistake,
                               f"state_dir={tmp_path}/state"], env=_env(tmp_path),
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    single, sweep = run("duration=1"), run("-m", "duration=1,2")
    assert single.returncode == sweep.returncode == 2
    line = single.stderr.strip().splitlines()[-1]
    assert line.startswith("vemonitor: config error: command line, over conf/block/Demo.yaml: "
                           "block.")
    assert sweep.stderr.strip().splitlines()[-1] == line


HELD = """
import sys
from vemonitor import cli
at_fork = sorted(m for m in ("omegaconf", "hydra", "importlib.metadata", "hw_sim")
                 if m in sys.modules)
composed = cli.compose_isolated(sys.argv[1:])
from vemonitor.job import check_wiring
spec, registry = composed["prepared"]
check_wiring(spec, registry)
held = sorted(m for m in ("omegaconf", "antlr4", "hydra", "yaml", "hw_sim.simulator")
              if m in sys.modules)
print("AT-FORK", *at_fork)
print("HELD", *held)
"""


def test_the_daemon_forks_light_and_never_holds_the_configuration_machinery(
        tmp_path: Path) -> None:
    """Before the fork the daemon has no omegaconf, Hydra, entry-point scan or simulator; after
    the child composed and built the run, it holds neither omegaconf/antlr4 (the schemas'
    checker) nor YAML nor the simulator of a run without simulated devices (the memory goals
    of issue 24, docs/performance.md)."""
    proc = subprocess.run([sys.executable, "-c", HELD, "block=BatteryMonitor",
                           f"state_dir={tmp_path}"], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line.strip() for line in proc.stdout.splitlines()]
    assert "AT-FORK" in lines and "HELD" in lines, proc.stdout


def test_a_mistyped_key_of_a_single_run_is_one_line_from_the_child(tmp_path: Path) -> None:
    """A single run's keys are checked in its configuration child: the same one line, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "vemonitor", "durration=10",
                           f"state_dir={tmp_path}"], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("vemonitor: command line: durration: unknown key (did you "
                                  "mean duration?); run-level keys: debug, duration, ")
    assert "Traceback" not in proc.stderr


EXEC_PROBE = """
import atexit, os, sys
print("IMAGE", os.getpid(), "PREPARED" if "VEMONITOR_PREPARED_FD" in os.environ else "FRESH",
      flush=True)
atexit.register(lambda: print("HELD", *sorted(m for m in ("hydra", "omegaconf", "yaml")
                                              if m in sys.modules), flush=True))
from vemonitor.cli import main
main()
"""


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="the exec path needs memfd_create")
def test_the_command_composes_then_execs_itself_into_a_hydra_free_daemon(tmp_path: Path) -> None:
    """The real command line composes in its own process, then replaces itself: same PID,
    the second image runs the block to its end and never imported Hydra, omegaconf or YAML
    (one process at a time: the start-up peak is not two processes' sum, issue 24)."""
    proc = subprocess.run([sys.executable, "-c", EXEC_PROBE, "speed=4", "duration=6",
                           f"state_dir={tmp_path / 'state'}"], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    images = [line.split() for line in proc.stdout.splitlines() if line.startswith("IMAGE")]
    assert [kind for _, _, kind in images] == ["FRESH", "PREPARED"], proc.stdout
    assert images[0][1] == images[1][1]  # the same process
    assert "summary of block Demo" in proc.stdout
    assert "HELD" in [line.strip() for line in proc.stdout.splitlines()], proc.stdout
