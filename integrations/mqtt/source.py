"""The MQTT input: the state topics vemonitor's MQTT output publishes, back into rows.

Each ``<base>/<node>/state`` message is one row with its own time (the payload's
``time``) and identity (``site``/``node`` from the topic template, ``SER#``/``PID``
when the edge sent them). Several central processes split a fleet with an MQTT v5
shared subscription (``$share/<group>/<filter>``): the broker gives each message to
one member.

Nothing lost, nothing doubled in the store: the session is persistent (a stable
client id, ``clean_start`` false, ``session_expiry``), so the broker queues
messages while we are away; messages are acknowledged by hand (paho
``manual_ack``) only once every row of them is in every output's durable outbox (the
engine says so through ``stored``, vemonitor.api.AcknowledgesRows), plus
``ack_after`` seconds. The engine takes rows only as fast as its cache has room
(back-pressure), so unacknowledged messages pile up at the broker, which stops
sending at our receive maximum, never in our memory. A process killed before that
gets the message again from the broker when it comes back (same client id): the
row is then written twice, and the store keeps it once because a point is
identified by time + tags (InfluxDB; VictoriaMetrics with dedup). Reading never
raises into the engine: a broker that is down is logged once and paho reconnects.
"""

from __future__ import annotations

import hashlib
import logging
import math
import socket
import ssl
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from vemonitor_integrations.mqtt.schema import MqttConnector, MqttInput

from vemonitor.api import MAX_ROW_TEXT, BadRow, Context, Row, Value, load_json

log = logging.getLogger(__name__)

RESERVED = ("time", "ts")  # state payload keys that are not columns (integrations/mqtt/sink.py)
RECEIVE_MAXIMUM = 65535  # unacknowledged messages the broker may send us (held ack_after)
MAX_QUEUE = 1_000_000  # rows waiting for the engine; beyond, the oldest go (counted)
# MQTT v5 Maximum Packet Size asked of the broker: a larger message is never sent to us
# (the broker drops it for this client; MQTT 5.0 section 3.1.2.11.8). The state message
# itself is bounded at MAX_TEXT (vemonitor.outside) before parsing.
MAX_PACKET = MAX_ROW_TEXT + 4096
BAD_LOG_EVERY = 3600.0  # seconds between two log lines of one kind of bad message


@dataclass
class _Message:
    """A received message whose PUBACK waits until its rows are safely handed on."""

    mid: int
    qos: int
    left: int  # rows of it not yet handed to the engine
    handed_at: float = math.inf


@dataclass(frozen=True)
class _Pending:
    row: Row
    message: _Message


def client_id_for(connector: MqttConnector, ctx: Context, name: str) -> str:
    """Return a client id stable across restarts and unique per process (its state dir)."""
    if connector.client_id:
        return connector.client_id
    where = hashlib.sha1(ctx.state_dir.encode(), usedforsecurity=False).hexdigest()[:8]
    raw = f"vemonitor-{socket.gethostname()}-{ctx.block}-in-{name}-{where}"
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in raw)


def parse_state(payload: bytes | bytearray, captures: dict[str, str]) -> tuple[float, dict[str, Value]]:
    """Return the time and values of a state message; raise BadRow (a ValueError) when it
    is not one: too large, too deep (both checked before parsing), not JSON, no time."""
    data = load_json(bytes(payload))
    stamp = data.get("time") if isinstance(data, dict) else None
    if not isinstance(stamp, int | float) or isinstance(stamp, bool) \
            or not math.isfinite(stamp):
        raise BadRow("not_state", "not a JSON object with a numeric time")
    # Every value goes on: the engine's field policy (vemonitor.fieldpolicy) types each
    # one by its column and leaves out, counted, a list, NaN or a value of the wrong kind.
    values = {k: v for k, v in data.items() if k not in RESERVED}
    values.update(captures)
    return float(data["time"]), values


