"""Constants and pure helpers of the vemonitor integration (no Home Assistant imports)."""

from __future__ import annotations

import os
import re

from vemonitor.vedirect.fields import FIELD_BY_LABEL, IDENTITY_LABELS, FieldSpec
from vemonitor.vedirect.snapshot import Snapshot

DOMAIN = "vemonitor"
MANUFACTURER = "Victron Energy"

CONF_PORT = "port"
CONF_PID = "pid"
CONF_PRODUCT = "product"
CONF_SERIAL = "serial"
CONF_FIRMWARE = "firmware"
CONF_LABELS = "labels"  # labels the device sent when it was configured
CONF_STALE_AFTER = "stale_after"
CONF_FIELDS = "fields"  # labels exposed as entities (options)
CONF_CONTROLS = "controls"  # options: control name -> disabled | dry_run | enabled
CONF_MODEL = "model"  # the device's own model name (HEX 0x010B), once it answered
CONF_HEX_SERIAL = "hex_serial"  # HEX 0x010A of a device without SER# in TEXT (BMV-700)

DEFAULT_STALE_AFTER = 3.0
AVAILABILITY_POLL_SECONDS = 1.0


# Entity presentation (quality scale: entity-category, entity-disabled-by-default).
# Diagnostic: what explains the device's state rather than being it.
DIAGNOSTIC_LABELS = frozenset({"AR", "WARN", "OR", "ERR", "MON", "MPPT", "HSDS", "H10"})
# The BMV's history counters: rarely watched; the user enables the ones wanted. H9 (time
# since full charge) and H17/H18 (energy, for the Energy dashboard) stay enabled.
DISABLED_BY_DEFAULT_LABELS = frozenset({
    "H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "H10", "H11", "H12", "H13", "H14",
    "H15", "H16", "HSDS"})

BY_ID_DIR = "/dev/serial/by-id"
_CABLE_SERIAL = re.compile(r"VE_Direct_cable_([A-Za-z0-9]+)-if", re.IGNORECASE)


def translation_key(label: str) -> str:
    """Return the entity translation key of a label (``AC_OUT_V`` -> ``ac_out_v``)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def exposable_labels(labels: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """Return the labels that become entities, in field-table order."""
    return [spec.label for spec in exposable_specs(labels)]


def exposable_specs(labels: list[str] | tuple[str, ...] | set[str]) -> list[FieldSpec]:
    """Return the field specs of ``labels`` that become entities (known, non-identity)."""
    wanted = set(labels)
    return [spec for label, spec in FIELD_BY_LABEL.items()
            if label in wanted and label not in IDENTITY_LABELS]


def cable_serial(path: str, hint: str | None = None) -> str | None:
    """Return the USB serial of the VE.Direct cable behind ``path``, when it can be known.

    From a ``/dev/serial/by-id/usb-VictronEnergy_BV_VE_Direct_cable_<serial>-if00-port0``
    name, from the by-id link that points at the same node, else ``hint`` (USB discovery).
    """
    match = _CABLE_SERIAL.search(path)
    if match:
        return match.group(1)
    real = os.path.realpath(path)
    try:
        names = sorted(os.listdir(BY_ID_DIR))
    except OSError:
        names = []
    for name in names:
        if os.path.realpath(os.path.join(BY_ID_DIR, name)) == real:
            match = _CABLE_SERIAL.search(name)
            if match:
                return match.group(1)
    return hint or None


def by_id_path(path: str) -> str:
    """Return the stable /dev/serial/by-id link for ``path`` when one exists, else ``path``."""
    real = os.path.realpath(path)
    try:
        names = sorted(os.listdir(BY_ID_DIR))
    except OSError:
        return path
    for name in names:
        link = os.path.join(BY_ID_DIR, name)
        if os.path.realpath(link) == real:
            return link
    return path


def normalized_pid(snapshot: Snapshot) -> str:
    """Return the PID as ``0xA053`` / ``0x0203`` (unknown when absent)."""
    pid = snapshot.pid
    if not pid:
        return "unknown"
    try:
        return f"0x{int(pid, 16):04X}"
    except ValueError:
        return pid


def device_unique_id(snapshot: Snapshot, path: str, cable_hint: str | None = None) -> str:
    """Return the config entry unique_id of the device in ``snapshot``.

    * SER# when the device sends one (MPPTs, inverters, chargers, BMV-712/SmartShunt).
    * Else (BMV-700/702 send no SER#): ``PID-<pid>-cable-<usb serial>`` when the cable's
      USB serial is known (by-id name or USB discovery): stable across ttyUSB renumbering
      as long as the BMV stays on its cable.
    * Else ``PID-<pid>``: only one such device per PID can be configured.
    """
    serial = (snapshot.serial or "").strip()
    if serial:
        return serial
    pid = normalized_pid(snapshot)
    cable = cable_serial(path, cable_hint)
    return f"PID-{pid}-cable-{cable}" if cable else f"PID-{pid}"


def same_port(a: str, b: str) -> bool:
    """Return True when two paths name the same device node."""
    return os.path.realpath(a) == os.path.realpath(b)
