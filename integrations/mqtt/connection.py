"""The MQTT connection: one paho client, its callbacks, publishing and acknowledgements.

paho's network thread (``loop_start``) runs the connection and its callbacks,
which only set flags and call ``on_ready`` (connected, or Home Assistant came
online): the sink's watcher thread then publishes. Refused credentials stop
paho's own retries (the core retries slowly); every state change is logged once.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from vemonitor_integrations.mqtt import discovery as ha
from vemonitor_integrations.mqtt.schema import MqttConnector

from vemonitor.api import SinkAuthFailed, SinkError, SinkUnavailable

log = logging.getLogger("vemonitor_integrations.mqtt.sink")  # one logger name for the whole output

AUTH_REASONS = frozenset({"Bad user name or password", "Not authorized"})
PROTOCOLS: Mapping[str, MQTTProtocolVersion] = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
CLOSE_WAIT = 2.0  # seconds to hand the bridge's "offline" to the broker at close
# Home Assistant says "online" on <prefix>/status once per start (its birth message, after
# its last will said "offline"). An "online" after "offline" (or the first one) is logged
# and re-publishes discovery; a repeated "online" is not logged, and re-publishes at most
# once per this many seconds: a manual `mosquitto_pub ... online` still refreshes
# discovery, while a flood of them costs one re-publish a minute, not one each.
REPEATED_ONLINE_GAP = 60.0


class MqttError(SinkError):
    """Base of the MQTT integration's errors (messages never contain the password)."""


class MqttUnavailable(MqttError, SinkUnavailable):
    """The broker is unreachable, refused us for a reason other than credentials, or timed out."""


class MqttAuthError(MqttError, SinkAuthFailed):
    """The broker refused the credentials (retried slowly by the core)."""


class StateLog:
    """Logs a message only when the state it names changes (one line per change)."""

    def __init__(self) -> None:
        self.last = ""

    def __call__(self, state: str, level: int, message: str) -> None:
        """Log ``message`` when ``state`` differs from the last one logged (never a password)."""
        if state != self.last:
            self.last = state
            log.log(level, message)


