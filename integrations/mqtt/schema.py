"""Schemas of the MQTT connector (``appConnectors.mqtt.<name>``) and output items."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

from vemonitor.api import Connector, InputItem, OutputItem, check_host

PROTOCOLS = ("3.1.1", "5")
QOS_LEVELS = (0, 1, 2)
MAX_TIMEOUT = 300.0  # seconds; a longer wait only delays the outbox's own retry
# Characters MQTT reserves in topic names (wildcards, level separator, NUL).
_TOPIC_FORBIDDEN = re.compile(r"[+#\x00]")
_CLIENT_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class MqttConnector(Connector):
    """An MQTT broker; the password may come from ``${oc.env:VAR}`` and never shows in repr."""

    host: str = "localhost"
    port: int = 1883
    client_id: str | None = None  # None: vemonitor-<hostname>-<block>-<output>, stable
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_certs: str | None = None  # None with tls: the system's trusted CAs
    certfile: str | None = None  # client certificate (mutual TLS), with keyfile
    keyfile: str | None = None
    insecure: bool = False  # skip the server *host name* check (the chain is still verified)
    keepalive: int = 60
    protocol: str = "3.1.1"
    timeout: float = 10.0  # seconds to connect and to wait for PUBACKs of one write

    def risks(self) -> list[str]:
        """Return what weakens this connection's security (one start-up WARNING each)."""
        if self.tls and self.insecure:
            return [f"mqtt {self.host}:{self.port}: TLS host name check is off "
                    f"(insecure=true): a certificate for any host is accepted"]
        return []

    def validate(self) -> None:
        """Check ranges and TLS options (no I/O; never echoes the password)."""
        check_host(self.host)
        if not self.host or any(c.isspace() for c in self.host):
            raise ValueError(f"host must be a host name or address, got {self.host!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if str(self.protocol) not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, "
                             f"got {self.protocol!r}")
        if not 5 <= self.keepalive <= 65535:
            raise ValueError(f"keepalive must be between 5 and 65535 seconds, got {self.keepalive}")
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ValueError(f"timeout must be > 0 and <= {MAX_TIMEOUT:g} seconds")
        if not self.tls and (self.ca_certs or self.certfile or self.keyfile or self.insecure):
            raise ValueError("ca_certs/certfile/keyfile/insecure need tls: true")
        if bool(self.certfile) != bool(self.keyfile):
            raise ValueError("certfile and keyfile go together")
        if self.password is not None and not self.username:
            raise ValueError("password needs a username")
        if self.client_id is not None and not self.client_id.strip():
            raise ValueError("client_id must not be empty (leave it out for the default)")

    def address(self) -> str:
        """Return ``host:port`` for messages (never the credentials)."""
        return f"{self.host}:{self.port}"

    def resolved_client_id(self, block: str, output: str) -> str:
        """Return the client id: the configured one, else one stable per host, block and output."""
        if self.client_id:
            return self.client_id
        raw = f"vemonitor-{socket.gethostname()}-{block}-{output}"
        return _CLIENT_ID_CHARS.sub("_", raw).strip("_")


@dataclass
class MqttOutput(OutputItem):
    """Rows published as JSON state topics, with Home Assistant discovery."""

    base_topic: str = "vemonitor"
    discovery_prefix: str = "homeassistant"
    discovery: bool = True
    qos: int = 1
    retain_state: bool = False
    per_value_topics: bool = False
    device_ids: dict[str, str] = field(default_factory=dict)  # input -> id (BMVs without SER#)
    # Issue 23: command topics for the device controls enabled on the serial inputs
    # (docs/mqtt-control.md). Off by default: anyone who may publish to the broker could
    # switch a charger, so turning it on is said at every start as a security warning.
    allow_commands: bool = False

    def risks(self) -> list[str]:
        """Return what weakens security (one start-up WARNING each, dry runs too)."""
        if not self.allow_commands:
            return []
        return [f"mqtt output {self.name or 'mqtt'}: allow_commands is on: whoever may publish "
                f"to {self.base_topic}/+/control/+/set can switch the controls enabled on the "
                f"devices; allow only Home Assistant's broker user to publish there (broker "
                f"ACL, docs/mqtt-control.md)"]

    def validate(self) -> None:
        """Check the connector name, topics, QoS and device ids (no I/O)."""
        if not self.source:
            raise ValueError("an mqtt output needs 'source': the name of an "
                             "appConnectors.mqtt connector")
        for key in ("base_topic", "discovery_prefix"):
            check_topic_root(key, getattr(self, key))
        if self.qos not in QOS_LEVELS:
            raise ValueError(f"qos must be 0, 1 or 2, got {self.qos}")
        for name, device_id in self.device_ids.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(device_id)):
                raise ValueError(f"device_ids.{name}: use 1-64 letters, digits, '_' or '-', "
                                 f"got {device_id!r}")


