"""Issue 14 items 6, 8 and 10: every failure a user or a disk can cause is one line with a
documented exit status (vemonitor/exits.py); one daemon per state directory."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from tests.faults.test_process_faults import _vemonitor
from vemonitor import exits, job

BASE = ["block=BatteryMonitor", "simulator.devices=[bmv700]"]


def _no_file_may_grow() -> None:
    """Child process: a disk with no space left (files cannot grow at all)."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_full_disk_at_start_is_one_line_exit_3(tmp_path: Path) -> None:
    """Item 6: a full disk at start: one line, exit 3 (was a traceback, exit 1)."""
    state = tmp_path / "state"
    state.mkdir()
    proc = _vemonitor([*BASE, f"state_dir={state}", "duration=5", f"simulator.dir={tmp_path}/sim"],
                      tmp_path,
                      preexec=_no_file_may_grow)
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == exits.STATE, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("vemonitor: ")], err


@pytest.mark.parametrize("override", ["duration=nan", "stale_after=nan", "metrics.port=99999",
                                      "block.max_data_points=1e24", "duration=inf",
                                      "+block.outputs.sqlite.store.delivery.max_age=nan",
                                      "+block.outputs.sqlite.store.delivery.retry_max=inf",
                                      "block.inputs.serial.bmv700.time_interval=nan",
                                      "appConnectors.vedirect.bmv700.rescan_after=inf"])
def test_out_of_range_numbers_are_config_errors(tmp_path: Path, override: str) -> None:
    """Items 6 and 10: non-finite or absurd numbers: one line naming the key, exit 2."""
    proc = _vemonitor([*BASE, f"state_dir={tmp_path / 's'}", override], tmp_path)
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == exits.CONFIG, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "config error" in lines[0], err
    assert override.lstrip("+").split("=")[0].split(".")[-1] in lines[0]


def test_second_daemon_on_one_state_dir_exits_2_naming_the_holder(tmp_path: Path) -> None:
    """Item 8: two daemons on one state_dir: the second exits 2 naming the first's pid."""
    state = tmp_path / "state"
    first = _vemonitor([*BASE, f"state_dir={state}", "duration=60"], tmp_path)
    try:
        lock = state / "vemonitor.lock"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.1)
        second = _vemonitor([*BASE, f"state_dir={state}", "duration=5",
                             "simulator.dir=" + str(tmp_path / "sim2")], tmp_path)
        _out, err = second.communicate(timeout=90)
        assert second.returncode == exits.CONFIG, err
        assert f"pid {first.pid}" in err and len(err.strip().splitlines()) == 1, err
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_summary_write_failing_keeps_the_previous_file(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 6: ENOSPC while writing summary.json: the previous summary stays whole (before:
    a 0-byte file) and the error reaches the caller (one line, exit 3 in execute)."""
    (tmp_path / "summary.json").write_text('{"old": 1}\n')

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        job.write_summary({"new": 2}, tmp_path, None)
    assert json.loads((tmp_path / "summary.json").read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_systemd_unit_does_not_restart_on_configuration_errors() -> None:
    """The unit restarts on failure (1 bug, 3 disk) but never on status 2 (configuration)."""
    unit = (Path(__file__).resolve().parents[2] / "packaging" / "vemonitor.service").read_text()
    settings = dict(line.split("=", 1) for line in unit.splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["Restart"] == "on-failure"
    assert str(exits.CONFIG) in settings["RestartPreventExitStatus"].split()
    assert str(exits.STATE) not in settings["RestartPreventExitStatus"].split()
