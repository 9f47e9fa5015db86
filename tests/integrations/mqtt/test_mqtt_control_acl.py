"""The broker ACL documented in docs/mqtt-control.md, run by a real mosquitto: only Home
Assistant's user reaches the command topics; another user's command is dropped by the broker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from vemonitor_integrations.mqtt.schema import MqttConnector, MqttOutput
from vemonitor_integrations.mqtt.sink import MqttSink

from tests.integrations.helpers import FakeClock
from tests.integrations.mqtt.fakecontrols import FakeControls, view
from tests.integrations.mqtt.support import MPPT, WAIT, FakeSource, input_info, observe
from tests.servers import LOOPBACK, MosquittoServer
from vemonitor.api import Context

DOC = Path(__file__).resolve().parents[3] / "docs" / "mqtt-control.md"
USERS = {"vemonitor": "vm-secret-1", "homeassistant": "ha-secret-2", "guest": "guest-3"}
COMMAND = "vemonitor/mppt/control/load_output/set"


def documented_acl() -> str:
    """Return the ACL file of the docs (the fenced block after its marker comment)."""
    found = re.search(r"<!-- acl-example.*?-->\n```conf\n(.*?)```", DOC.read_text(), re.S)
    assert found, "docs/mqtt-control.md lost its acl-example block"
    return found.group(1)


class AclMosquitto(MosquittoServer):
    """The test broker with users and the documented ``acl_file``."""

    def command(self) -> list[str]:
        line = super().command()
        acl = self.dir / "acl"
        acl.write_text(documented_acl())
        with self.config.open("a") as config:
            config.write(f"acl_file {acl}\n")
        return line


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[AclMosquitto]:
    with AclMosquitto(workdir=tmp_path / "broker", users=USERS) as server:
        yield server


def client(port: int, user: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.monotonic_ns()}")
    c.username_pw_set(user, USERS[user])
    c.connect(LOOPBACK, port, 30)
    c.loop_start()
    return c


def send(c: mqtt.Client, topic: str, payload: str) -> None:
    info = c.publish(topic, payload, qos=1)
    info.wait_for_publish(WAIT)
    assert info.is_published()  # a denied publish is acknowledged too, then dropped


def test_only_home_assistants_user_may_command(acl_broker: AclMosquitto, tmp_path: Path) -> None:
    controls = FakeControls(view("mppt", "load_output", "auto"))
    ctx = Context(clock=FakeClock(), state_dir=str(tmp_path / "state"), block="B",
                  inputs={"mppt": input_info("mppt", FakeSource("mppt", MPPT), ("V",))})
    ctx.controls = controls
    connector = MqttConnector(host=LOOPBACK, port=acl_broker.port, username="vemonitor",
                              password=USERS["vemonitor"], timeout=5.0)
    sink = MqttSink(MqttOutput(name="ha", source="local", allow_commands=True), connector, ctx)
    sink.poll_interval = 0.05
    watcher = observe(acl_broker.port, "vemonitor/#", auth=("homeassistant",
                                                            USERS["homeassistant"]))
    guest = client(acl_broker.port, "guest")
    ha = client(acl_broker.port, "homeassistant")
    try:
        sink.start()
        # vemonitor may publish its control state, and Home Assistant may read it.
        watcher.wait("vemonitor/mppt/control/load_output/state")
        # The guest's command is dropped by the broker; Home Assistant's, sent after it
        # (one broker, one delivery order), is the only one vemonitor gets.
        send(guest, COMMAND, "on")
        send(ha, COMMAND, "off")
        result = watcher.wait("vemonitor/mppt/control/load_output/result").json()
        assert result["new"] == "off" and result["result"] == "ok"
        assert [(r.value, r.caller) for r in controls.requests] == [("off", COMMAND)]
        assert len(watcher.on("vemonitor/mppt/control/load_output/result")) == 1
    finally:
        for c in (guest, ha):
            c.disconnect()
            c.loop_stop()
        watcher.close()
        sink.close()
