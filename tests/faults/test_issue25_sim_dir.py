"""Issue 25 point 9: `vemonitor-sim --dir` refuses a folder that is not ours or that others
can write to (another user could swap a ttyVE_* link for a path of their choice)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOBODY = 65534


def _sim(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys; from hw_sim.cli import main; "
                           "sys.exit(main())", "bmv700", "--dir", str(folder), "--duration",
                           "0.3"], capture_output=True, text=True, timeout=60)


def _foreign_folder(tmp_path: Path) -> Path:
    """Return a folder owned by another user, mode 0700."""
    if os.getuid() != 0:
        return Path("/usr")  # root's, and we are not root
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    return folder


@pytest.mark.parametrize("case", ["world-writable", "group-writable", "another user's"])
def test_sim_refuses_a_folder_others_control(tmp_path: Path, case: str) -> None:
    if case == "another user's":
        folder = _foreign_folder(tmp_path)
    else:
        folder = tmp_path / "shared"
        folder.mkdir()
        os.chmod(folder, 0o777 if case == "world-writable" else 0o770)
    proc = _sim(folder)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vemonitor-sim: error: --dir:"), lines
    assert "others can write to it" in lines[0]
    assert not list(folder.glob("ttyVE_*"))


def test_sim_accepts_its_own_private_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o700)
    proc = _sim(folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"bmv700 {folder}/ttyVE_bmv700")
