"""Issue 14 items 1 and 6 end to end: a real daemon, a real redis-server, damaged outboxes."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

import redis

from tests.faults.test_process_faults import _vemonitor
from tests.servers import LOOPBACK, RedisServer, free_port
from vemonitor.model import Batch, Row
from vemonitor.outbox import Outbox, outbox_path


def _redis_args(state: Path, port: int) -> list[str]:
    return ["block=BatteryMonitor", "simulator.devices=[bmv700]", f"state_dir={state}",
            f"simulator.dir={state.parent / 'sim'}",
            "+appConnectors.redis.local.host=127.0.0.1",
            f"+appConnectors.redis.local.port={port}",
            "+block.outputs.redis.rr.source=local", "+block.outputs.redis.rr.redis_node=site",
            "+block.outputs.redis.rr.cache_interval=1"]


def _preload(state: Path) -> int:
    """An outbox left by a previous run: 6 good batches, one undecodable, 2 good."""
    start = int(time.time()) - 3600
    box = Outbox(outbox_path(state, "rr"), "rr")
    box.open()
    for i in range(6):
        box.put(Batch("rr", (Row(start + i, "bmv700", {"V": 12.5}),)), now=time.time())
    box._require().execute("INSERT INTO batches (created, rows, bytes, payload) VALUES "
                           "(?, 1, 4, '{x]')", (time.time(),))
    for i in range(6, 8):
        box.put(Batch("rr", (Row(start + i, "bmv700", {"V": 12.5}),)), now=time.time())
    box.close()
    return start


def test_bad_batch_is_dead_lettered_and_the_output_goes_on(tmp_path: Path) -> None:
    """Item 1: `{x]` in the outbox: the 8 good old batches and the new rows reach Redis, the
    bad one is dead-lettered (summary.json, metric, one ERROR line naming output and batch).
    Before: the sender thread died, nothing was sent, the run said 0 errors."""
    state = tmp_path / "state"
    start = _preload(state)
    metrics_port = free_port()
    with RedisServer(workdir=tmp_path / "redis") as server:
        proc = _vemonitor([*_redis_args(state, server.port), "duration=8",
                           f"metrics.port={metrics_port}"], tmp_path)
        scraped = ""
        for _ in range(100):  # scrape while it runs (polling, generous)
            try:
                with urllib.request.urlopen(f"http://{LOOPBACK}:{metrics_port}/metrics",
                                            timeout=2) as response:
                    scraped = response.read().decode()
                if 'vemonitor_output_dead_letters_total{output="rr"} 1.0' in scraped:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        _out, err = proc.communicate(timeout=90)
        stored = {int(float(t)) for t in redis.Redis(port=server.port).hkeys("site_bmv700")}
    assert proc.returncode == 0, err
    assert set(range(start, start + 8)) <= stored and len(stored) > 8
    assert 'vemonitor_output_dead_letters_total{output="rr"} 1.0' in scraped
    summary = json.loads((state / "summary.json").read_text())["outputs"]["rr"]
    assert summary["dead_letter_batches"] == 1 and summary["dead_letter_rows"] == 1
    errors = [line for line in err.splitlines() if "dead-lettered" in line]
    assert len(errors) == 1 and "output rr" in errors[0] and "batch 7" in errors[0], err
    assert "Traceback" not in err and "Exception in thread" not in err
    with sqlite3.connect(outbox_path(state, "rr")) as db:
        assert db.execute("SELECT batch_id, payload FROM dead_letters").fetchall() == [(7, "{x]")]
        assert db.execute("SELECT COUNT(*) FROM batches").fetchone() == (0,)


def test_a_directory_in_place_of_an_outbox_affects_only_that_output(tmp_path: Path) -> None:
    """Item 6: the sqlite store's outbox is a directory: moved aside, one line, a new outbox;
    the Redis output is not affected; exit 0 (was: traceback, exit 1, nothing sent)."""
    state = tmp_path / "state"
    broken = outbox_path(state, "store")
    broken.mkdir(parents=True)
    with RedisServer(workdir=tmp_path / "redis") as server:
        proc = _vemonitor([*_redis_args(state, server.port), "duration=6",
                           "block.outputs.sqlite.store.cache_interval=1"], tmp_path)
        _out, err = proc.communicate(timeout=90)
        stored = redis.Redis(port=server.port).hlen("site_bmv700")
    assert proc.returncode == 0, err
    assert stored >= 2
    assert [line for line in err.splitlines() if "moved aside" in line].__len__() == 1, err
    assert list(broken.parent.glob("store.sqlite.broken-*"))
    summary = json.loads((state / "summary.json").read_text())["outputs"]
    assert summary["store"]["batches"] >= 2 and summary["rr"]["batches"] >= 2
