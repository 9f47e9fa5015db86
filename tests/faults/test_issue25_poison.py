"""Issue 25 point 4, poison-proof inputs: the MQTT input on a real mosquitto.

Before: one 100,000-deep JSON message killed the MQTT input's thread (a RecursionError
in paho's callback), and as it was never acknowledged the broker redelivered it at every
restart. Now a message too large or too deep is refused before parsing, set aside
(counted by kind, one WARNING per kind per hour) and acknowledged; the good rows around
it flow; a restarted central does not get it again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.engine.helpers import Recorder, registry_with_recorders
from tests.integrations.mqtt_input.fleet import PersistentMosquitto
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine

# Sizes under the Maximum Packet Size the input asks of the broker (larger ones the broker
# drops for us), over what the input reads: each is refused by the input itself.
POISON = {
    "too_deep": b'{"time": 1, "V": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "too_large": json.dumps({"time": 1, "V": 12.5, "X": "x" * 66_000}).encode(),
    "not_json": b"{x]",
    "not_state": b"[]",
}


def _run(tmp_path: Path, port: int, publish: Any, duration: float
         ) -> tuple[Engine, list[Any]]:
    recorders: dict[str, Recorder] = {}
    registry = registry_with_recorders(recorders)
    config = {"state_dir": str(tmp_path / "state"),
              "block": {"name": "central", "inputs": {"mqtt": {"fleet": {
                  "source": "broker", "topic": "fleet/{site}/{node}/state",
                  "time_interval": 1, "ack_after": 0}}},
                  "outputs": {"record": {"seen": {"cache_interval": 1}}}},
              "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": port,
                                                    "protocol": "5"}}}}
    engine = Engine(build_run(config, registry), registry, SystemClock())
    runner = threading.Thread(target=engine.run, args=(duration,))
    runner.start()
    source = next(iter(engine.sources.values()))
    end = time.monotonic() + 30
    while not source.stats()["available"] and time.monotonic() < end:
        time.sleep(0.1)
    time.sleep(0.5)
    publish()
    runner.join(duration + 60)
    return engine, recorders["seen"].rows()


def test_poison_messages_are_set_aside_and_acknowledged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each poison message twice between good rows: the input lives, the good rows are
    stored, each kind is counted and said once; a restarted central gets none again."""
    caplog.set_level(logging.WARNING, "vemonitor_integrations.mqtt.source")
    base = float(int(time.time()) - 20)
    with PersistentMosquitto(workdir=tmp_path / "mqtt") as broker:
        def publish() -> None:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-poison")
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            stamp = base
            for _ in range(2):
                for payload in POISON.values():
                    stamp += 1
                    good = json.dumps({"time": stamp, "V": 12.5})
                    client.publish("fleet/boat/bmv/state", good, qos=1).wait_for_publish(5)
                    client.publish("fleet/boat/bmv/state", payload, qos=1).wait_for_publish(5)
            # The review's 100,000-deep message (200 KB): the broker never sends it to us
            # (the Maximum Packet Size the input asks for); the next good row comes.
            deep = b'{"time": 1, "V": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            client.publish("fleet/boat/bmv/state", deep, qos=1).wait_for_publish(5)
            good = json.dumps({"time": stamp + 1, "V": 12.5})
            client.publish("fleet/boat/bmv/state", good, qos=1).wait_for_publish(5)
            client.loop_stop()
            client.disconnect()

        engine, rows = _run(tmp_path, broker.port, publish, 5)
        assert [r.time for r in rows] == [base + i for i in range(1, 10)]
        stats = next(iter(engine.sources.values())).stats()
        assert stats["rejected"] == {kind: 2 for kind in POISON}
        lines = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
        assert len(lines) == len(stats["rejected"]), lines
        again, rows_again = _run(tmp_path, broker.port, lambda: None, 3)
        assert rows_again == []
        assert not next(iter(again.sources.values())).stats()["rejected"]
