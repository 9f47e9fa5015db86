"""``vemonitor-sim``: prints device paths, runs for --duration, refuses bad args in one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw_sim.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.Popen[str]:
    """Start the CLI as a subprocess from the repository root."""
    return subprocess.Popen([sys.executable, "-m", "hw_sim.cli", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_prints_paths_and_stops_after_duration(tmp_path: Path) -> None:
    """The CLI prints ``name path`` per device, keeps the links while running, exits 0."""
    proc = run_cli("bmv700", "mppt", "--dir", str(tmp_path), "--duration", "2")
    assert proc.stdout is not None
    lines = [proc.stdout.readline().split() for _ in range(2)]
    assert lines == [["bmv700", str(tmp_path / "ttyVE_bmv700")],
                     ["mppt", str(tmp_path / "ttyVE_mppt")]]
    assert all(Path(path).is_symlink() for _, path in lines)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and err == ""
    assert list(tmp_path.iterdir()) == []


def test_cli_exits_0_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM stops the simulator cleanly with status 0."""
    proc = run_cli("mppt_fwe", "--dir", str(tmp_path), "--speed", "5")
    assert proc.stdout is not None and proc.stdout.readline().startswith("mppt_fwe ")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and err == ""


@pytest.mark.parametrize("argv", [
    ["toaster", "--dir", "/tmp/x"],
    ["bmv700"],
    ["bmv700", "--dir", "/tmp/x", "--speed", "0"],
    ["bmv700", "--dir", "/tmp/x", "--speed", "fast"],
    ["bmv700", "--dir", "/tmp/x", "--faults", "corrupt=2"],
    ["bmv700", "--dir", "/tmp/x", "--faults", "zap=1"],
    ["--dir", "/tmp/x"],
    ["--dir", "/tmp/x", "--replay", "/nonexistent.dump"],
    ["bmv700:a", "mppt:a", "--dir", "/tmp/x"],
    ["bmv700", "--dir", "/tmp/x", "--start", "yesterday"],
])
def test_bad_arguments_give_one_line_and_status_2(argv: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Every user mistake is one ``vemonitor-sim: error: ...`` line, exit 2, no traceback."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("vemonitor-sim: error: ")


def test_cli_replay_ends_by_itself(tmp_path: Path, captures_dir: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A non-looping replay ends the CLI when the capture is played (named by file stem)."""
    capture = captures_dir / "negative_bad_packets.dump"
    assert main(["--replay", str(capture), "--dir", str(tmp_path), "--speed", "50"]) == 0
    name = "replay_negative_bad_packets"
    assert capsys.readouterr().out == f"{name} {tmp_path / ('ttyVE_' + name)}\n"
