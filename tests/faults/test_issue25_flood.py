"""Issue 25 point 1, an acknowledged row is a stored row: a flood into FleetCentral.

1000 sites x 20 rows (20,000 state messages, QoS 1) land in mosquitto within seconds;
the packaged FleetCentral block (connectors=fleet, its Redis output left out) takes them
into VictoriaMetrics. Before: every tick evicted what its memory cache
(``max_data_points``, 3600) could not hold, before any output took it, and the broker
still got its PUBACK. Now the input waits for room (back-pressure) and a message is
acknowledged only once its row is in the output's durable outbox: every row once.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.integrations.influxdb2.servers import VictoriaMetricsServer
from tests.servers import MosquittoServer
from vemonitor.cli import preflight
from vemonitor.clock import SystemClock
from vemonitor.compose import prepare, register_resolvers, register_schema
from vemonitor.engine import Engine

SITES = 1000
ROWS_PER_SITE = 20
TOTAL = SITES * ROWS_PER_SITE
DEADLINE = 300.0  # seconds for the whole flood to be stored (a loaded 2-core machine)


class HoldingMosquitto(MosquittoServer):
    """mosquitto that holds every unacknowledged QoS 1 message (as a fleet's broker must:
    docs/scaling.md raises ``max_queued_messages``)."""

    def command(self) -> list[str]:
        command = super().command()
        with self.config.open("a") as conf:
            conf.write("\nmax_queued_messages 0\nmax_inflight_messages 0\n")
        return command


def _flood(port: int, base: float) -> None:
    """Publish every site's 20 rows (times base..base+19) as QoS 1 state messages."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for offset in range(ROWS_PER_SITE):
        for site in range(SITES):
            payload = json.dumps({"time": base + offset, "V": 12.0 + site / 1000, "SOC": 50.0})
            infos.append(client.publish(f"fleet/s{site:04d}/bmv/state", payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


def test_a_flood_of_20000_rows_from_1000_sites_is_stored_once(tmp_path: Path) -> None:
    """Every row of the flood in VictoriaMetrics exactly once; nothing evicted; every
    message acknowledged, and only after its row was in the outbox."""
    with HoldingMosquitto(workdir=tmp_path / "mqtt") as broker, \
            VictoriaMetricsServer(workdir=tmp_path / "vm") as vm:
        register_resolvers()
        register_schema()
        spec, registry = preflight(prepare([
            "block=FleetCentral", "connectors=fleet", "~block.outputs.redis",
            f"appConnectors.mqtt.broker.port={broker.port}",
            f"appConnectors.influxDb2.tsdb.host={vm.url}", f"state_dir={tmp_path / 'state'}"]))
        engine = Engine(spec, registry, SystemClock())
        runner = threading.Thread(target=engine.run)
        runner.start()
        source = next(iter(engine.sources.values()))
        end = time.monotonic() + 30
        while not source.stats()["available"] and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(0.5)  # the subscription follows the connection
        base = float(int(time.time()) - 300)
        _flood(broker.port, base)
        output = engine.outputs[0]
        end = time.monotonic() + DEADLINE
        while output.sender.stats.rows < TOTAL and time.monotonic() < end \
                and runner.is_alive():
            time.sleep(0.5)
        engine.stop()
        runner.join(60)
        samples = vm.samples("vemonitor_V")
    stored = {(labels["site"], stamp) for labels, stamp, _ in samples}
    expected = {(f"s{site:04d}", base + offset)
                for site in range(SITES) for offset in range(ROWS_PER_SITE)}
    # (cache.dropped counts ring slots reused, taken rows included: not a loss measure)
    assert len(stored) == len(samples) == TOTAL and stored == expected
    assert output.sender.stats.rows == TOTAL  # each row sent once (no resend, no loss)
    assert engine.inputs[0].stats.rows == TOTAL
    stats = source.stats()
    assert stats["acked"] == TOTAL and stats["dropped"] == 0
