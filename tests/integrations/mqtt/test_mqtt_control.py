"""Issue 23, MQTT surface: command topics, control discovery, results, refusals before the core.

A real mosquitto; the core's ``Controls`` is a fake at the unit edge (fakecontrols.py), so
these tests prove what the MQTT side does. test_mqtt_control_e2e.py drives the real core and
the simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from vemonitor_integrations.mqtt import control as mc
from vemonitor_integrations.mqtt.schema import MqttOutput
from vemonitor_integrations.mqtt.sink import MqttSink

from tests.integrations.mqtt.fakecontrols import FakeControls, view
from tests.integrations.mqtt.support import WAIT, Namespace, Observer, batch, observe, rows
from tests.servers import LOOPBACK, MosquittoServer
from vemonitor.api import Context

DEVICE = "mppt"  # the input reading the MPPT (its name is the device key of the controls)


def all_controls(**changes: Any) -> FakeControls:
    return FakeControls(view(DEVICE, "load_output", "auto"), view(DEVICE, "charger", "on"),
                        view(DEVICE, "charge_current_limit", 15.0, **changes))


class Publisher:
    """A client publishing commands (what Home Assistant or mosquitto_pub does)."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"pub-{time.monotonic_ns()}")
        self.client.connect(LOOPBACK, port, 30)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: MosquittoServer) -> Any:
    pub = Publisher(broker.port)
    yield pub
    pub.close()


@pytest.fixture
def control_sink(make_sink: Callable[..., MqttSink], make_ctx: Callable[..., Context]
                 ) -> Callable[..., tuple[MqttSink, FakeControls]]:
    def make(controls: FakeControls | None = None, **item: Any) -> tuple[MqttSink, FakeControls]:
        controls = controls or all_controls()
        ctx = make_ctx()
        ctx.controls = controls
        sink = make_sink(ctx, **{"allow_commands": True, **item})
        sink.start()
        return sink, controls

    return make


def topic(ns: Namespace, name: str, leaf: str, device: str = DEVICE) -> str:
    return f"{ns.base}/{device}/control/{name}/{leaf}"


def device_config(observer: Observer, ns: Namespace) -> dict[str, Any]:
    msg = observer.wait(f"{ns.prefix}/device/vemonitor_HQ2211ABCDE/config",
                        lambda m: "control_load_output" in m.json().get("cmps", {}))
    data: dict[str, Any] = msg.json()
    return data


def result_of(observer: Observer, ns: Namespace, name: str, device: str = DEVICE,
              check: Callable[[dict[str, Any]], bool] = lambda r: True) -> dict[str, Any]:
    msg = observer.wait(topic(ns, name, "result", device), lambda m: check(m.json()))
    assert msg.retain is False
    data: dict[str, Any] = msg.json()
    return data


def retained(port: int, name: str, check: Callable[[Any], bool] = lambda m: True) -> Any:
    """Return the retained message a new subscriber of ``name`` gets (what HA gets at start)."""
    fresh = observe(port, name)
    try:
        return fresh.wait(name, lambda m: m.retain and check(m))
    finally:
        fresh.close()


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# ---------------------------------------------------------------------- parsing (pure)
@pytest.mark.parametrize(("payload", "command"), [
    (b"on", mc.Command("on")), (b" OFF\n", mc.Command("off")), (b"auto", mc.Command("auto")),
    (b"12.5", mc.Command(12.5)), (b"7", mc.Command(7.0)),
    (b'{"value": 12.5, "lease_s": 600}', mc.Command(12.5, 600.0)),
    (b'{"value": "On", "dry_run": true}', mc.Command("on", None, True)),
    (b'{"value": 3}', mc.Command(3.0)),
])
def test_commands_parse_by_name_number_or_json(payload: bytes, command: mc.Command) -> None:
    assert mc.parse_command(payload) == command


def test_non_finite_numbers_reach_the_core_which_refuses_them() -> None:
    """``nan`` parses as a number: the value check is the core's one place (it refuses)."""
    value = mc.parse_command(b"nan").value
    assert isinstance(value, float) and value != value


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "empty payload"),
    (b"\xffon", "not UTF-8 text (byte 0)"),
    (b"x" * 300, "payload too long (300 bytes, at most 256)"),
    (b"{oops", "not valid JSON"),
    (b"on\nWARNING forged line", "control character at character 2"),
    (b'{"value": "on\\u001b[2J"}', "control character at character"),
    (b'{"lease_s": 60}', "needs a 'value'"),
    (b'{"value": 5, "register": "0x0200"}', "unknown key 'register'"),
    (b'{"value": true}', "value must be an option name or a number"),
    (b'{"value": [1]}', "value must be an option name or a number"),
    (b'{"value": 5, "lease_s": -1}', "lease_s must be a positive number"),
    (b'{"value": 5, "lease_s": "10m"}', "lease_s must be a positive number"),
    (b'{"value": 5, "dry_run": "yes"}', "dry_run must be true or false"),
])
def test_malformed_payloads_are_refused_with_the_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(mc.BadCommand, match=None) as caught:
        mc.parse_command(payload)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_only_command_topics_under_the_base_are_commands() -> None:
    assert mc.split_topic("vm/mppt/control/charger/set", "vm") == ("mppt", "charger")
    assert mc.split_topic("vm/mppt/control/charger/result", "vm") is None
    assert mc.split_topic("vm/mppt/state", "vm") is None
    assert mc.split_topic("other/mppt/control/charger/set", "vm") is None


