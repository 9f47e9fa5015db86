"""MQTT test support: an observing subscriber, fake devices, rows, per-test topic roots.

A plain module, not a conftest: test modules import from here, conftest.py holds the fixtures
(a real mosquitto on a loopback port, contexts, sinks).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.servers import LOOPBACK
from vemonitor.api import InputInfo
from vemonitor.model import Batch, Row

WAIT = 15.0  # seconds an observer waits for a message (generous: a loaded machine)
BMV = {"available": True, "pid": "0x203", "product": "BMV-700", "serial": None,
       "firmware": "3.08"}
MPPT = {"available": True, "pid": "0xA053", "product": "SmartSolar MPPT 75/15",
        "serial": "HQ2211ABCDE", "firmware": "1.59"}


class FakeSource:
    """A source whose device description a test sets (unplug = available False)."""

    def __init__(self, name: str, device: dict[str, Any]) -> None:
        self.name = name
        self.info = dict(device)

    def device(self) -> dict[str, Any]:
        """Return the device description as the vedirect source does."""
        return dict(self.info)


@dataclass
class Message:
    """One message an observer received."""

    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        """Return the payload decoded as JSON."""
        return json.loads(self.payload)


@dataclass
class Observer:
    """A paho subscriber on ``#`` recording every message (what Home Assistant would see)."""

    client: mqtt.Client
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """Record a message."""
        with self.lock:
            self.messages.append(Message(msg.topic, msg.payload, bool(msg.retain), msg.qos))

    def on(self, topic: str) -> list[Message]:
        """Return the messages received on ``topic``, oldest first."""
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Message | None:
        """Return the newest message on ``topic``."""
        found = self.on(topic)
        return found[-1] if found else None

    def wait(self, topic: str, check: Callable[[Message], bool] = lambda m: True,
             timeout: float = WAIT) -> Message:
        """Wait for a message on ``topic`` passing ``check``; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.on(topic):
                if check(message):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no matching message on {topic}; got {self.on(topic)[-3:]}")

    def configs(self, prefix: str) -> dict[str, Message]:
        """Return the newest discovery message per config topic."""
        with self.lock:
            return {m.topic: m for m in self.messages
                    if m.topic.startswith(prefix + "/") and m.topic.endswith("/config")}

    def clear(self) -> None:
        """Forget what was received."""
        with self.lock:
            self.messages.clear()

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def observe(port: int, topic: str = "#", tls_ca: str | None = None,
            auth: tuple[str, str] | None = None) -> Observer:
    """Return a connected observer subscribed to ``topic`` (retained messages included)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"observer-{time.monotonic_ns()}")
    observer = Observer(client)
    subscribed = threading.Event()
    client.on_message = observer.on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_connect = lambda c, *args: c.subscribe(topic, qos=1)
    if tls_ca:
        client.tls_set(ca_certs=tls_ca)
    if auth:
        client.username_pw_set(*auth)
    client.connect(LOOPBACK, port, 30)
    client.loop_start()
    assert subscribed.wait(WAIT), "observer could not subscribe"
    return observer


def rows(node: str, start: float, count: int, **values: Any) -> list[Row]:
    """Return ``count`` rows of ``node`` one second apart with the given values."""
    return [Row(start + i, node, dict(values)) for i in range(count)]


def batch(*groups: list[Row]) -> Batch:
    """Return a batch of the rows, oldest first."""
    return Batch("mqtt", tuple(sorted((r for g in groups for r in g), key=lambda r: r.time)))


def input_info(name: str, source: FakeSource, columns: tuple[str, ...],
               standard: dict[str, str] | None = None, connector: str | None = None) -> InputInfo:
    """Return an InputInfo of a vedirect input reading ``source``."""
    return InputInfo(name, "vedirect", connector or source.name, columns, standard or {}, source)


@dataclass(frozen=True)
class Namespace:
    """Topic roots of one test, so retained messages of other tests never interfere."""

    base: str
    prefix: str
