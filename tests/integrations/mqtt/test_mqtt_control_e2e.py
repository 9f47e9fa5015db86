"""Issue 23 end to end over MQTT: a real mosquitto, the real control core, the simulator's pty.

Switch the load, limit the charge current (a lease), switch the charger and a BMV relay by
publishing on the command topics, as Home Assistant does; the simulated device's registers change,
each result comes back on the result topic and the state follows the read-back. The core's
own refusals (NaN, out of range) arrive the same way and nothing is sent; without
``allow_commands`` a command changes nothing at all.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from vemonitor_integrations.mqtt.schema import MqttConnector, MqttOutput
from vemonitor_integrations.mqtt.sink import MqttSink

from hw_sim import Simulator
from tests.engine.helpers import block_config, running
from tests.integrations.helpers import FakeClock
from tests.integrations.mqtt.support import (
    BMV,
    MPPT,
    WAIT,
    FakeSource,
    Namespace,
    Observer,
    input_info,
    observe,
)
from tests.servers import LOOPBACK, MosquittoServer
from tests.shared import wait_until
from vemonitor.api import Context
from vemonitor.control import ControlHub, ControlSetting, DeviceControls, DeviceSettings
from vemonitor.serial_reader import SerialReader

CONTROLLED = ("load_output", "charge_current_limit", "charger")
LOAD, LIMIT, CHARGER = 0xEDAB, 0x2015, 0x0200  # HEX.md §3.2 registers of the allow-list
RELAY, RELAY_MODE = 0x034E, 0x034F  # the relay; its mode must be 2 (remote): HEX.md §8.2


class Rig:
    """A simulated device, its reader and its controls (enabled, not dry-run)."""

    def __init__(self, sim: Simulator, controls: DeviceControls, state: Path) -> None:
        self.sim, self.controls, self.state = sim, controls, state
        self.hub = ControlHub([controls])

    @property
    def hexdev(self) -> Any:
        device = self.sim.devices[self.controls.device].hex
        assert device is not None
        return device

    def sets(self, register: int) -> list[bytes]:
        return [value for reg, value in self.hexdev.sets if reg == register]


@contextlib.contextmanager
def running_rig(root: Path, device: str = "mppt", controlled: tuple[str, ...] = CONTROLLED
                ) -> Iterator[Rig]:
    """Start a simulated device, its reader and controls; wait until every control is ready."""
    settings = DeviceSettings(controls={name: ControlSetting(enabled=True, dry_run=False)
                                        for name in controlled})
    with Simulator([device], root / "sim", speed=2) as sim:
        hexdev = sim.devices[device].hex
        assert hexdev is not None
        if device == "bmv700":
            hexdev.settings[RELAY_MODE] = b"\x02"  # remote, set on the BMV's own menu
        reader = SerialReader(device, str(sim.path(device)))
        reader.start()
        controls = DeviceControls(reader, settings, root / "state", device=device)
        controls.start()
        try:
            ready = wait_until(lambda: all(v.unavailable is None for v in controls.views())
                               and len(controls.views()) == len(controlled), 60)
            assert ready, [v.unavailable for v in controls.views()]
            yield Rig(sim, controls, root / "state")
        finally:
            controls.close()
            reader.close()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with running_rig(tmp_path_factory.mktemp("control")) as made:
        yield made


@pytest.fixture
def sink_for(request: pytest.FixtureRequest, broker: MosquittoServer, ns: Namespace,
             tmp_path: Path) -> Iterator[Callable[..., MqttSink]]:
    made: list[MqttSink] = []

    def make(allow_commands: bool, rig: Rig | None = None) -> MqttSink:
        rig = rig or request.getfixturevalue("rig")
        device = rig.controls.device
        source = FakeSource(device, BMV if device == "bmv700" else MPPT)
        ctx = Context(clock=FakeClock(), state_dir=str(tmp_path / "state"), block="B",
                      inputs={device: input_info(device, source, ("V",))}, controls=rig.hub)
        connector = MqttConnector(host=LOOPBACK, port=broker.port, timeout=5.0,
                                  client_id=f"vemonitor-{ns.base}")
        item = MqttOutput(name="ha", source="local", base_topic=ns.base,
                          discovery_prefix=ns.prefix, allow_commands=allow_commands)
        sink = MqttSink(item, connector, ctx)
        sink.poll_interval = 0.05
        made.append(sink)
        sink.start()
        return sink

    yield make
    for sink in made:
        sink.close()


class Commander:
    """Publishes commands as Home Assistant does (QoS 1, not retained)."""

    def __init__(self, port: int, ns: Namespace) -> None:
        self.ns = ns
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"ha-{time.monotonic_ns()}")
        self.client.connect(LOOPBACK, port, 30)
        self.client.loop_start()

    device = "mppt"

    def topic(self, name: str, leaf: str) -> str:
        return f"{self.ns.base}/{self.device}/control/{name}/{leaf}"

    def send(self, name: str, payload: str, leaf: str = "set") -> None:
        info = self.client.publish(self.topic(name, leaf), payload, qos=1)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def commander(broker: MosquittoServer, ns: Namespace) -> Iterator[Commander]:
    c = Commander(broker.port, ns)
    yield c
    c.close()


def result(observer: Observer, commander: Commander, name: str, count: int) -> dict[str, Any]:
    """Wait for the ``count``-th result of this test's commands to a control (a lease's
    keep-alive results, on the same topic, are left out)."""
    topic, caller = commander.topic(name, "result"), commander.topic(name, "set")

    def mine() -> list[dict[str, Any]]:
        return [m.json() for m in observer.on(topic) if m.json()["caller"] == caller]

    assert wait_until(lambda: len(mine()) >= count, 3 * WAIT), observer.on(topic)
    return mine()[count - 1]


def test_switch_the_load_limit_the_current_and_switch_the_charger_over_mqtt(
        rig: Rig, sink_for: Callable[..., MqttSink], commander: Commander,
        observer: Observer, ns: Namespace) -> None:
    sink_for(True)
    config = observer.wait(f"{ns.prefix}/device/vemonitor_HQ2211ABCDE/config",
                           lambda m: "control_charger" in m.json()["cmps"]).json()["cmps"]
    assert config["control_charge_current_limit"]["max"] > 0  # the device's own limit
    load_before = rig.hexdev.settings[LOAD]

    # A dry run first (the load's rate limit would refuse it after a real write): the
    # exact frame, nothing sent.
    commander.send("load_output", '{"value": "on", "dry_run": true}')
    dry = result(observer, commander, "load_output", 1)
    assert dry["result"] == "dry_run" and dry["frame"].startswith(":8ABED00")
    assert rig.sets(LOAD) == [] and rig.hexdev.settings[LOAD] == load_before

    # The load output on.
    commander.send("load_output", "on")
    load = result(observer, commander, "load_output", 2)
    assert (load["result"], load["readback"], load["surface"]) == ("ok", "on", "mqtt"), load
    assert load["caller"] == commander.topic("load_output", "set")
    assert rig.sets(LOAD) == [bytes([4])]  # 4 = on (VE.Direct HEX: 0xEDAB)
    observer.wait(commander.topic("load_output", "state"), lambda m: m.json()["value"] == "on")

    # The charge current limited to 7.5 A, as a lease of 10 minutes.
    commander.send("charge_current_limit", '{"value": 7.5, "lease_s": 600}')
    limit = result(observer, commander, "charge_current_limit", 1)
    assert (limit["result"], limit["readback"]) == ("ok", 7.5), limit
    assert rig.sets(LIMIT)[0] == (75).to_bytes(2, "little")  # 0.1 A units
    state = observer.wait(commander.topic("charge_current_limit", "state"),
                          lambda m: m.json()["value"] == 7.5
                          and m.json()["lease_until"] is not None).json()
    assert state["lease_until"] == pytest.approx(time.time() + 600, abs=60)

    rig.controls.end_lease("the test is done with it")  # no keep-alive Sets in later tests

    # The charger off.
    commander.send("charger", "off")
    charger = result(observer, commander, "charger", 1)
    assert (charger["result"], charger["readback"]) == ("ok", "off"), charger
    assert rig.sets(CHARGER) == [bytes([4])]  # 4 = off (HEX.md §3.2: 0x0200 {1 on, 4 off})
    observer.wait(commander.topic("charger", "state"), lambda m: m.json()["value"] == "off")


@pytest.mark.parametrize(("name", "payload", "check"), [
    ("charge_current_limit", "nan", "finite"), ("charge_current_limit", "99", "range"),
    ("charge_current_limit", "-1", "range"), ("load_output", "sideways", "is not one of off, auto, on"),
    ("load_output", '{"value": "on", "lease_s": 60}', "lease")])
def test_the_cores_refusals_come_back_over_mqtt_and_nothing_is_sent(
        rig: Rig, sink_for: Callable[..., MqttSink], commander: Commander,
        observer: Observer, ns: Namespace, name: str, payload: str, check: str) -> None:
    sink_for(True)
    observer.wait(commander.topic(name, "state"))
    sent = len(rig.hexdev.sets)
    commander.send(name, payload)
    refused = result(observer, commander, name, 1)
    assert refused["result"] == "refused", refused
    assert check in refused["reason"].lower() and "\n" not in refused["reason"]
    assert len(rig.hexdev.sets) == sent


def test_without_allow_commands_a_command_changes_nothing(
        rig: Rig, sink_for: Callable[..., MqttSink], commander: Commander,
        observer: Observer, ns: Namespace) -> None:
    sink = sink_for(False)
    config = observer.wait(f"{ns.prefix}/device/vemonitor_HQ2211ABCDE/config")
    assert not any(k.startswith("control_") for k in config.json()["cmps"])
    sent = len(rig.hexdev.sets)
    commander.send("relay", "on")
    commander.send("load_output", "off")
    # Home Assistant's birth message from the same client after the commands: once the
    # sink re-published discovery for it, the commands would have been delivered too.
    info = commander.client.publish(f"{ns.prefix}/status", "online", qos=1)
    info.wait_for_publish(WAIT)
    observer.wait(config.topic, lambda m: m is not config)
    assert sink.commands is None and sink.conn.command_filter is None
    assert len(rig.hexdev.sets) == sent
    assert not any(m.topic.startswith(f"{ns.base}/mppt/control/")
                   and not m.topic.endswith("/set") for m in observer.messages)


def test_a_lease_not_renewed_ends_and_the_device_falls_back(
        sink_for: Callable[..., MqttSink], commander: Commander, observer: Observer,
        ns: Namespace, tmp_path: Path) -> None:
    """A 2 s lease: vemonitor stops re-sending, says so on the result topic (event
    lease_end) and clears lease_until; the simulated device's 0x2015 then falls back."""
    with running_rig(tmp_path / "lease") as own:
        own.hexdev.link_ttl_s = 3.0  # the device's fall-back (about 60 s on a real one)
        sink_for(True, own)
        observer.wait(commander.topic("charge_current_limit", "state"))
        commander.send("charge_current_limit", '{"value": 5, "lease_s": 2}')
        held = result(observer, commander, "charge_current_limit", 1)
        assert (held["result"], held["readback"]) == ("ok", 5.0), held
        topic = commander.topic("charge_current_limit", "result")
        assert wait_until(lambda: any(m.json()["event"] == "lease_end"
                                      for m in observer.on(topic)), 3 * WAIT)
        ended = next(m.json() for m in observer.on(topic) if m.json()["event"] == "lease_end")
        assert (ended["surface"], ended["old"], ended["new"]) == ("lease", 5.0, None)
        observer.wait(commander.topic("charge_current_limit", "state"),
                      lambda m: m.json()["lease_until"] is None
                      and m.json()["value"] != 5.0)
        assert wait_until(lambda: any(reg == LIMIT for reg, _ in own.hexdev.expired),
                          3 * WAIT)
        assert own.hexdev.settings[LIMIT] == (0xFFFF).to_bytes(2, "little")