def test_allow_commands_is_a_security_warning() -> None:
    item = MqttOutput(name="ha", source="local", base_topic="home/vm", allow_commands=True)
    [line] = item.risks()
    assert "allow_commands is on" in line and "home/vm/+/control/+/set" in line
    assert MqttOutput(name="ha", source="local").risks() == []


def test_a_dry_run_says_the_allow_commands_warning(tmp_path: Path) -> None:
    """`vemonitor ... dry_run=true` says it as a real start does (risks.py, at start)."""
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"))
    args = ["block=BatteryMonitor", "simulator.devices=[bmv700]", f"state_dir={tmp_path / 's'}",
            "+appConnectors.mqtt.m.host=127.0.0.1", "+block.outputs.mqtt.ha.source=m",
            "+block.outputs.mqtt.ha.allow_commands=true", "dry_run=true"]
    proc = subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if "security:" in x]
    assert "mqtt output ha: allow_commands is on" in line
    assert "vemonitor/+/control/+/set" in line


# ---------------------------------------------------------------------- with a broker
def test_without_allow_commands_nothing_is_subscribed_and_a_command_changes_nothing(
        make_sink: Callable[..., MqttSink], make_ctx: Callable[..., Context],
        observer: Observer, publisher: Publisher, ns: Namespace) -> None:
    controls = all_controls()
    ctx = make_ctx()
    ctx.controls = controls
    sink = make_sink(ctx)  # allow_commands defaults to false
    sink.start()
    assert sink.commands is None and sink.conn.command_filter is None
    config = observer.wait(f"{ns.prefix}/device/vemonitor_HQ2211ABCDE/config")
    publisher.send(topic(ns, "load_output", "set"), "on")
    # Home Assistant's birth message from the same client, after the command: once the
    # sink has re-published discovery for it, the command would have arrived too (the broker
    # keeps one client's messages in order).
    publisher.send(f"{ns.prefix}/status", "online")
    observer.wait(config.topic, lambda m: m is not config)
    assert controls.requests == []
    assert not any(m.topic.startswith(f"{ns.base}/{DEVICE}/control/")
                   and not m.topic.endswith("/set") for m in observer.messages)
    assert not any(k.startswith("control_") for k in config.json()["cmps"])
    assert controls.views(DEVICE)[0].value == "auto"


def test_control_entities_are_announced_with_their_topics(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        broker: MosquittoServer, ns: Namespace) -> None:
    control_sink()
    cmps = device_config(observer, ns)["cmps"]
    load, charger, limit = (cmps["control_load_output"], cmps["control_charger"],
                            cmps["control_charge_current_limit"])
    assert (load["p"], charger["p"], limit["p"]) == ("select", "switch", "number")
    assert load["options"] == ["off", "auto", "on"]
    assert load["command_topic"] == topic(ns, "load_output", "set")
    assert load["state_topic"] == topic(ns, "load_output", "state")
    assert [a["topic"] for a in load["availability"]] == [
        f"{ns.base}/bridge/availability", f"{ns.base}/{DEVICE}/availability",
        topic(ns, "load_output", "availability")]
    assert (charger["payload_on"], charger["payload_off"]) == ("on", "off")
    assert (limit["min"], limit["max"], limit["step"], limit["unit_of_measurement"]) == (
        0.0, 15.0, 0.1, "A")
    assert limit["unique_id"] == "vemonitor_HQ2211ABCDE_control_charge_current_limit"
    state = retained(broker.port, topic(ns, "load_output", "state"))
    assert state.json() == {"value": "auto", "unavailable": None, "dry_run": False,
                            "unit": None, "lease_until": None}
    assert retained(broker.port, topic(ns, "load_output", "availability")).payload == b"online"


