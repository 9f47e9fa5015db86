"""The MQTT output: a JSON state message per row, Home Assistant discovery, availability.

Threads: paho's network thread (``loop_start``) runs the connection and its
callbacks, which only set flags; a small watcher thread publishes what those
flags and the devices' availability call for (bridge ``online``, discovery,
per-device availability); ``write()`` runs in the core's sender thread, makes
one attempt and raises on failure (the outbox retries with backoff).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from integrations.mqtt import discovery as ha
from integrations.mqtt.schema import MqttConnector, MqttOutput
from vemonitor import __version__
from vemonitor.errors import SinkAuthFailed, SinkError, SinkUnavailable
from vemonitor.model import Batch, Row
from vemonitor.registry import Context, InputInfo

log = logging.getLogger(__name__)

AUTH_REASONS = frozenset({"Bad user name or password", "Not authorized"})
PROTOCOLS: Mapping[str, MQTTProtocolVersion] = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
RESERVED_KEYS = ("time", "ts")  # state JSON keys that are not columns
STATE_FILE_VERSION = 1
CLOSE_WAIT = 2.0  # seconds to hand the bridge's "offline" to the broker at close


class MqttError(SinkError):
    """Base of the MQTT integration's errors (messages never contain the password)."""


class MqttUnavailable(MqttError, SinkUnavailable):
    """The broker is unreachable, refused us for a reason other than credentials, or timed out."""


class MqttAuthError(MqttError, SinkAuthFailed):
    """The broker refused the credentials (retried slowly by the core)."""


@dataclass(frozen=True)
class DeviceGroup:
    """The inputs reading one device: those of one connector share one HA device."""

    key: str  # "<domain>:<connector>"
    connector: str
    nodes: tuple[str, ...]


