"""Issue 21 item 3: a value out of range costs that field, never the row, through every
non-serial input (real redis-server, mosquitto and influxd): the row keeps its good
fields, the field is counted per input and label, and logged once with the value seen."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion
from vemonitor_integrations.redis import layout

from tests.engine.helpers import Recorder, registry_with_recorders
from tests.integrations.influxdb2.servers import InfluxDB1Server, http_post
from tests.servers import MosquittoServer, RedisServer
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine

# H7 (minimum battery voltage) at 999999.999 V: no battery has it; V and SOC are real.
ROW = {"V": 12.5, "H7": 999999.999, "SOC": 90.0}
GOOD = {"V": 12.5, "SOC": 90.0}
ROWS = 3


def _run(config: dict[str, Any], tmp_path: Path, duration: float,
         during: Any = None) -> tuple[list[dict[str, Any]], Engine]:
    """Run an engine with a 'record' output for ``duration`` s; return the rows it recorded."""
    recorders: dict[str, Recorder] = {}
    registry = registry_with_recorders(recorders)
    config = {**config, "state_dir": str(tmp_path / "state")}
    config["block"]["outputs"] = {"record": {"seen": {"cache_interval": 1}}}
    engine = Engine(build_run(config, registry), registry, SystemClock())
    runner = threading.Thread(target=engine.run, args=(duration,))
    runner.start()
    if during is not None:
        during()
    runner.join(duration + 60)
    engine.shutdown()
    return [dict(r.values) for r in recorders["seen"].rows()], engine


def _check(rows: list[dict[str, Any]], engine: Engine, caplog: pytest.LogCaptureFixture,
           name: str) -> None:
    """Every row kept V and SOC without H7; H7 counted per row; one log line with the value."""
    assert len(rows) >= ROWS
    assert all({k: v for k, v in row.items() if k in ("V", "SOC", "H7")} == GOOD for row in rows)
    stats = engine.inputs[0].stats
    assert not stats.dropped  # no row was lost
    assert stats.fields.as_dict() == {"out_of_range": {"H7": len(rows)}}
    lines = [r.getMessage() for r in caplog.records if r.name == "vemonitor.fieldpolicy"]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"input {name}: H7=999999.999 is outside its range 0..100 V")


def test_redis_input_keeps_the_good_fields(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Rows in the watched Redis hash with H7 = 999999.999 V reach the output with V and SOC."""
    caplog.set_level(logging.WARNING, "vemonitor.fieldpolicy")
    with RedisServer(workdir=tmp_path / "redis") as server:
        client = redis.Redis(port=server.port)
        now = time.time()
        key, index = layout.hmap_key("edge", "bmv700"), layout.index_key("edge", "bmv700")
        for offset in range(ROWS):
            stamp = now - 20 + offset
            client.hset(key, str(stamp), layout.encode_values(ROW))
            client.zadd(index, {str(stamp): stamp})
        config = {"block": {"name": "central", "inputs": {"redis": {"bmv700": {
            "source": "edge", "redis_node": "edge", "since": now - 60, "time_interval": 1}}}},
            "appConnectors": {"redis": {"edge": {"host": "127.0.0.1", "port": server.port}}}}
        rows, engine = _run(config, tmp_path, 3)
    _check(rows, engine, caplog, "bmv700")


def test_influxdb_input_keeps_the_good_fields(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """Points in InfluxDB 1.x with H7 = 999999.999 V are read back as rows with V and SOC."""
    caplog.set_level(logging.WARNING, "vemonitor.fieldpolicy")
    with InfluxDB1Server(workdir=tmp_path / "influx") as server:
        server.influxql("CREATE DATABASE vemonitor", post=True)
        start = int(time.time()) - 30
        lines = "\n".join(f"vemonitor,site=boat V=12.5,H7=999999.999,SOC=90 {start + i}"
                          for i in range(ROWS))
        status, body = http_post(f"{server.url}/write?db=vemonitor&precision=s", lines.encode())
        assert status == 204, body
        config = {"block": {"name": "central", "inputs": {"influxDb2": {"boat": {
            "source": "legacy", "db": "vemonitor", "measurement": "vemonitor",
            "tags": {"site": "boat"}, "columns": ["V", "H7", "SOC"], "since": start - 1,
            "time_interval": 1}}}},
            "appConnectors": {"influxDb2": {"legacy": {"host": server.url, "api": "v1"}}}}
        rows, engine = _run(config, tmp_path, 3)
    _check(rows, engine, caplog, "boat")


def test_mqtt_input_keeps_the_good_fields(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """State messages with H7 = 999999.999 V arrive through mosquitto as rows with V and SOC."""
    caplog.set_level(logging.WARNING, "vemonitor.fieldpolicy")
    with MosquittoServer(workdir=tmp_path / "mqtt") as broker:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-test")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        stop = threading.Event()

        def publish() -> None:
            # The input subscribes once the engine started: publish a row every 0.5 s
            # (each with its own time) while the engine runs.
            stamp = time.time()
            while not stop.wait(0.5):
                stamp += 1
                payload = json.dumps({"time": stamp, **ROW})
                client.publish("fleet/boat/bmv/state", payload, qos=1).wait_for_publish(5)

        config = {"block": {"name": "central", "inputs": {"mqtt": {"fleet": {
            "source": "broker", "topic": "fleet/{site}/{node}/state", "time_interval": 1,
            "ack_after": 0}}}},
            "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": broker.port,
                                                  "protocol": "5"}}}}
        publisher = threading.Thread(target=publish)
        publisher.start()
        try:
            rows, engine = _run(config, tmp_path, 6)
        finally:
            stop.set()
            publisher.join()
            client.loop_stop()
            client.disconnect()
    _check(rows, engine, caplog, "fleet")