@pytest.mark.parametrize(("name", "payload", "value", "lease"), [
    ("load_output", "on", "on", None),
    ("charger", "OFF", "off", None),
    ("charge_current_limit", '{"value": 7.5, "lease_s": 600}', 7.5, 600.0),
    ("charge_current_limit", "10", 10.0, None),
])
def test_a_command_reaches_the_core_and_its_result_and_state_are_published(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        publisher: Publisher, broker: MosquittoServer, ns: Namespace, name: str, payload: str,
        value: Any,
        lease: float | None) -> None:
    sink, controls = control_sink()
    device_config(observer, ns)
    publisher.send(topic(ns, name, "set"), payload)
    result = result_of(observer, ns, name)
    [request] = controls.requests
    assert (request.device, request.control, request.value, request.lease_s) == (
        DEVICE, name, value, lease)
    assert (request.surface, request.caller) == ("mqtt", topic(ns, name, "set"))
    assert result["result"] == "ok" and result["new"] == value and result["readback"] == value
    assert result["frame"] == ":8ABED0004B1"
    observer.wait(topic(ns, name, "state"), lambda m: m.json()["value"] == value)
    retained(broker.port, topic(ns, name, "state"), lambda m: m.json()["value"] == value)


def test_a_dry_run_command_asks_the_core_for_a_dry_run(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        publisher: Publisher, ns: Namespace) -> None:
    sink, controls = control_sink()
    device_config(observer, ns)
    publisher.send(topic(ns, "load_output", "set"), '{"value": "off", "dry_run": true}')
    result = result_of(observer, ns, "load_output")
    assert result["result"] == "dry_run" and result["frame"] == ":8ABED0004B1"
    assert controls.requests[0].dry_run is True
    assert controls.views(DEVICE)[0].value == "auto"


def test_a_control_in_dry_run_mode_is_requested_as_a_dry_run(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        publisher: Publisher, ns: Namespace) -> None:
    controls = FakeControls(view(DEVICE, "load_output", "auto", dry_run=True))
    control_sink(controls)
    observer.wait(topic(ns, "load_output", "state"), lambda m: m.json()["dry_run"] is True)
    publisher.send(topic(ns, "load_output", "set"), "on")
    assert result_of(observer, ns, "load_output")["result"] == "dry_run"


@pytest.mark.parametrize(("name", "payload", "retain", "reason"), [
    ("load_output", b"\xff\xfe", False, "payload is not UTF-8 text (byte 0)"),
    ("load_output", b"", False, "empty payload"),
    ("relay", b"on", False, "control 'relay' is not enabled for mppt (enabled: "
                            "charge_current_limit, charger, load_output"),
    ("0x0200", b"1", False, "control '0x0200' is not enabled for mppt"),
])
def test_a_bad_command_is_refused_with_a_reason_and_never_reaches_the_core(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        publisher: Publisher, ns: Namespace, caplog: pytest.LogCaptureFixture, name: str,
        payload: bytes, retain: bool, reason: str) -> None:
    sink, controls = control_sink()
    device_config(observer, ns)
    publisher.send(topic(ns, name, "set"), payload, retain=retain)
    result = result_of(observer, ns, name)
    assert result["result"] == "refused" and reason in result["reason"]
    assert (result["device"], result["control"], result["surface"]) == (DEVICE, name, "mqtt")
    assert controls.requests == []
    assert any(reason in r.getMessage() and "Traceback" not in r.getMessage()
               for r in caplog.records)


def test_a_retained_command_is_never_replayed_at_connection(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        publisher: Publisher, ns: Namespace) -> None:
    """A command left retained on the broker (a mistake, or an old one) reaches the sink at
    every (re)connection, flagged retained: refused, so a stale "on" never switches anything."""
    publisher.send(topic(ns, "load_output", "set"), "on", retain=True)
    try:
        sink, controls = control_sink()
        result = result_of(observer, ns, "load_output")
    finally:
        publisher.send(topic(ns, "load_output", "set"), b"", retain=True)  # clear it
    assert result["result"] == "refused"
    assert "retained command: a stale command is never replayed" in result["reason"]
    assert controls.requests == []


def test_a_command_for_an_unknown_device_is_refused(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        publisher: Publisher, ns: Namespace) -> None:
    sink, controls = control_sink()
    device_config(observer, ns)
    publisher.send(topic(ns, "charger", "set", device="ghost"), "on")
    result = result_of(observer, ns, "charger", device="ghost")
    assert result["result"] == "refused" and "unknown device 'ghost'" in result["reason"]
    assert controls.requests == []