def check_topic_root(key: str, topic: str) -> None:
    """Raise ValueError unless ``topic`` can prefix MQTT topic names."""
    if not topic or topic.startswith("/") or topic.endswith("/"):
        raise ValueError(f"{key} must be a non-empty topic without leading or trailing '/', "
                         f"got {topic!r}")
    if _TOPIC_FORBIDDEN.search(topic) or topic.startswith("$"):
        raise ValueError(f"{key} must not contain '+', '#' or start with '$', got {topic!r}")


_PLACEHOLDER = re.compile(r"\{(site|node)\}")


@dataclass
class MqttInput(InputItem):
    """Rows read back from the state topics vemonitor's MQTT output publishes.

    ``topic`` is the output's state topic with ``{site}`` and ``{node}`` where any
    value may stand (each becomes a ``+`` wildcard and is kept in the row as the
    ``site``/``node`` value), e.g. ``fleet/{site}/{node}/state`` for edges whose
    ``base_topic`` is ``fleet/<site>``. ``share_group`` subscribes through
    ``$share/<group>/``: the broker hands each message to one member of the group.
    """

    topic: str = "vemonitor/{node}/state"
    share_group: str | None = None
    qos: int = 1
    ack_after: float = 5.0  # seconds a stored row waits in the outputs' outbox before its PUBACK
    session_expiry: int = 86400  # seconds the broker keeps our queue while we are away

    def validate(self) -> None:
        """Check the topic template, group and QoS (no I/O)."""
        levels = self.topic.split("/")
        if "{node}" not in levels:
            raise ValueError(f"topic must contain a {{node}} level, got {self.topic!r}")
        for level in levels:
            if _PLACEHOLDER.fullmatch(level) is None and (
                    not level or _TOPIC_FORBIDDEN.search(level) or "{" in level):
                raise ValueError(f"topic level {level!r} must be text, {{site}} or {{node}} "
                                 f"(no '+', '#' or empty levels), in {self.topic!r}")
        if levels[0].startswith("$"):
            raise ValueError("topic must not start with '$' (use share_group for $share)")
        if self.share_group is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}",
                                                             self.share_group):
            raise ValueError(f"share_group must be 1-64 letters, digits, '_' or '-', "
                             f"got {self.share_group!r}")
        if self.qos not in (1, 2):
            raise ValueError(f"qos must be 1 or 2 (0 could lose rows), got {self.qos}")
        if not 0 <= self.ack_after <= 3600:
            raise ValueError(f"ack_after must be between 0 and 3600 seconds, got {self.ack_after}")
        if self.session_expiry < 0:
            raise ValueError("session_expiry must be >= 0 seconds")

    def topic_filter(self) -> str:
        """Return the subscription filter (placeholders as ``+``, with ``$share`` when set)."""
        plain = _PLACEHOLDER.sub("+", self.topic)
        return f"$share/{self.share_group}/{plain}" if self.share_group else plain

    def captures(self, topic: str) -> dict[str, str] | None:
        """Return the placeholder values of a topic, or None when it does not match."""
        want = self.topic.split("/")
        got = topic.split("/")
        if len(want) != len(got):
            return None
        found: dict[str, str] = {}
        for pattern, level in zip(want, got, strict=True):
            name = _PLACEHOLDER.fullmatch(pattern)
            if name:
                found[name.group(1)] = level
            elif pattern != level:
                return None
        return found
