"""Nothing lost, nothing hammered: sinks down for 10 device minutes while a block runs on hw_sim."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis

from tests.engine.helpers import Recorder, block_config, running
from tests.integrations.emoncms.contract_server import ContractServer
from tests.servers import RedisServer

OUTAGE = 600.0  # device seconds
SPEED = 60.0


class DurableRedis(RedisServer):
    """A redis-server that keeps its data across a restart (AOF), like a real install."""

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--appendonly") + 1] = "yes"
        return cmd


def _bmv_block(tmp_path: Path, outputs: dict[str, Any], connectors: dict[str, Any]) -> dict[
        str, Any]:
    inputs = {"bmv700": {"source": "bmv700", "time_interval": 1, "columns": ["V", "I", "SOC"]}}
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
    config["appConnectors"].update(connectors)
    return config


def _run_with_outage(engine: Any, stop_sink: Any, start_sink: Any, clock_now: Any,
                     warmup: float = 60.0) -> tuple[float, float]:
    """Run the engine in a thread; take the sink down for OUTAGE device seconds."""
    runner = threading.Thread(target=engine.run, daemon=True)
    RUNNERS.append(runner)
    runner.start()
    time.sleep(warmup / SPEED)
    down_at = clock_now()
    stop_sink()
    time.sleep(OUTAGE / SPEED)
    start_sink()
    up_at = clock_now()
    return down_at, up_at


RUNNERS: list[threading.Thread] = []


def _stop(engine: Any) -> None:
    """Stop the engine and wait until its shutdown (final flush and sends) is done."""
    engine.stop()
    while RUNNERS:
        RUNNERS.pop().join(30)


def _drain(engine: Any, name: str, timeout: float = 30.0) -> None:
    output = next(o for o in engine.outputs if o.spec.name == name)
    deadline = time.monotonic() + timeout
    while output.outbox.depth()["rows"] and time.monotonic() < deadline:
        time.sleep(0.1)


def test_redis_outage_loses_nothing_and_backs_off(tmp_path: Path) -> None:
    """Redis down 10 device minutes: every row lands once, in order; few attempts per minute."""
    recorders: dict[str, Recorder] = {}
    with DurableRedis(workdir=tmp_path / "redis") as server:
        outputs = {"record": {"all": {"time_interval": 1, "cache_interval": 5}},
                   "redis": {"ts": {"source": "local", "redis_node": "site", "time_interval": 1,
                                    "cache_interval": 5,
                                    "delivery": {"retry_initial": 1, "retry_max": 60}}}}
        connectors = {"redis": {"local": {"host": "127.0.0.1", "port": server.port}}}
        config = _bmv_block(tmp_path, outputs, connectors)
        with running(config, recorders, ["bmv700"], tmp_path / "sim", speed=SPEED) as (
                engine, _sim):
            sender = next(o for o in engine.outputs if o.spec.name == "ts").sender
            before: list[int] = []

            def stop() -> None:
                before.append(sender.stats.attempts)
                server.stop()

            down, up = _run_with_outage(engine, stop, server.start, engine.clock.now)
            attempts_during = sender.stats.attempts - before[0]
            time.sleep(60 / SPEED)
            _drain(engine, "ts")
            _stop(engine)
        client = redis.Redis(host="127.0.0.1", port=server.port)
        stored = sorted(int(t) for t in client.hkeys("site_bmv700"))
    produced = [int(r.time) for r in recorders["all"].rows("bmv700")]
    assert len(produced) > OUTAGE
    assert stored == sorted(set(produced)) == produced  # every row, once, in order
    minutes = (up - down) / 60
    assert sender.stats.outages == 1
    assert attempts_during <= 8 + 1.5 * minutes, (attempts_during, minutes)


def test_emoncms_outage_loses_nothing_and_backs_off(tmp_path: Path) -> None:
    """EmonCms answering 500 then timing out for 10 device minutes: every point once."""
    recorders: dict[str, Recorder] = {}
    box: dict[str, Any] = {}
    outputs = {"record": {"all": {"time_interval": 1, "cache_interval": 5}},
               "emoncms": {"em": {"source": "local", "time_interval": 1, "cache_interval": 5,
                                  "delivery": {"retry_initial": 1, "retry_max": 60}}}}
    server_holder: list[ContractServer] = []
    config = _bmv_block(tmp_path, outputs, {"emoncms": {"local": {
        "addr": "http://127.0.0.1:1", "apikey": "k" * 32, "timeout": 0.5,
        # At speed 60 a 20 ms request is 1.2 device seconds: sentat's skew correction would
        # shift points by a second, so this test sends absolute times only.
        "correct_skew": False}}})
    from vemonitor.clock import ScaledClock, SystemClock
    clock = ScaledClock(SystemClock(), SPEED)
    server = ContractServer(apikeys=["k" * 32], clock=clock.now).start()
    server_holder.append(server)
    config["appConnectors"]["emoncms"]["local"]["addr"] = server.url
    try:
        with running(config, recorders, ["bmv700"], tmp_path / "sim", speed=SPEED,
                     clock=clock) as (engine, _sim):
            def down() -> None:
                box["requests_before"] = server.request_count()
                server.fail("http500", times=3)
                server.fail("timeout", times=10_000, delay=1.0)

            def up() -> None:
                box["requests_during"] = server.request_count() - box["requests_before"]
                server._failures.clear()  # noqa: SLF001 (test server's own state)

            start, end = _run_with_outage(engine, down, up, engine.clock.now)
            time.sleep(60 / SPEED)
            _drain(engine, "em")
            _stop(engine)
    finally:
        server.stop()
    produced = {int(r.time) for r in recorders["all"].rows("bmv700")}
    delivered = [p for p in server.stored() if p.node == "bmv700" and p.name == "V"]
    assert {p.time for p in delivered} == produced
    assert len(delivered) == len(produced)
    minutes = (end - start) / 60
    assert box["requests_during"] <= 8 + 1.5 * minutes, (box, minutes)


def _vemonitor(args: list[str], tmp_path: Path, **kwargs: Any) -> subprocess.Popen[str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen([sys.executable, "-c", "from vemonitor.cli import main; main()",
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _outbox_times(path: Path) -> list[int]:
    """Return the row times waiting in an outbox file ([] while it is not there yet)."""
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return sorted(int(t) for (payload,) in db.execute("select payload from batches")
                          for t, *_ in json.loads(payload))
    except sqlite3.Error:
        return []  # created, its table not yet (or locked for a moment)


def test_sigkill_during_outage_then_restart_loses_nothing(tmp_path: Path) -> None:
    """kill -9 while Redis is down; restart with Redis up: the outbox's rows all arrive, once."""
    state = tmp_path / "state"
    with DurableRedis(workdir=tmp_path / "redis") as server:
        args = ["block=BatteryMonitor", "simulator.devices=[bmv700]", f"state_dir={state}",
                "+appConnectors.redis.local.host=127.0.0.1",
                f"+appConnectors.redis.local.port={server.port}",
                "+block.outputs.redis.ts.source=local", "+block.outputs.redis.ts.redis_node=site",
                "+block.outputs.redis.ts.cache_interval=2"]
        server.stop()
        first = _vemonitor(args, tmp_path)
        # Killed once three rows wait in the outbox (not after a fixed time: a loaded
        # machine may take longer to start).
        deadline = time.monotonic() + 60
        while len(_outbox_times(state / "outbox" / "ts.sqlite")) < 3:
            assert time.monotonic() < deadline and first.poll() is None, "no rows in the outbox"
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        waiting = _outbox_times(state / "outbox" / "ts.sqlite")
        assert len(waiting) >= 3
        server.start()
        second = _vemonitor([*args, "duration=6"], tmp_path)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        stored = sorted(int(t) for t in redis.Redis(port=server.port).hkeys("site_bmv700"))
    assert set(waiting) <= set(stored)
    assert len(stored) == len(set(stored))


