"""A central MQTT input forwarding several sites into Redis keeps one hash per site and node."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import redis
from paho.mqtt.enums import CallbackAPIVersion
from vemonitor_integrations.mqtt.sink import state_payload

from tests.engine.helpers import Recorder, registry_with_recorders
from tests.servers import MosquittoServer, RedisServer
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine
from vemonitor.model import Row


def test_two_sites_rows_of_the_same_second_are_both_stored(tmp_path: Path) -> None:
    """Rows of boat and van stamped the same second land in {node}_fleet/<site>/bmv each."""
    with MosquittoServer(workdir=tmp_path / "broker") as broker, \
            RedisServer(workdir=tmp_path / "redis") as server:
        recorders: dict[str, Recorder] = {}
        registry = registry_with_recorders(recorders)
        central = {
            "block": {"name": "central",
                      "inputs": {"mqtt": {"fleet": {"source": "broker", "time_interval": 1,
                                                    "topic": "fleet/{site}/{node}/state",
                                                    "ack_after": 0}}},
                      "outputs": {"record": {"seen": {"cache_interval": 1}},
                                  "redis": {"up": {"source": "local", "redis_node": "c",
                                                   "cache_interval": 1}}}},
            "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": broker.port,
                                                  "protocol": "5", "client_id": "central"}},
                              "redis": {"local": {"host": "127.0.0.1", "port": server.port}}},
            "state_dir": str(tmp_path / "central"),
        }
        engine = Engine(build_run(central, registry), registry, SystemClock())
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edges")
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        stamps: list[float] = []

        def publish() -> None:
            deadline = time.monotonic() + 30
            while not any(s.stats().get("available") for s in engine.sources.values()):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            time.sleep(0.5)  # the broker handles the central's SUBSCRIBE first
            stamps.append(stamp := float(int(time.time())))
            for site, volts in (("boat", 12.1), ("van", 13.2)):
                row = Row(stamp, "bmv", {"V": volts, "SER#": f"HQ-{site}"})
                publisher.publish(f"fleet/{site}/bmv/state", state_payload(row), qos=1)

        import threading
        threading.Thread(target=publish, daemon=True).start()
        engine.run(8)
        publisher.disconnect()
        publisher.loop_stop()
        client = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
        hashes = {key: client.hgetall(key) for key in client.smembers("c")}
    [stamp] = stamps
    seen = sorted((r.values["site"], r.values["V"], r.time) for r in recorders["seen"].rows())
    assert seen == [("boat", 12.1, stamp), ("van", 13.2, stamp)]
    assert set(hashes) == {"c_fleet/boat/bmv", "c_fleet/van/bmv"}
    assert all(list(h) == [str(int(stamp))] for h in hashes.values())
