"""End to end on mosquitto: a simulated BMV unplugged and replugged flips its HA availability."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.engine.helpers import Recorder, block_config, running
from tests.servers import MosquittoServer


def test_device_availability_follows_unplug_and_replug(tmp_path: Path) -> None:
    """Availability goes offline when the BMV's port vanishes and online when it returns;
    discovery names the device by model and firmware from its frames."""
    messages: list[tuple[str, str, bool]] = []
    lock = threading.Lock()
    with MosquittoServer(workdir=tmp_path / "broker") as broker:
        watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher")

        def on_message(_client: object, _userdata: object, msg: mqtt.MQTTMessage) -> None:
            with lock:
                messages.append((msg.topic, msg.payload.decode(), msg.retain))

        watcher.on_message = on_message
        watcher.connect("127.0.0.1", broker.port)
        watcher.subscribe("#")
        watcher.loop_start()
        inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "SOC", "H17"]}}
        outputs = {"mqtt": {"ha": {"source": "local", "cache_interval": 1}}}
        config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state",
                              stale_after=2)
        config["appConnectors"]["mqtt"] = {"local": {"host": "127.0.0.1", "port": broker.port}}
        recorders: dict[str, Recorder] = {}
        with running(config, recorders, ["bmv700"], tmp_path / "sim") as (engine, sim):
            runner = threading.Thread(target=engine.run, args=(18,), daemon=True)
            runner.start()
            time.sleep(5)
            sim.unplug("bmv700", seconds=6.0)
            runner.join(40)
        watcher.loop_stop()
        watcher.disconnect()
    availability = [p for t, p, _ in messages if t == "vemonitor/bmv/availability"]
    # Changes only, in order: (offline before the first frame,) online, offline at the
    # unplug, online after the replug.
    changes = [a for i, a in enumerate(availability) if i == 0 or a != availability[i - 1]]
    start = changes.index("online")
    assert changes[start:start + 3] == ["online", "offline", "online"], availability
    configs = [p for t, p, r in messages if t.startswith("homeassistant/device/") and
               '"H17"' in p]
    assert configs and '"model": "BMV-700"' in configs[0].replace('":"', '": "')
    states = [t for t, _, _ in messages if t == "vemonitor/bmv/state"]
    assert len(states) >= 8