def test_the_daemon_takes_a_command_for_a_control_enabled_in_its_configuration(
        tmp_path: Path) -> None:
    """The user's path: `controls` on the serial connector, `allow_commands` on the MQTT
    output; the engine hands the sink its Context.controls, the device key is the input's
    name (`solar`), and a command switches the simulated MPPT's load output."""
    with MosquittoServer(workdir=tmp_path / "broker") as broker:
        watcher = observe(broker.port, "vemonitor/#")
        inputs = {"solar": {"source": "mppt", "time_interval": 1, "columns": ["V", "LOAD"]}}
        outputs = {"mqtt": {"ha": {"source": "local", "cache_interval": 1,
                                   "allow_commands": True}}}
        config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
        config["appConnectors"]["serial"]["mppt"]["controls"] = {
            "load_output": {"enabled": True, "dry_run": False}}
        config["appConnectors"]["mqtt"] = {"local": {"host": LOOPBACK, "port": broker.port}}
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-daemon")
        publisher.connect(LOOPBACK, broker.port, 30)
        publisher.loop_start()
        try:
            with running(config, {}, ["mppt"], tmp_path / "sim") as (engine, sim):
                runner = threading.Thread(target=engine.run, args=(120,), daemon=True)
                runner.start()
                try:
                    state = "vemonitor/solar/control/load_output/state"
                    watcher.wait(state, lambda m: m.json()["value"] is not None
                                 and m.json()["unavailable"] is None, timeout=60)
                    info = publisher.publish("vemonitor/solar/control/load_output/set", "on",
                                             qos=1)
                    info.wait_for_publish(WAIT)
                    done = watcher.wait("vemonitor/solar/control/load_output/result",
                                        timeout=30).json()
                    watcher.wait(state, lambda m: m.json()["value"] == "on")
                finally:
                    engine.stop()
                    runner.join(30)
                hexdev = sim.devices["mppt"].hex
                assert hexdev is not None
                sets = [v for reg, v in hexdev.sets if reg == LOAD]
        finally:
            publisher.disconnect()
            publisher.loop_stop()
            watcher.close()
    assert (done["result"], done["device"], done["readback"]) == ("ok", "solar", "on"), done
    assert sets == [bytes([4])]


def test_switch_a_bmv_relay_over_mqtt(sink_for: Callable[..., MqttSink], commander: Commander,
                                     observer: Observer, tmp_path: Path) -> None:
    """The fourth control: a BMV-700's relay in remote mode, switched and read back."""
    with running_rig(tmp_path / "bmv", "bmv700", ("relay",)) as bmv:
        sink_for(True, bmv)
        commander.device = "bmv700"
        state = observer.wait(commander.topic("relay", "state")).json()
        wanted = "off" if state["value"] == "on" else "on"
        commander.send("relay", wanted)
        switched = result(observer, commander, "relay", 1)
        assert (switched["result"], switched["readback"]) == ("ok", wanted), switched
        assert bmv.sets(RELAY) == [b"\x01" if wanted == "on" else b"\x00"]
        observer.wait(commander.topic("relay", "state"), lambda m: m.json()["value"] == wanted)
