"""Values as vemonitor_m8 wrote them, for the consumers of a legacy configuration.

The seed typed every VE.Direct value with its data table
(``vemonitor_m8/conf_manager/confFiles/victronDeviceData.yaml``, ``points``: an
``output_type`` and an optional ``floatpoint``) and ve_utils'
``UType.format_by_type``, applied to the wire text (``DataChecker.format_item``):

* ``float``: ``round(float(wire), 3)``, then ``round(x * floatpoint, 3)`` when a
  floatpoint is set. So ``P`` (no floatpoint) is ``-12.0``, not ``-12``.
* ``int``: ``int(wire)``.
* ``intBool``: 1 for ``ON``/``1``/``true``, else 0 (``Alarm``, ``Relay``, ``LOAD``).
* ``str``: the wire text (``PID`` is ``"0x203"``).

The table below copies those rules for the labels both tables know. The seed's
scale factors are copied too where they differ from the protocol's (``DM`` at
0.001 instead of 0.1; ``ERR``, ``CS`` and ``HSDS`` multiplied by 0.001): a
consumer built on the seed reads those numbers. vemonitor's own typed values
(``value_format: vemonitor``) are the correct ones; docs/migrating-from-vemonitor_m8.md
says how to switch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vemonitor.vedirect.fields import FIELD_BY_LABEL, Flags, jsonable

# label -> (output_type, floatpoint): the seed's victronDeviceData.yaml ``points``.
SEED_POINTS: dict[str, tuple[str, float | None]] = {
    "V": ("float", 0.001), "VS": ("float", 0.001), "VM": ("float", 0.001),
    "DM": ("float", 0.001), "VPV": ("float", 0.001), "PPV": ("int", None),
    "I": ("float", 0.001), "IL": ("float", 0.001), "LOAD": ("intBool", None),
    "T": ("int", None), "P": ("float", None), "CE": ("float", 0.001),
    "SOC": ("float", 0.1), "TTG": ("int", None), "Alarm": ("intBool", None),
    "Relay": ("intBool", None), "AR": ("int", None),
    "H1": ("float", 0.001), "H2": ("float", 0.001), "H3": ("float", 0.001),
    "H4": ("int", None), "H5": ("int", None), "H6": ("float", 0.001),
    "H7": ("float", 0.001), "H8": ("float", 0.001), "H9": ("int", None),
    "H10": ("int", None), "H11": ("int", None), "H12": ("int", None),
    "H13": ("int", None), "H14": ("int", None), "H15": ("float", 0.001),
    "H16": ("float", 0.001), "H17": ("float", 0.01), "H18": ("float", 0.01),
    "H19": ("float", 0.01), "H20": ("float", 0.01), "H21": ("int", None),
    "H22": ("float", 0.01), "H23": ("int", None),
    "ERR": ("float", 0.001), "CS": ("float", 0.001), "HSDS": ("float", 0.001),
    "FW": ("str", None), "PID": ("str", None), "SER#": ("str", None),
    "MODE": ("str", None), "AC_OUT_V": ("float", 0.01), "AC_OUT_I": ("float", 0.1),
    "WARN": ("int", None),
}


def wire_number(label: str, value: float) -> int:
    """Return the wire integer a decoded number came from (undoing vemonitor's scale)."""
    spec = FIELD_BY_LABEL.get(label)
    if spec is not None and spec.kind == "scaled":
        return round(value / spec.scale)
    return int(value)


def _wire_text(label: str, value: Any) -> str:
    """Return the wire text of a text-typed field (PID as the device writes it)."""
    if label == "PID" and isinstance(value, int):
        return f"0x{int(value):X}"
    if label == "FW" and isinstance(value, str) and "." in value:
        major, minor = value.split(".", 1)
        return f"{int(major) * 100 + int(minor[:2] or 0)}" if major.isdigit() and \
            minor[:2].isdigit() else value
    return str(jsonable(value))


def _as_float(label: str, value: Any, floatpoint: float | None) -> Any:
    number = round(float(wire_number(label, value)), 3)
    return round(number * floatpoint, 3) if floatpoint else number


def _as_int(label: str, value: Any, _floatpoint: float | None) -> int:
    return wire_number(label, value)


def _as_int_bool(_label: str, value: Any, _floatpoint: float | None) -> int:
    return 1 if value is True or value == 1 else 0


def _as_str(label: str, value: Any, _floatpoint: float | None) -> str:
    return _wire_text(label, value)


# The seed's output_type -> how a decoded value becomes what it wrote.
CONVERTERS: dict[str, Callable[[str, Any, float | None], Any]] = {
    "float": _as_float, "int": _as_int, "intBool": _as_int_bool, "str": _as_str,
}


def seed_value(label: str, value: Any) -> Any:
    """Return ``value`` typed as vemonitor_m8 wrote it (labels it did not know: unchanged)."""
    point = SEED_POINTS.get(label)
    if point is None or value is None:
        return jsonable(value)
    kind, floatpoint = point
    if kind != "str" and (isinstance(value, str) or (
            isinstance(value, bool) and kind != "intBool")):
        return jsonable(value)  # undecodable wire text: kept as it came, never guessed
    number = int(value) if isinstance(value, Flags) else value
    return CONVERTERS[kind](label, number, floatpoint)


def seed_values(values: dict[str, Any]) -> dict[str, Any]:
    """Return a row's values typed as vemonitor_m8 wrote them."""
    return {label: seed_value(label, value) for label, value in values.items()}
