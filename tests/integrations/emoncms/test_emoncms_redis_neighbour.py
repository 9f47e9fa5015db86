"""The Redis cache beside EmonCms: a db EmonCms already uses is one line with the fix, exit 2.

Measured against EmonCms 11.16.8 with Redis enabled: EmonCms keeps its keys in db 0
under its ``emoncms`` prefix (``emoncmsinput:1``, ``emoncmsinput:lastvalue:1``,
``emoncmsfeed:1``, ``emoncmsuser:inputs:1``...). The emon_worker_m8 sample's
``redis_cache`` on that same db must not write there, and must not crash saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from hw_sim import Simulator
from tests.servers import RedisServer
from tests.shared import SEED_CONFIGS, require_shared

# What EmonCms 11.16.8 wrote into its Redis db 0 (names measured; values made up).
EMONCMS_KEYS = {"emoncmsinput:1": "x", "emoncmsinput:lastvalue:1": "12.5",
                "emoncmsfeed:1": "x", "emoncmsuser:inputs:1": "1"}


def _run_sample(tmp_path: Path, port: int, *overrides: str) -> subprocess.CompletedProcess[str]:
    """Run the emon_worker_m8 sample's block for 5 s against a loopback Redis and simulator
    (EmonCms itself is a closed port: its outage is not what these tests look at)."""
    folder = require_shared(SEED_CONFIGS / "emon_worker_m8")
    sim_dir = tmp_path / "sim"
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    with Simulator(["bmv700", "mppt"], sim_dir):
        return subprocess.run(
            [sys.executable, "-c", "from vemonitor.cli import main; main()",
             f"config_dir={folder}", "block=BatteryAndPannelsMonitor", "duration=5",
             f"state_dir={tmp_path / 'state'}", f"appConnectors.redis.local.port={port}",
             "appConnectors.emoncms.local.addr=http://127.0.0.1:9",
             f"appConnectors.serial.bmv700.serialPort={sim_dir}/ttyVE_bmv700",
             f"appConnectors.serial.blueSolar.serialPort={sim_dir}/ttyVE_mppt", *overrides],
            env=env, capture_output=True, text=True, timeout=120)


def test_the_samples_redis_cache_coexists_with_emoncms(tmp_path: Path) -> None:
    """The sample as shipped (no ``db``) on the Redis EmonCms uses: the seed's db choice
    (db 3, vemonitor.config.seed) keeps the cache away from EmonCms's db 0: exit 0."""
    with RedisServer(workdir=tmp_path / "redis") as server:
        emoncms_db = redis.Redis(host="127.0.0.1", port=server.port, db=0,
                                 decode_responses=True)
        emoncms_db.mset(EMONCMS_KEYS)
        proc = _run_sample(tmp_path, server.port)
        keys = set(emoncms_db.keys("*"))
        cache_db = redis.Redis(host="127.0.0.1", port=server.port, db=3, decode_responses=True)
        marked = cache_db.hgetall("vemonitor_meta")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert keys == set(EMONCMS_KEYS)  # nothing written next to EmonCms's keys
    assert marked.get("controled_by") == "vemonitor_m8"


def test_redis_cache_on_emoncms_db_is_one_line_exit_2(tmp_path: Path) -> None:
    """The cache pinned to EmonCms's db 0 without the seed's db selector: exit 2, one stderr
    line naming the db, the connector key to change, and why; no traceback; EmonCms's keys
    untouched."""
    with RedisServer(workdir=tmp_path / "redis") as server:
        client = redis.Redis(host="127.0.0.1", port=server.port, db=0, decode_responses=True)
        client.mset(EMONCMS_KEYS)
        proc = _run_sample(tmp_path, server.port, "appConnectors.redis.local.db=0",
                           "appConnectors.redis.local.db_selector=false")
        keys = set(client.keys("*"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vemonitor:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert f"db 0 of 127.0.0.1:{server.port} is used by another application" in errors[0]
    # The key the user wrote (redis_cache), the connector key to change (RedisForeignDb's
    # setting), and the neighbour's habit (the redis integration's own words).
    assert errors[0].startswith("vemonitor: config error: redis_cache:")
    assert "(appConnectors.redis.local.db)" in errors[0]
    assert "EmonCms keeps its own keys in db 0" in errors[0]
    assert keys == set(EMONCMS_KEYS)  # nothing written next to EmonCms's keys


def test_redis_cache_refusing_the_password_is_one_line_exit_2(tmp_path: Path) -> None:
    """The same start-up path with a Redis that wants a password the config lacks: one
    line naming the server and what to check, exit 2, no traceback, nothing written."""
    with RedisServer(workdir=tmp_path / "redis", password="s3cret-pass") as server:
        proc = _run_sample(tmp_path, server.port)
        keys = redis.Redis(host="127.0.0.1", port=server.port, password="s3cret-pass").keys()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vemonitor:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith("vemonitor: config error: redis_cache: redis ")
    assert "authentication failed" in errors[0]
    assert keys == []