def test_secrets_never_appear_with_debug_on(tmp_path: Path) -> None:
    """Redis password and EmonCms key from the environment: absent from all output, debug on,
    including a wrong-password failure."""
    password, apikey = "s3cret-redis-pw-123", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
    server = ContractServer(apikeys=[apikey]).start()
    try:
        with RedisServer(workdir=tmp_path / "redis", password=password) as redis_server:
            common = ["block=BatteryMonitor", "simulator.devices=[bmv700]", "debug=true",
                      "duration=5", f"state_dir={tmp_path / 'state'}",
                      "+appConnectors.redis.local.host=127.0.0.1",
                      f"+appConnectors.redis.local.port={redis_server.port}",
                      "+appConnectors.redis.local.password=${oc.env:VM_REDIS_PW}",
                      f"+appConnectors.emoncms.local.addr={server.url}",
                      "+appConnectors.emoncms.local.apikey=${oc.env:VM_EMON_KEY}",
                      "+block.outputs.redis.ts.source=local",
                      "+block.outputs.redis.ts.redis_node=site",
                      "+block.outputs.emoncms.em.source=local"]
            good = _vemonitor(common, tmp_path, env={"VM_REDIS_PW": password,
                                                     "VM_EMON_KEY": apikey})
            out, err = good.communicate(timeout=60)
            assert good.returncode == 0, err
            assert "DEBUG" in err
            wrong = _vemonitor(common, tmp_path, env={"VM_REDIS_PW": password + "x",
                                                      "VM_EMON_KEY": apikey + "0"})
            out2, err2 = wrong.communicate(timeout=60)
    finally:
        server.stop()
    for text in (out, err, out2, err2):
        assert password not in text and apikey not in text
    assert server.stored(), "the good run delivered nothing"
