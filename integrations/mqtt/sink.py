"""The MQTT output: a JSON state message per row, Home Assistant discovery, availability.

The sink is thin: :mod:`vemonitor_integrations.mqtt.connection` holds the broker connection
(paho's client, its callbacks, acknowledgements), :mod:`vemonitor_integrations.mqtt.state`
what was announced to Home Assistant and the state file, and
:mod:`vemonitor_integrations.mqtt.discovery` builds the payloads.

Threads: paho's network thread (``loop_start``) runs the connection and its
callbacks, which only set flags; a small watcher thread publishes what those
flags and the devices' availability call for (bridge ``online``, discovery,
per-device availability); ``write()`` runs in the core's sender thread, makes
one attempt and raises on failure (the outbox retries with backoff).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from vemonitor_integrations.mqtt import discovery as ha
from vemonitor_integrations.mqtt.connection import MqttAuthError as MqttAuthError
from vemonitor_integrations.mqtt.connection import MqttConnection, StateLog
from vemonitor_integrations.mqtt.connection import MqttError as MqttError
from vemonitor_integrations.mqtt.connection import MqttUnavailable as MqttUnavailable
from vemonitor_integrations.mqtt.control import CommandRouter
from vemonitor_integrations.mqtt.schema import MqttConnector, MqttOutput
from vemonitor_integrations.mqtt.state import DiscoveryState

from vemonitor.api import Batch, Context, InputInfo, Row, __version__

log = logging.getLogger(__name__)

RESERVED_KEYS = ("time", "ts")  # state JSON keys that are not columns


class MqttSink:
    """Publishes rows, discovery and availability to one broker (see the module doc)."""

    poll_interval = 1.0  # seconds between availability checks of the devices

    def __init__(self, item: MqttOutput, connector: MqttConnector, ctx: Context) -> None:
        self.item = item
        self.connector = connector
        self.ctx = ctx
        self.name = item.name or "mqtt"
        self.client_id = connector.resolved_client_id(ctx.block or "block", self.name)
        self.layout = ha.Layout(item.base_topic, item.discovery_prefix, ha.slug(self.client_id),
                                ctx.block or "block", __version__, item.qos)
        self.nodes = [n for n in (list(item.columns) or list(ctx.inputs)) if n in ctx.inputs]
        self.state_path = Path(ctx.state_dir) / f"mqtt-{ha.slug(self.name)}.json"
        self._log_once = StateLog()
        self.conn = MqttConnection(connector, self.client_id, self.layout, self.name,
                                   self._on_ready, self._log_once)
        self.commands = self._command_router()
        self.discovery = DiscoveryState(item, ctx.inputs, self.nodes, self.layout,
                                        self.state_path, self.name, self._log_once,
                                        self.commands.views if self.commands else list)
        self._lock = threading.RLock()  # discovery bookkeeping: watcher vs sender thread
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._full_due = False  # (re)connected or HA restarted: publish everything once
        self._sent: dict[str, str] = {}  # discovery topic -> payload sent on this connection
        self._available: dict[str, bool] = {}  # node -> availability last published
        # node -> columns published on per-value topics: one a row lacks gets ``null``.
        self._per_value: dict[str, set[str]] = {}

    @property
    def reconnect_delays(self) -> tuple[int, int]:
        """Return paho's background reconnect backoff, seconds (min, max)."""
        return self.conn.reconnect_delays

    @reconnect_delays.setter
    def reconnect_delays(self, value: tuple[int, int]) -> None:
        self.conn.reconnect_delays = value

    def __repr__(self) -> str:
        return f"MqttSink({self.name!r}, {self.connector.address()}, client_id={self.client_id!r})"

    def _command_router(self) -> CommandRouter | None:
        """Return the command topics' router (``allow_commands`` and a control enabled), else None."""
        if not self.item.allow_commands:
            return None
        controls = self.ctx.controls
        if controls is None:
            log.warning("output %s: allow_commands is on, but no serial input has a control "
                        "enabled (docs/control.md): no command topic", self.name)
            return None
        router = CommandRouter(controls, self.layout, self.nodes, self._publish_control,
                               self.name, wake=lambda: self._wake.set())
        self.conn.command_filter = self.layout.command_filter
        self.conn.on_command = router.on_message
        return router

    def _publish_control(self, topic: str, payload: str, retain: bool) -> None:
        """Publish a control's state or result (QoS 1); nothing while disconnected (a state
        goes out again at the next connection, a result is an event of its moment)."""
        if self.conn.connected:
            try:
                self.conn.publish(topic, payload, 1, retain)
            except MqttError:  # closed meanwhile: the same as disconnected
                return

    # ------------------------------------------------------------------ contract
    def start(self) -> None:
        """Connect (waiting up to ``timeout``) and start the watcher; raise if not connected."""
        self._start_watcher()
        self.conn.ensure(wait=True)

    def write(self, batch: Batch) -> None:
        """Publish one state message per row (and per value if asked); wait for the PUBACKs."""
        self._start_watcher()
        self.conn.ensure(wait=False)
        with self._lock:
            self.discovery.note_columns(batch.rows)
        self._refresh()  # discovery of new columns goes out before their first state
        messages = [info for row in batch.rows for info in self._publish_row(row)]
        self.conn.wait(messages)

    def close(self) -> None:
        """Say ``offline``, disconnect and stop the threads (idempotent)."""
        self.conn.closing = True
        if self.commands is not None:
            self.commands.close()
        self._stop.set()
        self._wake.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(5.0)
        self.conn.close()

    def stats(self) -> dict[str, int]:
        """Return what the sink counted."""
        return {"discovery_topics": len(self._sent), "devices": len(self.discovery.devices)}

    # ------------------------------------------------------------------ publishing
    def _on_ready(self) -> None:
        """Connected, or Home Assistant (re)started: publish everything once (watcher)."""
        self._full_due = True
        self._wake.set()

    def _start_watcher(self) -> None:
        """Start the thread publishing availability and discovery (once)."""
        if self._watcher is None and not self.conn.closing:
            if self.commands is not None:
                self.commands.start()
            self._watcher = threading.Thread(target=self._watch, name=f"mqtt-{self.name}",
                                             daemon=True)
            self._watcher.start()

    def _publish_row(self, row: Row) -> list[mqtt.MQTTMessageInfo]:
        """Publish a row's state message, and its per-value messages when configured."""
        qos, retain = self.item.qos, self.item.retain_state
        infos = [self.conn.publish(self.layout.state(row.input), state_payload(row), qos,
                                   retain)]
        if self.item.per_value_topics:
            # A reading the row lacks (left out of range, not available) is published as
            # ``null``: the value retained before must not stand as the current one.
            known = self._per_value.setdefault(row.input, set())
            absent = sorted(known - row.values.keys())
            known.update(row.values)
            values = [*row.values.items(), *((column, None) for column in absent)]
            infos += [self.conn.publish(self.layout.value(row.input, column),
                                        value_payload(value), qos, retain)
                      for column, value in values]
        return infos

    def _watch(self) -> None:
        """Publish availability changes and pending discovery until closed."""
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._refresh()
            except Exception as err:  # a source's device() bug must not end the watcher
                self._log_once(f"watch {err}", logging.WARNING,
                               f"output {self.name}: availability/discovery update failed: "
                               f"{type(err).__name__}: {err}")

    def _refresh(self) -> None:
        """Publish what changed: after a (re)connection everything once, else only changes."""
        with self._lock:
            if not self.conn.connected:
                return
            full = self._full_due
            if self._full_due:
                self._full_due = False
                self._sent.clear()
                self._available.clear()
                self.conn.publish(self.layout.bridge_availability, ha.ONLINE, 1, True)
                if self.item.discovery:
                    self.conn.subscribe(self.layout.status)
            self._publish_availability()
            self._sync_discovery()
            if self.commands is not None:
                self.commands.sync(full)  # after discovery: the entity exists before its state

    def _publish_availability(self) -> None:
        """Publish each input's device availability when it changed (retained)."""
        for node in self.nodes:
            up = _available(self.ctx.inputs[node])
            if self._available.get(node) != up:
                self.conn.publish(self.layout.availability(node),
                                  ha.ONLINE if up else ha.OFFLINE, 1, True)
                self._available[node] = up
                log.debug("output %s: %s is %s", self.name, node, "online" if up else "offline")

    def _sync_discovery(self) -> None:
        """Publish new or changed device configs; migrate per-entity ones; clear the gone."""
        desired = self.discovery.desired()
        legacy = self.discovery.legacy_topics()
        for topic, payload in desired.items():
            device_id = topic.split("/")[-2]
            # Home Assistant's migration, per device: migrate_discovery on each old
            # per-entity topic, then the device config (same unique_ids: the entities and
            # their history stay), then clear the old topics.
            old = sorted(t for t in legacy if t.split("/")[-3] == device_id)
            if old:
                log.info("output %s: moving %d Home Assistant entities of %s to device-based "
                         "discovery", self.name, len(old), device_id)
            for stale in old:
                self.conn.publish(stale, ha.MIGRATE_PAYLOAD, 1, True)
            text = self.discovery.encode(topic, payload)
            if self._sent.get(topic) != text:
                self.conn.publish(topic, text, 1, True)
                self._sent[topic] = text
            for stale in old:
                self.conn.publish(stale, "", 1, True)
                legacy.discard(stale)
                self.discovery.known.discard(stale)
        for topic in self.discovery.stale(desired, self._sent):
            self.conn.publish(topic, "", 1, True)  # an empty retained config removes it
            self._sent.pop(topic, None)
        self.discovery.save()


# ---------------------------------------------------------------------- helpers
def _available(info: InputInfo) -> bool:
    """Return whether the input's device is available (True for sources without a device)."""
    described = info.device()
    return bool(described.get("available", True)) if described else True


def _clean(value: Any) -> Any:
    """Return a JSON-safe value (NaN and infinities become null)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def iso_time(epoch: float) -> str:
    """Return an ISO 8601 UTC timestamp (milliseconds only when the time has a fraction)."""
    spec = "seconds" if float(epoch).is_integer() else "milliseconds"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec=spec)


def state_payload(row: Row) -> str:
    """Return a row as its JSON state message: time, ts, then the values under their names."""
    stamp: int | float = int(row.time) if float(row.time).is_integer() else row.time
    values = {k: _clean(v) for k, v in row.values.items() if k not in RESERVED_KEYS}
    return json.dumps({"time": stamp, "ts": iso_time(row.time), **values},
                      separators=(",", ":"), ensure_ascii=False)


def value_payload(value: Any) -> str:
    """Return one value as a per-value message: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(_clean(value))

