"""The exit summary a user reads after a run with a failing sink, against a real redis-server.

A closed port, a db holding another application's keys and a wrong password: each run
ends with exit 0 (the data is kept), the refusal is said once with its fix, and the
summary says how many rows wait in the outbox and where store.sqlite, the outbox and
summary.json are.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.servers import LOOPBACK, RedisServer, free_port

RED = ("+block.outputs.redis.red={source:local,time_interval:1,cache_interval:1,"
       "structure:HmapTimeSeries,redis_node:bmv700}")


def _run(tmp_path: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"),
               PYTHONUNBUFFERED="1")
    args = [sys.executable, "-c", "from vemonitor.cli import main; main()",
            "block=BatteryMonitor", "simulator.devices=[bmv700]", "duration=6",
            f"state_dir={tmp_path / 'state'}",
            f"+appConnectors.redis.local={{host:'{LOOPBACK}',port:{port}}}", RED, *extra]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def _outbox_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("select coalesce(sum(rows), 0) from batches").fetchone()[0])


def _files(stdout: str) -> dict[str, str]:
    """Return the summary's 'files:' section as what -> path."""
    section = stdout.split("\nfiles:\n", 1)[1].splitlines()
    return dict(line.strip().rsplit("  ", 1) for line in section if line.startswith("  "))


def test_closed_port_summary_says_rows_wait_and_where(tmp_path: Path) -> None:
    """Nothing listens: exit 0, the rows wait in the outbox, the summary names every file."""
    result = _run(tmp_path, free_port())
    assert result.returncode == 0, result.stderr
    state = tmp_path / "state"
    outbox = state / "outbox" / "red.sqlite"
    waiting = _outbox_rows(outbox)
    assert waiting >= 3
    red = next(line for line in result.stdout.splitlines() if line.startswith("  output red:"))
    assert f"{waiting} rows wait in the outbox" in red
    assert "the sink was failing at exit" in red
    files = {k.strip(): v.strip() for k, v in _files(result.stdout).items()}
    assert files == {"output store, stored rows": str(state / "store.sqlite"),
                     "output red, waiting rows": str(outbox),
                     "this summary": str(state / "summary.json")}
    summary = json.loads((state / "summary.json").read_text())
    assert summary["outputs"]["red"]["outbox_rows"] == waiting
    assert summary["outputs"]["store"]["outbox_rows"] == 0
    assert "sends/hour" in result.stdout and "writes/hour" not in result.stdout
    assert "Traceback" not in result.stderr


def test_foreign_db_is_said_once_with_the_fix(tmp_path: Path) -> None:
    """A db holding another application's keys: one error with the fix, no retry warnings."""
    with RedisServer(workdir=tmp_path / "redis") as server:
        redis.Redis(host=LOOPBACK, port=server.port).set("someone:else", "1")
        result = _run(tmp_path, server.port)
    assert result.returncode == 0, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if "output red" in line and line.startswith(("WARNING", "ERROR"))]
    assert len(errors) == 1, errors
    assert errors[0].startswith("ERROR") and "retrying will not fix it" in errors[0]
    assert "choose an empty db" in errors[0]  # the fix, in the error itself
    red = next(line for line in result.stdout.splitlines() if line.startswith("  output red:"))
    assert "the sink refuses the data" in red and "rows wait in the outbox" in red


def test_wrong_password_is_said_once_and_never_shown(tmp_path: Path) -> None:
    """A refused password: one warning, the password nowhere, rows kept in the outbox."""
    secret = "not-the-Pa55word"
    with RedisServer(workdir=tmp_path / "redis", password="right-one") as server:
        result = _run(tmp_path, server.port, f"+appConnectors.redis.local.password={secret}")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines()
                if "output red" in line and line.startswith(("WARNING", "ERROR"))]
    assert len(warnings) == 1, warnings
    assert "credentials" in warnings[0]
    assert secret not in result.stdout + result.stderr
    assert "rows wait in the outbox" in result.stdout


@pytest.mark.timeout(200)
def test_sweep_summaries_are_labelled_by_job(tmp_path: Path) -> None:
    """-m: each job's summary names its job number and overrides (they would look alike)."""
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"))
    args = [sys.executable, "-c", "from vemonitor.cli import main; main()", "-m",
            "block=BatteryMonitor", "simulator.devices=[bmv700]", "duration=4",
            f"state_dir={tmp_path / 'state'}", "block.outputs.sqlite.store.cache_interval=1,4"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if line.startswith("summary of")]
    assert len(heads) == 2
    assert "[job 0:" in heads[0] and "cache_interval=1" in heads[0]
    assert "[job 1:" in heads[1] and "cache_interval=4" in heads[1]
