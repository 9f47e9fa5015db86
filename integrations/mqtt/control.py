"""MQTT command topics of the device controls (issue 23): commands in, results and states out.

Only with ``allow_commands: true`` on the output, and only for the controls the core lists
for a device (``Context.controls.views()``: allow-listed and enabled for that device).
Without it nothing is subscribed at all. Topics, per input (device) and control name::

    <base>/<input>/control/<name>/set           commands (subscribed, QoS 1)
    <base>/<input>/control/<name>/state         {"value": .., "unavailable": .., ...} retained
    <base>/<input>/control/<name>/availability  online / offline (a precondition fails), retained
    <base>/<input>/control/<name>/result        every write result, any surface (JSON, not retained)

A command is an option name (``on``, ``off``, ``auto``), a number in the control's unit
(``12.5``), or JSON ``{"value": 12.5, "lease_s": 600, "dry_run": true}`` (``lease_s`` only
for the charge-current limit; ``dry_run`` asks for the frame without writing it). Every
check of the value, the device and the rate limits is the core's (``Controls.request``);
this module refuses only what never reaches it: a malformed payload, an unknown or disabled
control, a retained command (a stale command is never replayed), a full queue. Those
refusals are published as results too, so the sender always learns why.

Threads: paho's network thread only parses and queues; one worker thread per output calls
``request`` (blocking, up to ~5 s), so acknowledgements of state messages never wait on a
write. Results come from the core's ``subscribe`` callback (any thread).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from vemonitor_integrations.mqtt import discovery as ha

from vemonitor.api import ControlResult, ResultKind

if TYPE_CHECKING:
    from vemonitor.api import Controls, ControlView

log = logging.getLogger("vemonitor_integrations.mqtt.sink")  # one logger for the whole output

MAX_PAYLOAD = 256  # bytes; a command is a word, a number or a small JSON object
QUEUE_SIZE = 8  # commands waiting for the worker; more are refused ("busy"), never dropped silently
COMMAND_KEYS = frozenset({"value", "lease_s", "dry_run"})
SURFACE = "mqtt"
REFUSED: ResultKind = "refused"


class BadCommand(ValueError):
    """A command payload that cannot be a command (the message says why, in one line)."""


@dataclass(frozen=True)
class Command:
    """One parsed command: the value by name or number, the lease, a dry-run request."""

    value: str | float
    lease_s: float | None = None
    dry_run: bool = False


def parse_command(payload: bytes) -> Command:
    """Return the command of a payload, or raise BadCommand saying what is wrong with it."""
    if len(payload) > MAX_PAYLOAD:
        raise BadCommand(f"payload too long ({len(payload)} bytes, at most {MAX_PAYLOAD})")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise BadCommand(f"payload is not UTF-8 text (byte {err.start})") from None
    if not text:
        raise BadCommand("empty payload: send an option name, a number or JSON "
                         '{"value": ..., "lease_s": ...}')
    _check_printable(text, "payload")
    if text.startswith("{"):
        return _parse_json(text)
    return Command(_plain_value(text))


def _check_printable(text: str, what: str) -> None:
    """Refuse control characters: a newline could forge a log line where the value is logged."""
    odd = next((i for i, c in enumerate(text) if not c.isprintable()), None)
    if odd is not None:
        raise BadCommand(f"{what} has a control character at character {odd}")


def _plain_value(text: str) -> str | float:
    """Return a number when the text is one (``12.5``, ``nan``: the core refuses non-finite
    values with its own reason), else the option name in lower case (``ON`` is ``on``)."""
    try:
        return float(text)
    except ValueError:
        return text.lower()


def _parse_json(text: str) -> Command:
    """Return the command of a JSON object payload."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadCommand(f"payload is not valid JSON ({err.msg} at character {err.pos})") \
            from None
    if not isinstance(data, dict):
        raise BadCommand("JSON payload must be an object")
    unknown = sorted(set(data) - COMMAND_KEYS)
    if unknown:
        raise BadCommand(f"unknown key {unknown[0]!r} (keys: value, lease_s, dry_run)")
    if "value" not in data:
        raise BadCommand("JSON payload needs a 'value'")
    value = data["value"]
    if isinstance(value, str):
        _check_printable(value, "value")
        value = _plain_value(value.strip())
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise BadCommand(f"value must be an option name or a number, got {json.dumps(value)}")
    return Command(float(value) if isinstance(value, int) else value,
                   _lease(data.get("lease_s")), _flag(data.get("dry_run", False)))


