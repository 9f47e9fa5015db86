"""What an MQTT output has announced to Home Assistant, and its state file.

The discovery bookkeeping of one output: the devices behind its inputs (live, or
remembered from the last run), the columns rows brought, the discovery topics
published last run (so entities no longer configured are removed), all kept in
``<state_dir>/mqtt-<output>.json``, written only when its content changes. The
payloads themselves are built by :mod:`vemonitor_integrations.mqtt.discovery`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vemonitor_integrations.mqtt import discovery as ha
from vemonitor_integrations.mqtt.connection import StateLog
from vemonitor_integrations.mqtt.schema import MqttOutput

from vemonitor.api import InputInfo, Row

STATE_FILE_VERSION = 1


@dataclass(frozen=True)
class DeviceGroup:
    """The inputs reading one device: those of one connector share one HA device."""

    key: str  # "<domain>:<connector>"
    connector: str
    nodes: tuple[str, ...]


class DiscoveryState:
    """The discovery an output should have published, and what it remembers between runs."""

    def __init__(self, item: MqttOutput, inputs: Mapping[str, InputInfo], nodes: list[str],
                 layout: ha.Layout, state_path: Path, name: str, log_once: StateLog,
                 controls: Callable[[], Sequence[ha.ControlShape]] = list) -> None:
        self.item = item
        self.inputs = inputs
        self.nodes = nodes
        self.layout = layout
        self.state_path = state_path
        self.name = name
        self.log_once = log_once
        self.controls = controls  # the controls with command topics (allow_commands), issue 23
        self.groups = _groups({n: inputs[n] for n in nodes})
        state = _load_state(state_path)
        self.known: set[str] = set(state.get("topics", []))  # discovery topics of the last run
        self.devices: dict[str, ha.DeviceInfo] = _devices_from(state.get("devices", {}))
        # device config topic -> {component id: platform} last published (this or last run):
        # a component that disappears is sent once as {"p": platform} (HA removes it).
        self.components: dict[str, dict[str, str]] = {
            str(t): {str(k): str(v) for k, v in c.items()}
            for t, c in (state.get("components") or {}).items() if isinstance(c, dict)}
        self.seen = self._restore_seen(state.get("columns", {}))
        self._saved = ""

    def desired(self) -> dict[str, dict[str, Any]]:
        """Return every device discovery topic -> payload this output should have published."""
        if not self.item.discovery:
            return {}
        topic, payload = ha.bridge_config(self.layout)
        desired = {topic: payload}
        for group in self.groups:
            device = self.identity(group)
            if device is None:
                continue
            components: dict[str, dict[str, Any]] = {}
            for node in group.nodes:
                names = self.names(node)
                for column in self.row_columns(node):
                    label = ha.label_of(column, names)
                    if ha.is_entity(label):
                        key, config = ha.component_config(node, column, label, device,
                                                          self.layout)
                        components.setdefault(key, config)
            for view in self.controls():
                if view.device in group.nodes:
                    control = ha.control_config(view, device, self.layout)
                    if control is not None:
                        components[control[0]] = control[1]
            topic, payload = ha.device_config(device, components, self.layout)
            if topic in desired:  # two groups named as one device: one config
                payload["cmps"] = {**payload["cmps"], **desired[topic]["cmps"]}
            desired[topic] = payload
        return desired

    def legacy_topics(self) -> set[str]:
        """Return the per-entity discovery topics an older version published (to migrate)."""
        return {t for t in self.known if ha.legacy_topic(t, self.layout)}

    def encode(self, topic: str, payload: Mapping[str, Any]) -> str:
        """Return a device config as sent: components gone since last time are listed once
        as ``{"p": platform}`` (Home Assistant removes them); remember what it holds."""
        gone = ha.removed_components(self.components.get(topic, {}), payload)
        self.components[topic] = {k: str(c["p"]) for k, c in payload["cmps"].items()}
        return ha.encode({**payload, "cmps": {**payload["cmps"], **gone}})

    def stale(self, desired: Mapping[str, Any], sent: Iterable[str]) -> list[str]:
        """Return the topics to clear (published before, no longer desired) and forget them.

        While a device is not identified yet its old entities are kept until it is.
        """
        if not all(self.identity(g) is not None for g in self.groups):
            self.known |= set(desired)
            return []
        gone = sorted((self.known | set(sent)) - set(desired))
        for topic in gone:
            self.components.pop(topic, None)
        self.known = set(desired)
        return gone

    def identity(self, group: DeviceGroup) -> ha.DeviceInfo | None:
        """Return the group's device: live, else the one remembered from the last run."""
        override = next((self.item.device_ids[n] for n in (*group.nodes, group.connector)
                         if n in self.item.device_ids), None)
        info = self.inputs[group.nodes[0]].device()
        live = ha.identify(info, override, f"{self.layout.block}_{group.connector}",
                           group.connector)
        if live is not None:
            self.devices[group.key] = live
        return self.devices.get(group.key)

    def names(self, node: str) -> dict[str, str]:
        """Return device column -> row column: the output's ref_cols, else the input's."""
        own = {col: std for std, col in self.item.ref_cols}
        return own or dict(self.inputs[node].standard_names)

    def configured(self, node: str) -> list[str]:
        """Return the row columns the configuration names for ``node`` (may be empty: all)."""
        names = self.names(node)
        devices = {std: col for col, std in names.items()}
        wanted = self.item.columns.get(node) or self.inputs[node].columns
        columns = (devices.get(c, c) for c in wanted if c != "time_ref")
        return [names.get(c, c) for c in columns]

    def row_columns(self, node: str) -> list[str]:
        """Return the configured columns, then those rows brought (all columns, derived values)."""
        configured = self.configured(node)
        return configured + sorted(set(self.seen.get(node, ())) - set(configured))

    def note_columns(self, rows: Iterable[Row]) -> None:
        """Remember the columns rows carry, so each gets its entity."""
        for row in rows:
            if row.input in self.inputs:
                self.seen.setdefault(row.input, set()).update(row.values)

    # ------------------------------------------------------------------ state file
    def _restore_seen(self, saved: Mapping[str, Any]) -> dict[str, set[str]]:
        """Return the columns rows brought last run, for inputs whose configuration is unchanged."""
        seen: dict[str, set[str]] = {}
        for node in self.nodes:
            entry = saved.get(node) or {}
            if entry.get("configured") == self.configured(node):
                seen[node] = set(entry.get("seen", []))
        return seen

    def save(self) -> None:
        """Write the state file when its content changed (no SD-card writes otherwise)."""
        state = {"version": STATE_FILE_VERSION, "topics": sorted(self.known),
                 "components": {t: dict(sorted(c.items()))
                                for t, c in sorted(self.components.items())},
                 "devices": {k: d.as_dict() for k, d in sorted(self.devices.items())},
                 "columns": {n: {"configured": self.configured(n),
                                 "seen": sorted(self.seen.get(n, ()))} for n in self.nodes}}
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
            self.log_once(f"state {err}", logging.WARNING,
                          f"output {self.name}: cannot write {self.state_path}: {err}")


def _groups(inputs: Mapping[str, InputInfo]) -> list[DeviceGroup]:
    """Return the inputs grouped by connector (one device each), in a stable order."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for name, info in sorted(inputs.items()):
        grouped.setdefault((info.domain, info.connector), []).append(name)
    return [DeviceGroup(f"{domain}:{connector}", connector, tuple(nodes))
            for (domain, connector), nodes in grouped.items()]


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