class MqttSink:
    """Publishes rows, discovery and availability to one broker (see the module doc)."""

    poll_interval = 1.0  # seconds between availability checks of the devices
    reconnect_delays = (1, 30)  # paho's background reconnect backoff, seconds (min, max)

    def __init__(self, item: MqttOutput, connector: MqttConnector, ctx: Context) -> None:
        self.item = item
        self.connector = connector
        self.ctx = ctx
        self.name = item.name or "mqtt"
        self.client_id = connector.resolved_client_id(ctx.block or "block", self.name)
        self.layout = ha.Layout(item.base_topic, item.discovery_prefix, ha.slug(self.client_id),
                                ctx.block or "block", __version__, item.qos)
        self.nodes = [n for n in (list(item.columns) or list(ctx.inputs)) if n in ctx.inputs]
        self.groups = _groups({n: ctx.inputs[n] for n in self.nodes})
        self.state_path = Path(ctx.state_dir) / f"mqtt-{ha.slug(self.name)}.json"
        self._client: mqtt.Client | None = None
        self._lock = threading.RLock()  # discovery bookkeeping: watcher vs sender thread
        self._answered = threading.Event()  # a CONNACK (accepted or refused) arrived
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._refused: MqttAuthError | None = None
        self._full_due = False  # (re)connected or HA restarted: publish everything once
        self._closing = False
        self._logged = ""  # last connection state logged (one line per change)
        self._sent: dict[str, str] = {}  # discovery topic -> payload sent on this connection
        self._available: dict[str, bool] = {}  # node -> availability last published
        state = _load_state(self.state_path)
        self._known: set[str] = set(state.get("topics", []))  # discovery topics of the last run
        self._devices: dict[str, ha.DeviceInfo] = _devices_from(state.get("devices", {}))
        # device config topic -> {component id: platform} last published (this or last run):
        # a component that disappears is sent once as {"p": platform} (HA removes it).
        self._components: dict[str, dict[str, str]] = {
            str(t): {str(k): str(v) for k, v in c.items()}
            for t, c in (state.get("components") or {}).items() if isinstance(c, dict)}
        self._seen = self._restore_seen(state.get("columns", {}))
        self._saved = ""

    def __repr__(self) -> str:
        return f"MqttSink({self.name!r}, {self.connector.address()}, client_id={self.client_id!r})"

    # ------------------------------------------------------------------ contract
    def start(self) -> None:
        """Connect (waiting up to ``timeout``) and start the watcher; raise if not connected."""
        self._start_watcher()
        self._ensure_connected(wait=True)

    def write(self, batch: Batch) -> None:
        """Publish one state message per row (and per value if asked); wait for the PUBACKs."""
        self._start_watcher()
        self._ensure_connected(wait=False)
        self._note_columns(batch.rows)
        self._refresh()  # discovery of new columns goes out before their first state
        messages = [info for row in batch.rows for info in self._publish_row(row)]
        self._await(messages)

    def close(self) -> None:
        """Say ``offline``, disconnect and stop the threads (idempotent)."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(5.0)
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected():  # a clean DISCONNECT does not fire the last will
            info = client.publish(self.layout.bridge_availability, ha.OFFLINE, qos=1, retain=True)
            # The broker may go away meanwhile: its last will says offline anyway.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(CLOSE_WAIT)
        client.disconnect()
        client.loop_stop()

    def stats(self) -> dict[str, int]:
        """Return what the sink counted."""
        return {"discovery_topics": len(self._sent), "devices": len(self._devices)}

    # ------------------------------------------------------------------ connection
    def _start_watcher(self) -> None:
        """Start the thread publishing availability and discovery (once)."""
        if self._watcher is None and not self._closing:
            self._watcher = threading.Thread(target=self._watch, name=f"mqtt-{self.name}",
                                             daemon=True)
            self._watcher.start()

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

    def _ensure_connected(self, wait: bool) -> None:
        """Return when connected; else connect (first time, or retry refused credentials) or raise."""
        client = self._client
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

    def _connect(self) -> None:
        """Start connecting in paho's network thread (returns at once)."""
        if self._client is None:
            self._client = self._new_client()
        client = self._client
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
        if self._client is not None and self._client.is_connected():
            return
        why = "it refused the connection" if answered else f"no answer within {timeout:g} s"
        raise MqttUnavailable(f"mqtt broker {self.connector.address()}: not connected ({why}; "
                              f"down, wrong port or TLS failure?); retrying in the background")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        """Record the broker's answer (paho's thread: flags only, the watcher publishes)."""
        if reason.is_failure:
            self._on_refused(client, str(reason))
        else:
            self._full_due = True
            self._log_once("connected", logging.INFO,
                           f"output {self.name}: connected to mqtt broker "
                           f"{self.connector.address()} as {self.client_id}")
            self._wake.set()
        self._answered.set()

    def _on_refused(self, client: mqtt.Client, reason: str) -> None:
        """Stop retrying refused credentials (the core retries slowly); log it once."""
        if reason not in AUTH_REASONS:
            self._log_once(f"refused {reason}", logging.WARNING,
                           f"output {self.name}: mqtt broker {self.connector.address()} "
                           f"refused the connection ({reason}); retrying")
            return
        user = f" of user '{self.connector.username}'" if self.connector.username else ""
        self._refused = MqttAuthError(
            f"mqtt broker {self.connector.address()} refused the credentials{user} ({reason}); "
            f"check username/password")
        client.disconnect()  # paho would retry every few seconds: no storm against the broker
        self._log_once("refused", logging.ERROR, f"output {self.name}: {self._refused}")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        """Log a lost connection once (paho reconnects in the background)."""
        if self._closing or self._refused is not None:
            return
        self._log_once("lost", logging.WARNING,
                       f"output {self.name}: connection to mqtt broker "
                       f"{self.connector.address()} lost ({reason}); reconnecting")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Re-publish discovery when Home Assistant (re)starts (its birth message)."""
        if message.topic != self.layout.status or message.retain:
            return  # a retained "online" is an old one: discovery went out at connect
        if message.payload.strip().lower() == ha.ONLINE.encode():
            log.info("output %s: Home Assistant is online: publishing discovery again", self.name)
            self._full_due = True
            self._wake.set()

    def _log_once(self, state: str, level: int, message: str) -> None:
        """Log ``message`` when the connection state changes (never the password)."""
        if state != self._logged:
            self._logged = state
            log.log(level, message)

    # ------------------------------------------------------------------ publishing
    def _publish(self, topic: str, payload: str, qos: int, retain: bool) -> mqtt.MQTTMessageInfo:
        client = self._client
        if client is None:
            raise MqttUnavailable(f"mqtt output {self.name}: closed")
        return client.publish(topic, payload, qos=qos, retain=retain)

    def _publish_row(self, row: Row) -> list[mqtt.MQTTMessageInfo]:
        """Publish a row's state message, and its per-value messages when configured."""
        qos, retain = self.item.qos, self.item.retain_state
        infos = [self._publish(self.layout.state(row.source), state_payload(row), qos, retain)]
        if self.item.per_value_topics:
            infos += [self._publish(self.layout.value(row.source, column), value_payload(value),
                                    qos, retain) for column, value in row.values.items()]
        return infos

    def _await(self, messages: Iterable[mqtt.MQTTMessageInfo]) -> None:
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

    # ------------------------------------------------------------------ discovery
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
            client = self._client
            if client is None or not client.is_connected():
                return
            if self._full_due:
                self._full_due = False
                self._sent.clear()
                self._available.clear()
                self._publish(self.layout.bridge_availability, ha.ONLINE, 1, True)
                if self.item.discovery:
                    client.subscribe(self.layout.status, qos=1)
            self._publish_availability()
            self._sync_discovery()

    def _publish_availability(self) -> None:
        """Publish each input's device availability when it changed (retained)."""
        for node in self.nodes:
            up = _available(self.ctx.inputs[node])
            if self._available.get(node) != up:
                self._publish(self.layout.availability(node), ha.ONLINE if up else ha.OFFLINE,
                              1, True)
                self._available[node] = up
                log.debug("output %s: %s is %s", self.name, node, "online" if up else "offline")

    def _sync_discovery(self) -> None:
        """Publish new or changed device configs; migrate per-entity ones; clear the gone."""
        desired = self._desired()
        legacy = {t for t in self._known if ha.legacy_topic(t, self.layout)}
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
                self._publish(stale, ha.MIGRATE_PAYLOAD, 1, True)
            gone = ha.removed_components(self._components.get(topic, {}), payload)
            text = ha.encode({**payload, "cmps": {**payload["cmps"], **gone}})
            if self._sent.get(topic) != text:
                self._publish(topic, text, 1, True)
                self._sent[topic] = text
            self._components[topic] = {k: str(c["p"]) for k, c in payload["cmps"].items()}
            for stale in old:
                self._publish(stale, "", 1, True)
                legacy.discard(stale)
                self._known.discard(stale)
        if all(self._identity(g) is not None for g in self.groups):
            for topic in sorted((self._known | set(self._sent)) - set(desired)):
                self._publish(topic, "", 1, True)  # an empty retained config removes it
                self._sent.pop(topic, None)
                self._components.pop(topic, None)
            self._known = set(desired)
        else:  # a device not identified yet: keep its old entities until it is
            self._known |= set(desired)
        self._save_state()

    def _desired(self) -> dict[str, dict[str, Any]]:
        """Return every device discovery topic -> payload this output should have published."""
        if not self.item.discovery:
            return {}
        topic, payload = ha.bridge_config(self.layout)
        desired = {topic: payload}
        for group in self.groups:
            device = self._identity(group)
            if device is None:
                continue
            components: dict[str, dict[str, Any]] = {}
            for node in group.nodes:
                names = self._names(node)
                for column in self._row_columns(node):
                    label = ha.label_of(column, names)
                    if ha.is_entity(label):
                        key, config = ha.component_config(node, column, label, device,
                                                          self.layout)
                        components.setdefault(key, config)
            topic, payload = ha.device_config(device, components, self.layout)
            if topic in desired:  # two groups named as one device: one config
                payload["cmps"] = {**payload["cmps"], **desired[topic]["cmps"]}
            desired[topic] = payload
        return desired

    def _identity(self, group: DeviceGroup) -> ha.DeviceInfo | None:
        """Return the group's device: live, else the one remembered from the last run."""
        override = next((self.item.device_ids[n] for n in (*group.nodes, group.connector)
                         if n in self.item.device_ids), None)
        info = self.ctx.inputs[group.nodes[0]].device()
        live = ha.identify(info, override, f"{self.layout.block}_{group.connector}",
                           group.connector)
        if live is not None:
            self._devices[group.key] = live
        return self._devices.get(group.key)

    def _names(self, node: str) -> dict[str, str]:
        """Return device column -> row column: the output's ref_cols, else the input's."""
        own = {col: std for std, col in self.item.ref_cols}
        return own or dict(self.ctx.inputs[node].standard_names)

    def _configured(self, node: str) -> list[str]:
        """Return the row columns the configuration names for ``node`` (may be empty: all)."""
        names = self._names(node)
        devices = {std: col for col, std in names.items()}
        wanted = self.item.columns.get(node) or self.ctx.inputs[node].columns
        columns = (devices.get(c, c) for c in wanted if c != "time_ref")
        return [names.get(c, c) for c in columns]

    def _row_columns(self, node: str) -> list[str]:
        """Return the configured columns, then those rows brought (all columns, derived values)."""
        configured = self._configured(node)
        return configured + sorted(set(self._seen.get(node, ())) - set(configured))

    def _note_columns(self, rows: Iterable[Row]) -> None:
        """Remember the columns rows carry, so each gets its entity."""
        with self._lock:
            for row in rows:
                if row.source in self.ctx.inputs:
                    self._seen.setdefault(row.source, set()).update(row.values)

    # ------------------------------------------------------------------ state file
    def _restore_seen(self, saved: Mapping[str, Any]) -> dict[str, set[str]]:
        """Return the columns rows brought last run, for inputs whose configuration is unchanged."""
        seen: dict[str, set[str]] = {}
        for node in self.nodes:
            entry = saved.get(node) or {}
            if entry.get("configured") == self._configured(node):
                seen[node] = set(entry.get("seen", []))
        return seen

    def _save_state(self) -> None:
        """Write the state file when its content changed (no SD-card writes otherwise)."""
        state = {"version": STATE_FILE_VERSION, "topics": sorted(self._known),
                 "components": {t: dict(sorted(c.items()))
                                for t, c in sorted(self._components.items())},
                 "devices": {k: d.as_dict() for k, d in sorted(self._devices.items())},
                 "columns": {n: {"configured": self._configured(n),
                                 "seen": sorted(self._seen.get(n, ()))} for n in self.nodes}}
        text = json.dumps(state, indent=1, sort_keys=True)
        if text == self._saved:
            return
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.state_path)
            self._saved = text
        except OSError as err:  # only entity clean-up depends on it: warn once, keep going
            self._log_once(f"state {err}", logging.WARNING,
                           f"output {self.name}: cannot write {self.state_path}: {err}")


# ---------------------------------------------------------------------- helpers
def _groups(inputs: Mapping[str, InputInfo]) -> list[DeviceGroup]:
    """Return the inputs grouped by connector (one device each), in a stable order."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for name, info in sorted(inputs.items()):
        grouped.setdefault((info.domain, info.connector), []).append(name)
    return [DeviceGroup(f"{domain}:{connector}", connector, tuple(nodes))
            for (domain, connector), nodes in grouped.items()]


def _available(info: InputInfo) -> bool:
    """Return whether the input's device is available (True for sources without a device)."""
    described = info.device()
    return bool(described.get("available", True)) if described else True


def _load_state(path: Path) -> dict[str, Any]:
    """Return the state file's content, empty when absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == STATE_FILE_VERSION else {}


def _devices_from(saved: Mapping[str, Any]) -> dict[str, ha.DeviceInfo]:
    """Return the devices remembered from the last run (entries that do not parse are dropped)."""
    devices: dict[str, ha.DeviceInfo] = {}
    for key, entry in saved.items():
        try:
            devices[key] = ha.DeviceInfo(**entry)
        except TypeError:
            continue
    return devices


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