def _lease(raw: Any) -> float | None:
    """Return the lease in seconds (None: the core's default lease)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) \
            or raw <= 0:
        raise BadCommand(f"lease_s must be a positive number of seconds, got {json.dumps(raw)}")
    return float(raw)


def _flag(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise BadCommand(f"dry_run must be true or false, got {json.dumps(raw)}")
    return raw


def result_payload(result: ControlResult) -> str:
    """Return a result as its JSON message (every field of the contract's ControlResult)."""
    data = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(result).items()}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def state_payload(view: ControlView) -> str:
    """Return a control's retained state: the value read from the device and why it is
    unavailable (also the Home Assistant entity's attributes)."""
    value = view.value
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    return json.dumps({"value": value, "unavailable": view.unavailable, "dry_run": view.dry_run,
                       "unit": view.unit, "lease_until": view.lease_until},
                      separators=(",", ":"), ensure_ascii=False)


def split_topic(topic: str, base: str) -> tuple[str, str] | None:
    """Return (input, control) of a command topic under ``base``, None for any other topic."""
    head = base + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) != 4 or parts[1] != ha.CONTROL_LEVEL or parts[3] != "set":
        return None
    return parts[0], parts[2]


Publish = Callable[[str, str, bool], None]  # topic, payload, retain (QoS 1)


