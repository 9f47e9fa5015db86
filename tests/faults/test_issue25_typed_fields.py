"""Issue 25 point 5, typed fields: a fleet's sites through mosquitto into a real influxd.

Before: one site's ``"V": 12`` (an int) fixed V as an integer field in InfluxDB, and every
later batch with a float V was refused and set aside; a NaN in a column without a range
made the whole tick's batch unencodable. Now a column's kind is fixed by the field table
(an int where a float belongs is converted), a value of the wrong kind or NaN is left out
of its row and counted, and every other field of every site is stored.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.integrations.influxdb2.servers import InfluxDB1Server
from tests.servers import MosquittoServer
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine
from vemonitor.fieldpolicy import FieldDrops, keep_good_fields
from vemonitor.registry import Registry

ROUNDS = 6


def _publish(port: int, stop: threading.Event, sent: list[float]) -> None:
    """Publish, every 0.4 s, site 'ints' with V as an int and site 'floats' with a float V,
    a NaN in a column without a range (Tbox) and a text where a number belongs (SOC)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-typed")
    client.connect("127.0.0.1", port)
    client.loop_start()
    stamp = float(int(time.time()) - 30)
    try:
        while not stop.wait(0.4):
            stamp += 1
            # json.dumps writes NaN as the bare word NaN (as Python and many edges do).
            for topic, values in (("fleet/ints/bmv/state", {"V": 12, "SOC": 90}),
                                  ("fleet/floats/bmv/state",
                                   {"V": 12.5, "Tbox": float("nan"), "SOC": "ninety"})):
                payload = json.dumps({"time": stamp, **values})
                client.publish(topic, payload, qos=1).wait_for_publish(5)
            sent.append(stamp)
    finally:
        client.loop_stop()
        client.disconnect()


def test_one_sites_int_and_another_sites_nan_cost_only_those_values(tmp_path: Path) -> None:
    """Every row of both sites reaches InfluxDB with V a float; NaN and text left out,
    counted per (reason, label); nothing set aside."""
    with MosquittoServer(workdir=tmp_path / "mqtt") as broker, \
            InfluxDB1Server(workdir=tmp_path / "influx") as influx:
        influx.influxql("CREATE DATABASE fleet", post=True)
        config: dict[str, Any] = {
            "state_dir": str(tmp_path / "state"),
            "block": {"name": "central",
                      "inputs": {"mqtt": {"fleet": {
                          "source": "broker", "topic": "fleet/{site}/{node}/state",
                          "time_interval": 1, "ack_after": 0}}},
                      "outputs": {"influxDb2": {"tsdb": {
                          "source": "db", "db": "fleet", "time_interval": 1,
                          "cache_interval": 1}}}},
            "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": broker.port,
                                                  "protocol": "5"}},
                              "influxDb2": {"db": {"host": influx.url, "api": "v1"}}}}
        registry = Registry().discover()
        engine = Engine(build_run(config, registry), registry, SystemClock())
        runner = threading.Thread(target=engine.run, args=(ROUNDS,))
        stop, sent = threading.Event(), []
        publisher = threading.Thread(target=_publish, args=(broker.port, stop, sent))
        runner.start()
        time.sleep(1.0)  # the input subscribes once the engine started
        publisher.start()
        runner.join(ROUNDS + 60)
        stop.set()
        publisher.join()
        engine.shutdown()
        points = influx.points("fleet")
        types = influx.influxql('SHOW FIELD KEYS FROM "vemonitor"', "fleet")
    output = engine.outputs[0]
    assert output.outbox.dead_batches == 0 and output.sender.stats.errors == 0, \
        output.sender.stats.last_error
    fields = {name: kind for name, kind in types["results"][0]["series"][0]["values"]}
    assert fields["V"] == "float"
    assert "Tbox" not in fields
    by_site: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        by_site.setdefault(point["site"], []).append(point)
    assert set(by_site) == {"ints", "floats"}
    rows = engine.inputs[0].stats.rows
    assert len(points) == rows >= 4
    assert all(p["V"] == 12.0 for p in by_site["ints"]) and all(
        p["V"] == 12.5 for p in by_site["floats"])
    assert all(p["SOC"] == 90.0 for p in by_site["ints"]) and all(
        p["SOC"] is None for p in by_site["floats"])
    floats = len(by_site["floats"])
    assert engine.inputs[0].stats.fields.as_dict() == {
        "not_finite": {"Tbox": floats}, "wrong_kind": {"SOC": floats}}


def test_column_kinds_follow_the_field_table() -> None:
    """The conversions a fleet needs, and the values that are left out, by reason."""
    drops = FieldDrops("input t")
    got = keep_good_fields({"V": 12, "P": 40.0, "LOAD": "ON", "Relay": 1, "PID": "0xA389",
                            "SER#": "HQ1", "FW": 308, "T": 2.5, "I": True, "X": [1],
                            "Y": float("inf"), "Z": 2 ** 64, "W": "w" * 300, "U": 7},
                           drops, 0.0)
    assert got == {"V": 12.0, "P": 40, "LOAD": True, "Relay": True, "PID": 0xA389,
                   "SER#": "HQ1", "U": 7}
    assert type(got["V"]) is float and type(got["P"]) is int
    assert drops.as_dict() == {"wrong_kind": {"FW": 1, "I": 1, "T": 1, "X": 1},
                               "not_finite": {"Y": 1}, "too_large": {"W": 1, "Z": 1}}
