"""Contract: vemonitor_m8's own Redis reader reads what vemonitor writes from the seed's
sample configuration (vedirect_to_redis), every row, every column, numbers as the seed
wrote them. The reader is re-implemented in tests/seed/seed_reader.py from the seed's
code; vemonitor runs for real (simulated BMV-700 on a pty, redis-server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from hw_sim import Simulator
from tests.seed.seed_reader import SEED_APP, SEED_DEFAULT_DB, SeedHmapReader
from tests.servers import LOOPBACK, RedisServer
from tests.shared import SEED_CONFIGS, require_shared
from vemonitor.seed_values import SEED_POINTS

SAMPLE = SEED_CONFIGS / "vemonitor_m8" / "vedirect_to_redis"
BLOCK = "bmvFakeSerial"
# The sample's output: redis_node "bmv700", columns of input "bmv700".
REDIS_NODE = "bmv700"
COLUMNS = ['V', 'I', 'P', 'CE', 'SOC', 'Alarm', 'AR', 'Relay', 'H2', 'H17', 'H18']
# Python types the seed wrote per victronDeviceData.yaml output_type (after JSON):
# float -> float, int and intBool -> int (never bool).
SEED_JSON_TYPES = {"float": float, "int": int, "intBool": int}


def run_sample(tmp_path: Path, port: int, seconds: int = 8) -> dict[str, Any]:
    """Run the seed's sample block with vemonitor (redis and serial on loopback); return
    the summary."""
    folder = require_shared(SAMPLE)
    sim_dir = tmp_path / "sim"
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    with Simulator(["bmv700"], sim_dir):
        proc = subprocess.run(
            [sys.executable, "-c", "from vemonitor.cli import main; main()",
             f"config_dir={folder}", f"block={BLOCK}", f"duration={seconds}",
             f"state_dir={tmp_path / 'state'}",
             f"appConnectors.redis.local.host={LOOPBACK}",
             f"appConnectors.redis.local.port={port}",
             f"appConnectors.serial.bmv700.serialPort={sim_dir}/ttyVE_bmv700"],
            env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    summary: dict[str, Any] = json.loads((tmp_path / "state" / "summary.json").read_text())
    return summary


def assert_seed_rows(reader: SeedHmapReader, summary: dict[str, Any]) -> None:
    """Every row vemonitor made is read, with every column, typed as the seed typed it."""
    reader.node_base = REDIS_NODE  # the seed's writer/cache instance (register_node)
    rows, last_time, max_time = reader.get_data_time_series(
        REDIS_NODE, structure={"bmv700": COLUMNS})
    made = summary["inputs"]["bmv700"]["rows"]
    assert made >= 4
    assert len(rows) == made
    assert max_time == max(rows) and last_time == max_time + 1
    for stamp, nodes in rows.items():
        assert list(nodes) == ["bmv700"], stamp
        values = nodes["bmv700"]
        assert sorted(values) == sorted(COLUMNS), stamp
        for column, value in values.items():
            expected = SEED_JSON_TYPES[SEED_POINTS[column][0]]
            assert type(value) is expected, (stamp, column, value)
        assert values["Alarm"] in (0, 1) and values["Relay"] in (0, 1)
        assert 0.0 <= values["SOC"] <= 100.0 and 8.0 < values["V"] < 17.0
    # Byte for byte: the seed's HmapTimeSeriesApp stored UJson.dumps_json(point), i.e.
    # json.dumps with its default separators, keys in the output's column order.
    for text in reader.client.hvals(f"{REDIS_NODE}_bmv700"):
        assert text == json.dumps({c: json.loads(text)[c] for c in COLUMNS})


@pytest.fixture
def redis_server(tmp_path: Path) -> Any:
    with RedisServer(workdir=tmp_path / "redis") as server:
        yield server


def test_seed_reader_reads_every_row_from_the_seed_default_db(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """The sample connector has no db: vemonitor writes db 3 with the seed's marker, and
    the seed's reader, built with the same connector, selects db 3 and reads every row."""
    summary = run_sample(tmp_path, redis_server.port)
    reader = SeedHmapReader(LOOPBACK, redis_server.port)
    try:
        assert reader.db == SEED_DEFAULT_DB
        assert reader.client.hget("vemonitor_meta", "controled_by") == SEED_APP
        assert_seed_rows(reader, summary)
        # A fresh reader (node_base 'n', as HmapTimeSeriesApp starts) still finds every
        # row through the SET, under the name its get_node_from_map_key derives.
        fresh = SeedHmapReader(LOOPBACK, redis_server.port)
        rows, _, _ = fresh.get_data_time_series(REDIS_NODE)
        fresh.close()
        assert len(rows) == summary["inputs"]["bmv700"]["rows"]
        assert all(set(v) == set(COLUMNS) for nodes in rows.values() for v in nodes.values())
    finally:
        reader.close()
    # vemonitor wrote nothing into db 0 (where it writes by default).
    raw = redis.Redis(host=LOOPBACK, port=redis_server.port, db=0)
    assert raw.dbsize() == 0
    raw.close()


def test_seed_reader_follows_vemonitor_past_a_foreign_db(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """Db 3 holds another application's keys: vemonitor moves to db 0 as the seed's
    selector does, and the seed's reader selects the same db and reads every row."""
    foreign = redis.Redis(host=LOOPBACK, port=redis_server.port, db=3)
    foreign.set("someone_else", "1")
    foreign.close()
    summary = run_sample(tmp_path, redis_server.port)
    reader = SeedHmapReader(LOOPBACK, redis_server.port)
    try:
        assert reader.db == 0
        assert_seed_rows(reader, summary)
    finally:
        reader.close()
    untouched = redis.Redis(host=LOOPBACK, port=redis_server.port, db=3, decode_responses=True)
    assert untouched.keys("*") == ["someone_else"]
    untouched.close()