class CommandRouter:
    """The command topics of one MQTT output: parse, queue, ``request``, publish results.

    ``nodes``: the inputs this output publishes (only their controls are shown and
    commanded); ``publish``: the output's publisher (does nothing while disconnected);
    ``wake``: asks the output's watcher thread to call :meth:`sync` soon.
    """

    def __init__(self, controls: Controls, layout: ha.Layout, nodes: Iterable[str],
                 publish: Publish, output: str, wake: Callable[[], None] = lambda: None,
                 wall: Callable[[], float] = time.time) -> None:
        self.controls = controls
        self.wake = wake  # asks the output's watcher to sync (see on_result)
        self.layout = layout
        self.nodes = set(nodes)
        self.topics = {ha.topic_part(n): n for n in self.nodes}  # topic level -> input
        self.publish = publish
        self.output = output
        self.wall = wall
        self._queue: queue.Queue[tuple[str, bytes, bool] | None] = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Lock()
        self._published: dict[str, str] = {}  # state/availability topic -> payload last sent
        self._logged: set[str] = set()  # warnings logged (once each per run)
        self._worker: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker and listen to every result of the core (idempotent)."""
        if self._worker is None:
            self._unsubscribe = self.controls.subscribe(self.on_result)
            self._worker = threading.Thread(target=self._work, name=f"mqtt-{self.output}-commands",
                                            daemon=True)
            self._worker.start()

    def close(self) -> None:
        """Stop listening and let the worker end after the command it runs (idempotent)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._worker is not None:
            # A full queue: the worker is busy; a daemon thread, it ends with the process.
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            if self._worker is not threading.current_thread():
                self._worker.join(6.0)  # at most one request (~5 s) is in progress
            self._worker = None

    # ------------------------------------------------------------------ views
    def views(self) -> list[ControlView]:
        """Return the controls of this output's inputs (enabled ones only: the core's list).

        A failure of the core shows no control rather than stopping the output: discovery
        runs before each write's state messages, and rows must keep flowing.
        """
        try:
            views = self.controls.views()
        except Exception as err:
            self._log_once(f"views: {type(err).__name__}: {err}",
                           f"output {self.output}: the device controls cannot be listed "
                           f"({type(err).__name__}: {err}); no control is shown")
            return []
        return [v for v in views if v.device in self.nodes]

    def _log_once(self, key: str, message: str) -> None:
        """Log a WARNING once per key (at most 100 different ones per run: a flood)."""
        if key not in self._logged and len(self._logged) < 100:
            self._logged.add(key)
            log.warning("%s", message)

    def sync(self, full: bool = False) -> None:
        """Publish each control's state and availability when they changed (``full``: all)."""
        with self._lock:
            if full:
                self._published.clear()
            for view in self.views():
                self._publish_once(self.layout.control(view.device, view.name, "state"),
                                   state_payload(view))
                up = ha.ONLINE if view.unavailable is None else ha.OFFLINE
                self._publish_once(self.layout.control(view.device, view.name, "availability"),
                                   up)

    def _publish_once(self, topic: str, payload: str) -> None:
        if self._published.get(topic) != payload:
            self.publish(topic, payload, True)
            self._published[topic] = payload

    # ------------------------------------------------------------------ commands
    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        """Queue a command (paho's thread: no blocking); refuse it when the queue is full."""
        if split_topic(topic, self.layout.base) is None:
            return
        try:
            self._queue.put_nowait((topic, payload, retain))
        except queue.Full:
            self._refuse(topic, f"busy: {QUEUE_SIZE} commands are waiting; send it again later")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self.handle(*item)
            except Exception as err:  # a bug in the core must not end the command topics
                self._refuse(item[0], f"internal error: {type(err).__name__}: {err}")

    def handle(self, topic: str, payload: bytes, retain: bool) -> None:
        """Run one command: refuse what never reaches the core, else ``request`` it."""
        place = split_topic(topic, self.layout.base)
        if place is None:
            return
        level, name = place
        if retain:
            self._refuse(topic, "retained command: a stale command is never replayed; "
                                "publish commands with retain=false")
            return
        node = self.topics.get(level)
        view = next((v for v in self.views() if v.device == node and v.name == name), None)
        if node is None or view is None:
            self._refuse(topic, self._not_found(node, level, name))
            return
        try:
            command = parse_command(payload)
        except BadCommand as err:
            self._refuse(topic, str(err), node, name)
            return
        # The core checks the value, the lease, the device and the rate limits, and gives
        # the result to every subscriber (on_result below publishes it here).
        self.controls.request(node, name, command.value, surface=SURFACE, caller=topic,
                              dry_run=command.dry_run or view.dry_run, lease_s=command.lease_s)

    def _not_found(self, node: str | None, level: str, name: str) -> str:
        if node is None:
            known = ", ".join(sorted(self.topics)) or "none"
            return f"unknown device {level!r}: this output publishes {known}"
        enabled = sorted(v.name for v in self.views() if v.device == node)
        return (f"control {name!r} is not enabled for {node} (enabled: "
                f"{', '.join(enabled) or 'none'}; see docs/control.md)")

    def _refuse(self, topic: str, reason: str, node: str | None = None,
                name: str | None = None) -> None:
        """Publish a refusal that never reached the core (its result topic), log it once."""
        place = split_topic(topic, self.layout.base) or ("?", "?")
        device, control = node or place[0], name or place[1]
        result = ControlResult(device=device, control=control, result=REFUSED, reason=reason,
                               old=None, new=None, frame="", reply="", readback=None,
                               surface=SURFACE, caller=topic, time=self.wall())
        self._log_once(reason, f"output {self.output}: command on {topic!r} refused: {reason}")
        self.publish(topic.rsplit("/", 1)[0] + "/result", result_payload(result), False)

    # ------------------------------------------------------------------ results
    def on_result(self, result: ControlResult) -> None:
        """Publish a result of any surface, then the state read back (core's thread)."""
        if result.device not in self.nodes:
            return
        self.publish(self.layout.control(result.device, result.control, "result"),
                     result_payload(result), False)
        # The state topic follows the value the core read back: the watcher re-reads the
        # views now. Not from here: the core may call this holding its own lock, and
        # views() would ask for it again.
        self.wake()