class MqttConnection:
    """One broker connection for an output named ``name``."""

    reconnect_delays: tuple[int, int] = (1, 30)  # paho's reconnect backoff, s (min, max)

    def __init__(self, connector: MqttConnector, client_id: str, layout: ha.Layout, name: str,
                 on_ready: Callable[[], None], log_once: StateLog) -> None:
        self.connector = connector
        self.client_id = client_id
        self.layout = layout
        self.name = name
        self.on_ready = on_ready
        self.log_once = log_once
        self.client: mqtt.Client | None = None
        self.closing = False
        self._answered = threading.Event()  # a CONNACK (accepted or refused) arrived
        self._refused: MqttAuthError | None = None
        # Issue 23: the command topics' filter and handler (allow_commands), else None: then
        # nothing but Home Assistant's status is ever subscribed.
        self.command_filter: str | None = None
        self.on_command: Callable[[str, bytes, bool], None] | None = None
        self._ha_status = ""  # the last payload on <prefix>/status (logged once per change)
        self._republished = -REPEATED_ONLINE_GAP  # monotonic time of the last re-publish

    @property
    def connected(self) -> bool:
        """Return True while the broker connection is up."""
        return self.client is not None and self.client.is_connected()

    def refused(self) -> bool:
        """Return True when the broker refused our credentials (no retry until asked)."""
        return self._refused is not None

    # ------------------------------------------------------------------ connecting
    def ensure(self, wait: bool) -> None:
        """Return when connected; else connect (first time, or retry refused credentials) or raise."""
        client = self.client
        if client is not None and client.is_connected():
            return
        if client is None or self._refused is not None:
            self._connect()  # the core paces these attempts (auth failures: auth_retry)
        elif not wait:
            raise MqttUnavailable(f"mqtt broker {self.connector.address()}: not connected "
                                  f"(reconnecting in the background)")
        else:
            self._answered.clear()
            if client.is_connected():
                return
        self._wait_for_connack()

    def _new_client(self) -> mqtt.Client:
        """Return a configured paho client (no I/O)."""
        c = self.connector
        protocol = PROTOCOLS[str(c.protocol)]
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=protocol,
                             clean_session=True if protocol == mqtt.MQTTv311 else None)
        if c.username:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            try:
                client.tls_set(ca_certs=c.ca_certs, certfile=c.certfile, keyfile=c.keyfile,
                               cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ValueError, ssl.SSLError) as err:
                raise MqttUnavailable(f"mqtt {c.address()}: TLS setup failed ({err})") from err
            client.tls_insecure_set(c.insecure)
        client.will_set(self.layout.bridge_availability, ha.OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(*self.reconnect_delays)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        """Start connecting in paho's network thread (returns at once)."""
        if self.client is None:
            self.client = self._new_client()
        client = self.client
        client.loop_stop()  # a refused connection's thread has ended; make sure it has
        self._refused = None
        self._answered.clear()
        client.connect_async(self.connector.host, self.connector.port, self.connector.keepalive)
        client.loop_start()

    def _wait_for_connack(self) -> None:
        """Wait up to ``timeout`` for the broker's answer; raise unless connected."""
        timeout = self.connector.timeout
        answered = self._answered.wait(timeout)
        if self._refused is not None:
            raise self._refused
        if self.connected:
            return
        why = "it refused the connection" if answered else f"no answer within {timeout:g} s"
        raise MqttUnavailable(f"mqtt broker {self.connector.address()}: not connected ({why}; "
                              f"down, wrong port or TLS failure?); retrying in the background")

    # ------------------------------------------------------------------ callbacks
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        """Record the broker's answer (paho's thread: flags only, the watcher publishes)."""
        if reason.is_failure:
            self._on_refused(client, str(reason))
        else:
            self.log_once("connected", logging.INFO,
                          f"output {self.name}: connected to mqtt broker "
                          f"{self.connector.address()} as {self.client_id}")
            if self.command_filter is not None:  # once per connection (clean session)
                client.subscribe(self.command_filter, qos=1)
            self.on_ready()
        self._answered.set()

    def _on_refused(self, client: mqtt.Client, reason: str) -> None:
        """Stop retrying refused credentials (the core retries slowly); log it once."""
        if reason not in AUTH_REASONS:
            self.log_once(f"refused {reason}", logging.WARNING,
                          f"output {self.name}: mqtt broker {self.connector.address()} "
                          f"refused the connection ({reason}); retrying")
            return
        user = f" of user '{self.connector.username}'" if self.connector.username else ""
        self._refused = MqttAuthError(
            f"mqtt broker {self.connector.address()} refused the credentials{user} ({reason}); "
            f"check username/password")
        client.disconnect()  # paho would retry every few seconds: no storm against the broker
        self.log_once("refused", logging.ERROR, f"output {self.name}: {self._refused}")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        """Log a lost connection once (paho reconnects in the background)."""
        if self.closing or self._refused is not None:
            return
        self.log_once("lost", logging.WARNING,
                      f"output {self.name}: connection to mqtt broker "
                      f"{self.connector.address()} lost ({reason}); reconnecting")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Hand a command to its handler; re-publish discovery when Home Assistant (re)starts."""
        if message.topic != self.layout.status:
            if self.on_command is not None:
                self.on_command(message.topic, bytes(message.payload), bool(message.retain))
            return
        if message.retain:
            return  # a retained "online" is an old one: discovery went out at connect
        status = message.payload.strip().lower().decode("ascii", "replace")[:16]
        changed, self._ha_status = status != self._ha_status, status
        if status != ha.ONLINE:
            if changed:
                log.info("output %s: Home Assistant is %r", self.name, status)
            return
        now = time.monotonic()
        if not changed and now - self._republished < REPEATED_ONLINE_GAP:
            return  # a repeated "online" (a flood, a loop): no log line, no discovery storm
        self._republished = now
        if changed:
            log.info("output %s: Home Assistant is online: publishing discovery again", self.name)
        self.on_ready()

    # ------------------------------------------------------------------ publishing
    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> mqtt.MQTTMessageInfo:
        """Queue one message (paho sends it); raise when the connection is closed."""
        client = self.client
        if client is None:
            raise MqttUnavailable(f"mqtt output {self.name}: closed")
        return client.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, topic: str) -> None:
        """Subscribe (QoS 1) on the current connection."""
        if self.client is not None:
            self.client.subscribe(topic, qos=1)

    def wait(self, messages: Iterable[mqtt.MQTTMessageInfo]) -> None:
        """Wait for every message to be acknowledged (QoS 1/2) or sent (QoS 0), or raise."""
        timeout = self.connector.timeout
        deadline = time.monotonic() + timeout
        for info in messages:
            try:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.001))
                done = info.is_published()
            except (RuntimeError, ValueError) as err:
                raise MqttUnavailable(f"mqtt broker {self.connector.address()}: publish "
                                      f"failed ({err})") from err
            if not done:
                raise MqttUnavailable(f"mqtt broker {self.connector.address()}: no "
                                      f"acknowledgement within {timeout:g} s")

    def close(self) -> None:
        """Say ``offline`` and disconnect (idempotent)."""
        self.closing = True
        client, self.client = self.client, None
        if client is None:
            return
        if client.is_connected():  # a clean DISCONNECT does not fire the last will
            info = client.publish(self.layout.bridge_availability, ha.OFFLINE, qos=1, retain=True)
            # The broker may go away meanwhile: its last will says offline anyway.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(CLOSE_WAIT)
        client.disconnect()
        client.loop_stop()