def test_a_failing_precondition_makes_the_entity_unavailable_and_back(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        broker: MosquittoServer, ns: Namespace) -> None:
    sink, controls = control_sink()
    availability = topic(ns, "charger", "availability")
    observer.wait(availability, lambda m: m.payload == b"online")
    reason = "no frame from the device within the last 5 s"
    controls.set_view(DEVICE, "charger", unavailable=reason)
    observer.wait(availability, lambda m: m.payload == b"offline")
    retained(broker.port, topic(ns, "charger", "state"),
             lambda m: m.json()["unavailable"] == reason)
    controls.set_view(DEVICE, "charger", unavailable=None)
    def changes() -> list[bytes]:  # a re-publish after a reconnection repeats a payload
        seen = [m.payload for m in observer.on(availability)]
        return [p for i, p in enumerate(seen) if i == 0 or p != seen[i - 1]]

    wait_for(lambda: changes() == [b"online", b"offline", b"online"])


def test_results_of_other_surfaces_are_published_too(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        ns: Namespace) -> None:
    sink, controls = control_sink()
    device_config(observer, ns)
    controls.request(DEVICE, "charger", "off", surface="cli", caller="root")
    result = result_of(observer, ns, "charger")
    assert (result["surface"], result["caller"], result["new"]) == ("cli", "root", "off")
    observer.wait(topic(ns, "charger", "state"), lambda m: m.json()["value"] == "off")


def test_a_number_without_device_limits_is_not_announced_until_they_are_read(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        ns: Namespace) -> None:
    sink, controls = control_sink(all_controls(maximum=None))
    assert "control_charge_current_limit" not in device_config(observer, ns)["cmps"]
    controls.set_view(DEVICE, "charge_current_limit", maximum=20.0)
    msg = observer.wait(f"{ns.prefix}/device/vemonitor_HQ2211ABCDE/config",
                        lambda m: "control_charge_current_limit" in m.json()["cmps"])
    assert msg.json()["cmps"]["control_charge_current_limit"]["max"] == 20.0


def test_a_flood_of_commands_is_refused_beyond_the_queue_never_dropped_silently(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        publisher: Publisher, ns: Namespace) -> None:
    """The worker is held inside one request: the queue fills, then each extra command
    gets a 'busy' result; once released, every queued command reaches the core."""
    entered, release = threading.Event(), threading.Event()
    controls = all_controls()
    plain = controls.request

    def slow(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(3 * WAIT)
        return plain(*args, **kwargs)

    controls.request = slow  # type: ignore[method-assign]
    control_sink(controls)
    device_config(observer, ns)
    extra = 3
    publisher.send(topic(ns, "charger", "set"), "on")
    assert entered.wait(WAIT)  # the worker holds the first command
    for _ in range(mc.QUEUE_SIZE + extra):  # QUEUE_SIZE waiting, 3 too many
        publisher.send(topic(ns, "charger", "set"), "on")
    wait_for(lambda: len([m for m in observer.on(topic(ns, "charger", "result"))
                          if m.json()["result"] == "refused"]) >= extra)
    release.set()
    wait_for(lambda: len(controls.requests) == 1 + mc.QUEUE_SIZE)
    refused = [m.json() for m in observer.on(topic(ns, "charger", "result"))
               if m.json()["result"] == "refused"]
    assert len(refused) == extra and all("busy" in r["reason"] for r in refused)


def test_a_failing_core_hides_the_controls_but_rows_keep_flowing(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        ns: Namespace, caplog: pytest.LogCaptureFixture) -> None:
    """views() raising (a bug in the core) must not fail the output's writes."""
    controls = all_controls()

    def broken(device: str | None = None) -> list[Any]:
        raise RuntimeError("state dir gone")

    controls.views = broken  # type: ignore[method-assign]
    sink, _ = control_sink(controls)
    sink.write(batch(rows(DEVICE, 1_700_000_000, 2, V=13.1)))
    observer.wait(f"{ns.base}/{DEVICE}/state", lambda m: m.json()["V"] == 13.1)
    assert any("the device controls cannot be listed (RuntimeError: state dir gone)"
               in r.getMessage() for r in caplog.records)


def test_closing_the_sink_stops_listening_to_results(
        control_sink: Callable[..., tuple[MqttSink, FakeControls]], observer: Observer,
        ns: Namespace) -> None:
    sink, controls = control_sink()
    device_config(observer, ns)
    sink.close()
    assert controls._subscribers == []


def test_result_payload_carries_every_field_of_the_contract() -> None:
    controls = FakeControls(view(DEVICE, "charger", "on"))
    result = controls.request(DEVICE, "charger", "off", surface="ha", caller="switch.x")
    data = json.loads(mc.result_payload(replace(result, old=float("nan"))))
    assert set(data) == {"device", "control", "result", "reason", "old", "new", "frame",
                         "reply", "readback", "surface", "caller", "time", "event"}
    assert data["old"] is None  # NaN is not JSON
