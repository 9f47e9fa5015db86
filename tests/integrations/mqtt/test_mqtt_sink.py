"""The MQTT sink against a real mosquitto: state, discovery, availability, removal, restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from vemonitor_integrations.mqtt.sink import MqttSink, MqttUnavailable

from tests.integrations.helpers import NOW
from tests.integrations.mqtt.support import (
    FakeSource,
    Namespace,
    Observer,
    batch,
    input_info,
    observe,
    rows,
)
from tests.servers import LOOPBACK, MosquittoServer
from vemonitor import testing
from vemonitor.api import Context, Row
from vemonitor.clock import SystemClock
from vemonitor.delivery import RetryPolicy, Sender
from vemonitor.outbox import MemoryOutbox

REPO = Path(__file__).resolve().parents[3]
MakeSink = Callable[..., MqttSink]


def entity_configs(observer: Observer, ns: Namespace) -> dict[str, dict[str, object]]:
    """Return unique_id -> entity config of the live device configs seen.

    As Home Assistant reads a device config: each component of ``cmps`` with more than
    its platform is an entity, with the device block and origin added.
    """
    found = {}
    for topic, message in observer.configs(ns.prefix).items():
        if message.payload:
            assert topic.startswith(f"{ns.prefix}/device/"), topic
            payload = message.json()
            for component in payload["cmps"].values():
                if len(component) > 1:
                    found[component["unique_id"]] = {**component, "device": payload["dev"],
                                                     "origin": payload["o"]}
    return found


def wait_configs(observer: Observer, ns: Namespace, count: int) -> dict[str, dict[str, object]]:
    """Wait until ``count`` live discovery configs were seen, all of them device configs.

    A per-entity topic may be live for a moment while an older version's configs are
    migrated (its retained config, then the migrate marker, then cleared): that passes
    once the migration ends, and fails only if it is still so at the deadline.
    """
    deadline = time.monotonic() + 5
    while True:
        try:
            found = entity_configs(observer, ns)
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        else:
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"only {len(found)} configs, wanted {count}")
        time.sleep(0.02)


# Entities of the default context: BMV V(bat_voltage) I SOC H17 H18 Relay (PID is identity),
# MPPT V I PPV CS ERR MPPT H19 H20 H22, and the bridge's connectivity sensor.
ENTITIES = 6 + 9 + 1
DEVICES = 3  # one device config each: the BMV, the MPPT, the bridge


def test_rows_become_json_state_messages(make_sink: MakeSink, observer: Observer,
                                         ns: Namespace) -> None:
    """One JSON object per row on <base>/<node>/state: time, ts, values under their names."""
    sink = make_sink()
    sink.start()
    sink.write(batch(rows("bmv700", NOW, 2, bat_voltage=12.5, SOC=99.5, Relay=False),
                     rows("mppt", NOW, 1, CS=3, PPV=120)))
    observer.wait(f"{ns.base}/bmv700/state", lambda m: m.json()["time"] == NOW + 1)
    states = observer.on(f"{ns.base}/bmv700/state")
    assert [m.json() for m in states] == [
        {"time": int(NOW), "ts": "2024-05-01T10:40:00+00:00", "bat_voltage": 12.5, "SOC": 99.5,
         "Relay": False},
        {"time": int(NOW) + 1, "ts": "2024-05-01T10:40:01+00:00", "bat_voltage": 12.5,
         "SOC": 99.5, "Relay": False}]
    assert all(m.qos == 1 and not m.retain for m in states)
    assert observer.wait(f"{ns.base}/mppt/state").json()["CS"] == 3


def test_per_value_topics_and_retained_state(make_sink: MakeSink, ns: Namespace,
                                             broker: MosquittoServer) -> None:
    """per_value_topics adds <base>/<node>/<column>; retain_state keeps them for late readers."""
    sink = make_sink(per_value_topics=True, retain_state=True, qos=2)
    sink.start()
    sink.write(batch(rows("mppt", NOW, 1, PPV=120, CS=3, ERR=None)))
    late = observe(broker.port, f"{ns.base}/mppt/#")
    try:
        assert late.wait(f"{ns.base}/mppt/PPV").payload == b"120"
        assert late.wait(f"{ns.base}/mppt/ERR").payload == b"null"
        assert late.wait(f"{ns.base}/mppt/state").retain
    finally:
        late.close()


def test_a_reading_left_out_is_absent_never_zero_or_stale(
        make_sink: MakeSink, ns: Namespace, observer: Observer, broker: MosquittoServer) -> None:
    """Issue 21: a row without VS (left out of range): its state JSON has no VS (Home
    Assistant's template reads None: unknown), and VS's retained per-value topic becomes
    ``null``, so the old -0.014 is not shown as current; no 0 anywhere."""
    sink = make_sink(per_value_topics=True, retain_state=True)
    sink.start()
    sink.write(batch([Row(NOW, "bmv700", {"V": 13.259, "VS": -0.014}),
                      Row(NOW + 1, "bmv700", {"V": 13.26})]))
    observer.wait(f"{ns.base}/bmv700/state", lambda m: m.json()["time"] == NOW + 1)
    states = [m.json() for m in observer.on(f"{ns.base}/bmv700/state")]
    assert [s.get("VS", "absent") for s in states] == [-0.014, "absent"]
    observer.wait(f"{ns.base}/bmv700/VS", lambda m: m.payload == b"null")
    assert [m.payload for m in observer.on(f"{ns.base}/bmv700/VS")] == [b"-0.014", b"null"]
    assert [m.payload for m in observer.on(f"{ns.base}/bmv700/V")] == [b"13.259", b"13.26"]
    late = observe(broker.port, f"{ns.base}/bmv700/VS")  # what a reader joining now gets
    try:
        retained = late.wait(f"{ns.base}/bmv700/VS")
        assert retained.retain and retained.payload == b"null"
    finally:
        late.close()


def test_late_subscriber_gets_retained_discovery_and_availability(
        make_sink: MakeSink, broker: MosquittoServer, observer: Observer, ns: Namespace) -> None:
    """Discovery (QoS 1), the bridge's and devices' availability are retained."""
    sink = make_sink()
    sink.start()
    wait_configs(observer, ns, ENTITIES)  # everything was published before the late subscriber
    time.sleep(0.1)
    late = observe(broker.port)
    try:
        found = wait_configs(late, ns, ENTITIES)
        assert all(m.retain for m in late.configs(ns.prefix).values())
        assert late.wait(f"{ns.base}/bridge/availability").payload == b"online"
        assert late.wait(f"{ns.base}/bmv700/availability").payload == b"online"
        assert late.wait(f"{ns.base}/mppt/availability").retain
    finally:
        late.close()
    voltage = found["vemonitor_TestBlock_bmv_V"]
    assert voltage["state_topic"] == f"{ns.base}/bmv700/state"
    assert "bat_voltage" in str(voltage["value_template"])
    assert found["vemonitor_HQ2211ABCDE_H19"]["state_class"] == "total_increasing"
    assert found["vemonitor_HQ2211ABCDE_CS"]["device_class"] == "enum"
    device = found["vemonitor_HQ2211ABCDE_PPV"]["device"]
    assert isinstance(device, dict) and device["manufacturer"] == "Victron Energy"
    assert device["via_device"] == sink.layout.bridge_identifier
    assert sink.layout.bridge_identifier in {
        i for p in found.values() for i in p["device"]["identifiers"]}  # type: ignore[index]


def test_unique_ids_are_stable_across_instances_ports_and_order(
        make_sink: MakeSink, make_ctx: Callable[..., Context], observer: Observer,
        ns: Namespace, tmp_path: Path) -> None:
    """A second sink (inputs in another order, device on another port) publishes the same ids."""
    first = make_sink(make_ctx(state_dir=tmp_path / "a"))
    first.start()
    ids_first = set(wait_configs(observer, ns, ENTITIES))
    first.close()
    observer.clear()
    moved = FakeSource("mppt-on-ttyUSB3", {"available": True, "pid": "0xA053",
                                           "product": "SmartSolar MPPT 75/15",
                                           "serial": "HQ2211ABCDE", "firmware": "1.59"})
    base = make_ctx()
    inputs = {"mppt": input_info("mppt", moved, base.inputs["mppt"].columns, connector="mppt"),
              "bmv700": base.inputs["bmv700"]}
    second = make_sink(make_ctx(inputs, state_dir=tmp_path / "b"))
    second.start()
    assert set(wait_configs(observer, ns, ENTITIES)) == ids_first
    assert "vemonitor_HQ2211ABCDE_V" in ids_first and "vemonitor_TestBlock_bmv_V" in ids_first


def test_inputs_sharing_a_device_publish_one_device(make_sink: MakeSink,
                                                     sources: dict[str, FakeSource],
                                                     make_ctx: Callable[..., Context],
                                                     observer: Observer, ns: Namespace) -> None:
    """Two inputs on one connector: one HA device, one entity per field, each state topic used."""
    inputs = {"fast": input_info("fast", sources["mppt"], ("V", "PPV")),
              "slow": input_info("slow", sources["mppt"], ("V", "H20", "H22"))}
    sink = make_sink(make_ctx(inputs))
    sink.start()
    found = wait_configs(observer, ns, 1 + 4)
    devices = {tuple(p["device"]["identifiers"]) for p in found.values()  # type: ignore[index]
               if p["unique_id"] != f"{sink.layout.bridge_identifier}_connectivity"}
    assert devices == {("vemonitor_HQ2211ABCDE",)}
    assert found["vemonitor_HQ2211ABCDE_PPV"]["state_topic"] == f"{ns.base}/fast/state"
    assert found["vemonitor_HQ2211ABCDE_H22"]["state_topic"] == f"{ns.base}/slow/state"


def test_device_ids_name_a_bmv_without_serial(make_sink: MakeSink, observer: Observer,
                                              ns: Namespace) -> None:
    """device_ids gives a BMV without SER# the id the user chose."""
    sink = make_sink(device_ids={"bmv700": "shed-bmv"})
    sink.start()
    found = wait_configs(observer, ns, ENTITIES)
    assert "vemonitor_shed-bmv_SOC" in found


def test_device_availability_follows_the_device(make_sink: MakeSink,
                                                sources: dict[str, FakeSource],
                                                observer: Observer, ns: Namespace) -> None:
    """Unplugged -> <base>/<node>/availability offline (once), back -> online."""
    sink = make_sink()
    sink.start()
    topic = f"{ns.base}/bmv700/availability"
    observer.wait(topic, lambda m: m.payload == b"online")
    sources["bmv"].info["available"] = False
    observer.wait(topic, lambda m: m.payload == b"offline")
    time.sleep(0.3)  # several polls: published on change only
    assert [m.payload for m in observer.on(topic)] == [b"online", b"offline"]
    sources["bmv"].info["available"] = True
    observer.wait(topic, lambda m: m.payload == b"online" and len(observer.on(topic)) == 3)
    assert [m.payload for m in observer.on(f"{ns.base}/mppt/availability")] == [b"online"]


def test_home_assistant_online_republishes_discovery(make_sink: MakeSink, observer: Observer,
                                                     ns: Namespace, broker: MosquittoServer) -> None:
    """A non-retained `online` on <prefix>/status re-publishes every config once."""
    sink = make_sink()
    sink.start()
    wait_configs(observer, ns, ENTITIES)
    time.sleep(0.2)
    observer.clear()
    ha = observe(broker.port, "nothing/here")
    try:
        ha.client.publish(f"{ns.prefix}/status", "online", qos=1).wait_for_publish(2)
        wait_configs(observer, ns, ENTITIES)
        time.sleep(0.3)
        assert len(observer.configs(ns.prefix)) == DEVICES
        count = sum(1 for m in observer.messages if m.topic.endswith("/config"))
        assert count == DEVICES  # once, not per poll
        observer.clear()
        ha.client.publish(f"{ns.prefix}/status", "offline", qos=1).wait_for_publish(2)
        time.sleep(0.3)
        assert not observer.configs(ns.prefix)
    finally:
        ha.close()


def test_writes_do_not_republish_discovery(make_sink: MakeSink, observer: Observer,
                                           ns: Namespace) -> None:
    """Discovery goes out once per connection, not per write (no storms)."""
    sink = make_sink()
    sink.start()
    wait_configs(observer, ns, ENTITIES)
    time.sleep(0.2)
    observer.clear()
    for i in range(5):
        sink.write(batch(rows("bmv700", NOW + i, 1, bat_voltage=12.5, SOC=99.5)))
    time.sleep(0.2)
    assert not observer.configs(ns.prefix)


def test_new_columns_in_rows_get_entities(make_sink: MakeSink, sources: dict[str, FakeSource],
                                          make_ctx: Callable[..., Context], observer: Observer,
                                          ns: Namespace) -> None:
    """An input with every column: entities appear with the first row carrying them."""
    sink = make_sink(make_ctx({"mppt": input_info("mppt", sources["mppt"], ())}))
    sink.start()
    sink.write(batch(rows("mppt", NOW, 1, V=12.1, H20=0.5)))
    state = observer.wait(f"{ns.base}/mppt/state")
    found = entity_configs(observer, ns)
    assert {"vemonitor_HQ2211ABCDE_V", "vemonitor_HQ2211ABCDE_H20"} <= set(found)
    config_time = observer.wait(f"{ns.prefix}/device/vemonitor_HQ2211ABCDE/config",
                                lambda m: bool(m.payload) and "H20" in m.json()["cmps"])
    assert observer.messages.index(config_time) < observer.messages.index(state)


def test_entities_no_longer_configured_are_removed(make_sink: MakeSink,
                                                   sources: dict[str, FakeSource],
                                                   make_ctx: Callable[..., Context],
                                                   broker: MosquittoServer, observer: Observer,
                                                   ns: Namespace) -> None:
    """Next run: a dropped column is sent once as its platform only (HA removes it), a
    dropped device's config gets an empty retained payload."""
    first = make_sink()
    first.start()
    wait_configs(observer, ns, ENTITIES)
    first.close()
    inputs = {"mppt": input_info("mppt", sources["mppt"], ("V", "PPV"))}
    second = make_sink(make_ctx(inputs))
    second.start()
    mppt = f"{ns.prefix}/device/vemonitor_HQ2211ABCDE/config"
    observer.wait(mppt, lambda m: bool(m.payload)
                  and m.json()["cmps"].get("H19") == {"p": "sensor"})
    observer.wait(f"{ns.prefix}/device/vemonitor_TestBlock_bmv/config",
                  lambda m: m.payload == b"")
    # Then the config without the removed components (what a late subscriber gets).
    observer.wait(mppt, lambda m: bool(m.payload) and "H19" not in m.json()["cmps"])
    late = observe(broker.port, f"{ns.prefix}/#")
    try:
        assert set(wait_configs(late, ns, 3)) == {
            "vemonitor_HQ2211ABCDE_V", "vemonitor_HQ2211ABCDE_PPV",
            f"{second.layout.bridge_identifier}_connectivity"}
        assert all(m.retain for m in late.configs(ns.prefix).values())
    finally:
        late.close()
    state = json.loads(Path(second.state_path).read_text())
    assert len(state["topics"]) == 2
    assert state["components"][mppt] == {"PPV": "sensor", "V": "sensor"}


def test_discovery_off_publishes_state_only(make_sink: MakeSink, observer: Observer,
                                            ns: Namespace) -> None:
    """discovery: false -> no config topics, still state and availability."""
    sink = make_sink(discovery=False)
    sink.start()
    sink.write(batch(rows("mppt", NOW, 1, PPV=1)))
    observer.wait(f"{ns.base}/mppt/availability")
    assert observer.wait(f"{ns.base}/mppt/state")
    assert not observer.configs(ns.prefix)


def test_killed_client_leaves_offline_last_will(broker: MosquittoServer, observer: Observer,
                                                ns: Namespace, tmp_path: Path) -> None:
    """A vemonitor killed with SIGKILL: the broker publishes the retained `offline` will."""
    code = f"""
import sys, time
from vemonitor_integrations.mqtt.schema import MqttConnector, MqttOutput
from vemonitor_integrations.mqtt.sink import MqttSink
from vemonitor.clock import SystemClock
from vemonitor import testing
from vemonitor.api import Context, Row
sink = MqttSink(MqttOutput(name="mqtt", source="b", base_topic="{ns.base}",
                           discovery_prefix="{ns.prefix}"),
                MqttConnector(host="{LOOPBACK}", port={broker.port}, keepalive=5),
                Context(clock=SystemClock(), state_dir="{tmp_path}", block="Killed"))
sink.start()
print("ready", flush=True)
time.sleep(60)
"""
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        topic = f"{ns.base}/bridge/availability"
        observer.wait(topic, lambda m: m.payload == b"online")
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        observer.wait(topic, lambda m: m.payload == b"offline")
    finally:
        child.kill()
        child.wait(5)
    late = observe(broker.port, f"{ns.base}/bridge/availability")
    try:
        message = late.wait(f"{ns.base}/bridge/availability")
        assert (message.payload, message.retain) == (b"offline", True)
    finally:
        late.close()


def test_clean_close_says_offline(make_sink: MakeSink, observer: Observer, ns: Namespace) -> None:
    """close() publishes the bridge's `offline` (a clean DISCONNECT fires no will); idempotent."""
    sink = make_sink()
    sink.start()
    topic = f"{ns.base}/bridge/availability"
    observer.wait(topic, lambda m: m.payload == b"online")
    sink.close()
    sink.close()
    observer.wait(topic, lambda m: m.payload == b"offline")


def test_broker_restart_loses_no_rows(make_sink: MakeSink, make_ctx: Callable[..., Context],
                                      ns: Namespace, tmp_path: Path) -> None:
    """Down: write raises and the outbox keeps rows; back: all rows arrive, discovery once more."""
    with MosquittoServer(workdir=tmp_path / "broker") as server:
        sink = make_sink(port=server.port)
        sink.start()
        sink.write(batch(rows("mppt", NOW, 1, PPV=1)))
        server.stop()
        with pytest.raises(MqttUnavailable):
            for _ in range(50):  # the disconnect is noticed within a moment
                sink.write(batch(rows("mppt", NOW + 1, 1, PPV=2)))
                time.sleep(0.05)
        server.start()
        observer = observe(server.port)
        try:
            outbox = MemoryOutbox("mqtt")
            outbox.open()
            outbox.put(batch(rows("mppt", NOW + 1, 3, PPV=2)), NOW)
            sender = Sender("mqtt", sink, outbox, SystemClock(), RetryPolicy(0.2, 0.5), seed=1)
            sender.start()
            sender.notify()
            observer.wait(f"{ns.base}/mppt/state", lambda m: m.json()["time"] == NOW + 3,
                          timeout=10)
            sender.stop(2)
            times = [m.json()["time"] for m in observer.on(f"{ns.base}/mppt/state")]
            assert sorted(set(times)) == [NOW + 1, NOW + 2, NOW + 3]
            assert outbox.depth()["rows"] == 0
            observer.wait(f"{ns.base}/bridge/availability", lambda m: m.payload == b"online")
            assert len(entity_configs(observer, ns)) == ENTITIES  # re-published on reconnect
        finally:
            observer.close()


def test_broker_down_at_start_is_an_outage(make_sink: MakeSink) -> None:
    """No broker: start() raises MqttUnavailable within the timeout, naming host:port."""
    from tests.servers import free_port

    port = free_port()
    sink = make_sink(port=port, connector={"timeout": 0.5})
    began = time.monotonic()
    with pytest.raises(MqttUnavailable, match=f"{LOOPBACK}:{port}"):
        sink.start()
    assert time.monotonic() - began < 3
    with pytest.raises(MqttUnavailable, match="not connected"):
        sink.write(batch(rows("mppt", NOW, 1, PPV=1)))


def test_per_entity_discovery_of_an_older_version_is_migrated(
        make_sink: MakeSink, make_ctx: Callable[..., Context], broker: MosquittoServer,
        observer: Observer, ns: Namespace, tmp_path: Path) -> None:
    """vemonitor <= 0.1's per-entity configs move to device discovery, as HA documents it.

    Per old topic: {"migrate_discovery": true} (retained), then the device config with the
    same unique_id, then an empty retained payload; a late subscriber (HA restarting)
    finds only the device configs.
    """
    state_dir = tmp_path / "state-old"
    old = [f"{ns.prefix}/sensor/vemonitor_HQ2211ABCDE/V/config",
           f"{ns.prefix}/sensor/vemonitor_HQ2211ABCDE/H19/config",
           f"{ns.prefix}/binary_sensor/vemonitor_TestBlock_bmv/Relay/config"]
    publisher = observe(broker.port, "nothing/here")
    try:
        for topic in old:  # what the old version left retained on the broker
            unique_id = "_".join(topic.split("/")[2:4])
            publisher.client.publish(topic, json.dumps({"unique_id": unique_id}), qos=1,
                                     retain=True).wait_for_publish(2)
    finally:
        publisher.close()
    state_dir.mkdir()
    (state_dir / "mqtt-mqtt.json").write_text(json.dumps({"version": 1, "topics": old}))
    sink = make_sink(make_ctx(state_dir=state_dir))
    sink.start()
    mppt = f"{ns.prefix}/device/vemonitor_HQ2211ABCDE/config"
    found = wait_configs(observer, ns, ENTITIES)
    assert {"vemonitor_HQ2211ABCDE_V", "vemonitor_HQ2211ABCDE_H19",
            "vemonitor_TestBlock_bmv_Relay"} <= set(found)
    for topic in old:
        cleared = observer.wait(topic, lambda m: m.payload == b"")
        migrate = observer.wait(topic, lambda m: m.payload == b'{"migrate_discovery":true}')
        device_topic = f"{ns.prefix}/device/{topic.split('/')[2]}/config"
        device = observer.wait(device_topic, lambda m: bool(m.payload))
        order = observer.messages.index
        assert order(migrate) < order(device) < order(cleared), topic
    late = observe(broker.port, f"{ns.prefix}/#")
    try:
        wait_configs(late, ns, ENTITIES)
        time.sleep(0.2)
        assert set(late.configs(ns.prefix)) == {
            mppt, f"{ns.prefix}/device/vemonitor_TestBlock_bmv/config",
            f"{ns.prefix}/device/{sink.layout.bridge_identifier}/config"}
    finally:
        late.close()
    saved = json.loads((state_dir / "mqtt-mqtt.json").read_text())
    assert not any("/sensor/" in t or "/binary_sensor/" in t for t in saved["topics"])


def test_the_sink_keeps_the_shipped_contract(make_sink: Callable[..., MqttSink],
                                             observer: Observer, ns: Namespace) -> None:
    """vemonitor.testing.check_sink_contract: close before start and twice after, a retried
    batch accepted again (a state topic is retained: the last row is what stays)."""
    sample = testing.batch("mqtt", testing.rows(NOW, 3, "bmv700"))
    testing.check_sink_contract(make_sink, sample)
    topic = f"{ns.base}/bmv700/state"

    def newest_sent_twice(_: object) -> bool:  # the batch and its retry both arrived
        return [m.json()["V"] for m in observer.on(topic)].count(12.5 + 2) == 2

    observer.wait(topic, newest_sent_twice)
    assert observer.last(topic).json()["V"] == 12.5 + 2  # type: ignore[union-attr]