class MqttSource:
    """An MQTT connector read by one or more input items (state topics -> rows)."""

    def __init__(self, name: str, connector: MqttConnector, ctx: Context) -> None:
        self.name = name
        self.connector = connector
        self.clock = ctx.clock
        self.max_time_skew = ctx.max_time_skew
        self.client_id = client_id_for(connector, ctx, name)
        self.items: dict[str, MqttInput] = {}
        self._queues: dict[str, deque[_Pending]] = {}
        self._handed: deque[_Message] = deque()  # messages stored, to acknowledge
        self._unstored: dict[str, deque[_Message]] = {}  # per input: a row handed, not stored
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._connected = False
        self._logged = ""
        self._stats = {"messages": 0, "rows": 0, "invalid": 0, "acked": 0, "dropped": 0,
                       "reconnects": 0}
        self.rejected: Counter[str] = Counter()  # bad messages set aside, by kind
        self._bad_logged_at: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"MqttSource({self.name!r}, {self.connector.address()}, {self.client_id!r})"

    def subscribe(self, item: MqttInput) -> None:
        """Attach an input item (before start; a running client subscribes at once)."""
        self.items[item.name] = item
        self._queues.setdefault(item.name, deque())
        self._unstored.setdefault(item.name, deque())
        if self._client is not None and self._connected:
            self._client.subscribe(item.topic_filter(), options=SubscribeOptions(qos=item.qos))

    # ------------------------------------------------------------------ contract
    def start(self) -> None:
        """Connect in paho's background thread (returns at once; reconnects by itself)."""
        if self._client is not None:
            return
        c = self.connector
        v5 = str(c.protocol) == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else False, manual_ack=True)
        if c.username:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            client.tls_set(ca_certs=c.ca_certs, certfile=c.certfile, keyfile=c.keyfile,
                           cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(c.insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = max(self._expiry(), 0)
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            properties.MaximumPacketSize = MAX_PACKET
        client.connect_async(c.host, c.port, c.keepalive, clean_start=False if v5 else 3,
                             properties=properties)
        client.loop_start()
        self._client = client

    def close(self) -> None:
        """Acknowledge what is due, disconnect (the session stays on the broker); idempotent."""
        client, self._client = self._client, None
        if client is None:
            return
        self._ack_due(client, wait=0.0)  # what the engine said is stored is in an outbox
        client.disconnect()
        client.loop_stop()

    def latest(self, input_name: str | None = None) -> tuple[dict[str, Value], float] | None:
        """Return None: rows are forwarded one by one with their own times, never sampled."""
        return None

    def rows_since(self, after: float, input_name: str | None = None) -> list[Row]:
        """Hand the engine the rows received for an input up to its current tick, oldest first.

        ``after`` is ignored: sites' clocks differ, so a time cursor would drop a site
        whose rows are older than another's; the queue itself says what is new.
        """
        names = [input_name] if input_name else list(self.items)
        now = self.clock.now()
        rows: list[Row] = []
        with self._lock:
            for name in names:
                if name in self.items:
                    taken = sorted(self._take(name, now), key=lambda p: p.row.time)
                    self._unstored[name].extend(p.message for p in taken)
                    rows += [p.row for p in taken]
        if self._client is not None:
            self._ack_due(self._client)
        rows.sort(key=lambda row: row.time)
        self._stats["rows"] += len(rows)
        return rows

    def stored(self, input_name: str, count: int) -> None:
        """Note that the next ``count`` rows handed for an input are stored; a message
        all of whose rows are stored is acknowledged ``ack_after`` seconds later."""
        now = self.clock.now()
        with self._lock:
            unstored = self._unstored.get(input_name, deque())
            for _ in range(min(count, len(unstored))):
                message = unstored.popleft()
                message.left -= 1
                if message.left == 0:
                    message.handed_at = now
                    self._handed.append(message)
        if self._client is not None:
            self._ack_due(self._client)

    def stats(self) -> dict[str, Any]:
        """Return the messages received, rows handed on, acks sent and the state."""
        with self._lock:
            waiting = sum(len(q) for q in self._queues.values())
        return {**self._stats, "waiting": waiting, "available": self._connected,
                "rejected": dict(self.rejected)}

    # ------------------------------------------------------------------ helpers
    def _expiry(self) -> int:
        return max((item.session_expiry for item in self.items.values()), default=86400)

    def _take(self, name: str, now: float) -> list[_Pending]:
        """Pop the rows of an input whose time has come (the engine stores time <= its tick)."""
        interval = self.items[name].time_interval
        cutoff = math.floor(now / interval + 1e-9) * interval
        queue, kept, taken = self._queues[name], deque[_Pending](), []
        while queue:
            pending = queue.popleft()
            # An edge clock a little ahead of ours: wait for it. Far ahead (beyond
            # max_time_skew): hand it on now, for the engine to refuse and acknowledge,
            # rather than hold the broker's receive window for ever.
            if cutoff < pending.row.time <= now + self.max_time_skew:
                kept.append(pending)
                continue
            taken.append(pending)
        self._queues[name] = kept
        return taken

    def _ack_due(self, client: mqtt.Client, wait: float | None = None) -> None:
        """Send the PUBACKs of messages stored at least ``ack_after`` seconds ago."""
        if wait is None:
            wait = min((item.ack_after for item in self.items.values()), default=0.0)
        now = self.clock.now()
        due: list[_Message] = []
        with self._lock:
            while self._handed and now - self._handed[0].handed_at >= wait:
                due.append(self._handed.popleft())
        for message in due:
            client.ack(message.mid, message.qos)
        self._stats["acked"] += len(due)

    def _on_message(self, client: mqtt.Client, userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        """Queue the rows of a state message (paho's thread); ack at once what is no row."""
        self._stats["messages"] += 1
        rows: list[Row] = []
        for item in self.items.values():
            captures = item.captures(message.topic)
            if captures is None:
                continue
            try:
                stamp, values = parse_state(message.payload, captures)
            except BadRow as err:
                self._set_aside(item.name, message.topic, err)
                continue
            rows.append(Row(stamp, item.name, values))
        if not rows:
            client.ack(message.mid, message.qos)  # nothing to keep: never ask for it again
            return
        held = _Message(message.mid, message.qos, len(rows))
        with self._lock:
            for row in rows:
                queue = self._queues[row.input]
                if len(queue) >= MAX_QUEUE:
                    queue.popleft()
                    self._stats["dropped"] += 1
                queue.append(_Pending(row, held))

    def _set_aside(self, name: str, topic: str, err: BadRow) -> None:
        """Count a bad message by kind; say each kind once an hour. It is acknowledged (it
        makes no row), so the broker never redelivers it: a poison message costs itself."""
        self._stats["invalid"] += 1
        self.rejected[err.reason] += 1
        now = self.clock.now()
        if now - self._bad_logged_at.get(err.reason, -math.inf) < BAD_LOG_EVERY:
            return
        self._bad_logged_at[err.reason] = now
        log.warning("input %s: a message on %.120s is set aside (%s) and acknowledged; "
                    "%d of that kind so far (said once an hour)", name, topic, err,
                    self.rejected[err.reason])

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        """Subscribe every item (again: harmless when the session kept them)."""
        if reason.is_failure:
            self._log_once(f"refused {reason}", logging.ERROR,
                           f"input {self.name}: mqtt broker {self.connector.address()} refused "
                           f"the connection ({reason})")
            return
        if self._logged == "lost":
            self._stats["reconnects"] += 1
        self._connected = True
        for item in self.items.values():
            client.subscribe(item.topic_filter(), options=SubscribeOptions(qos=item.qos))
        self._log_once("connected", logging.INFO,
                       f"input {self.name}: connected to mqtt broker {self.connector.address()} "
                       f"as {self.client_id} (session present: "
                       f"{getattr(flags, 'session_present', '?')})")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        """Log a lost connection once; paho reconnects in the background."""
        self._connected = False
        if self._client is None:
            return
        self._log_once("lost", logging.WARNING,
                       f"input {self.name}: connection to mqtt broker "
                       f"{self.connector.address()} lost ({reason}); reconnecting")

    def _log_once(self, state: str, level: int, message: str) -> None:
        if state != self._logged:
            self._logged = state
            log.log(level, message)
