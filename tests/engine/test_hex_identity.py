"""Identity over HEX at connect, and the same-device check of a renumbered port (issue 22 point 4).

Through the simulator's ptys: the source asks ``:4``, 0x010A, 0x010B and 0x0102 at
each connection; the device registry (``device()``, which MQTT discovery's device
block is built from) gets the device's own model name, serial, PID and firmware.
When the port's path comes back carrying another device (a renumbered ttyUSB), one
line says so and none of its values reach rows.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from vemonitor_integrations.mqtt import discovery
from vemonitor_integrations.vedirect.schema import VedirectConnector
from vemonitor_integrations.vedirect.source import VedirectSource

from hw_sim import Simulator
from vemonitor.api import Context
from vemonitor.clock import SystemClock


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _source(link: Path, tmp_path: Path, hex_mode: str = "full") -> VedirectSource:
    context = Context(clock=SystemClock(), state_dir=str(tmp_path), stale_after=5.0)
    return VedirectSource("solar", VedirectConnector(serialPort=str(link), hex=hex_mode),
                          context)


def test_identity_at_connect_feeds_the_device_registry(tmp_path: Path) -> None:
    """Model name from 0x010B, serial from 0x010A, PID from :4; MQTT's device block uses them."""
    with Simulator(["bmv700"], tmp_path / "sim") as sim:
        source = _source(sim.path("bmv700"), tmp_path)
        source.start()
        try:
            assert _wait(lambda: source.hex.identity.get("model"), 30), source.hex.identity
            info = source.device()
        finally:
            source.close()
        serial = sim.devices["bmv700"].hex.serial
    assert info["product"] == "BMV-700"  # the device's own 0x010B
    assert info["serial"] == serial  # a BMV-700 sends no SER# in TEXT: 0x010A gives it
    assert source.hex.identity["pid"] == "0x0203"  # :4 -> 0x0203
    device = discovery.identify(info, None, "fallback", "name")
    assert device is not None
    assert device.serial == serial and device.key == discovery.slug(serial)
    assert device.model == "BMV-700"


def test_auto_mode_without_hex_columns_writes_nothing(tmp_path: Path) -> None:
    """hex: auto and no HEX column: the port stays receive-only, identity from TEXT alone."""
    with Simulator(["mppt"], tmp_path / "sim") as sim:
        source = _source(sim.path("mppt"), tmp_path, hex_mode="auto")
        source.start()
        try:
            assert _wait(lambda: source.latest() is not None, 30)
            time.sleep(2.5)
        finally:
            source.close()
        assert sim.devices["mppt"].port.bytes_received == 0
    assert not source.hex.identity


def test_a_renumbered_port_with_another_device_is_not_mixed_in(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """ttyUSB0 first is the MPPT; after an unplug it is a BMV: one line, no BMV values."""
    link = tmp_path / "ttyUSB0"
    with Simulator(["mppt", "bmv700"], tmp_path / "sim") as sim:
        os.symlink(os.path.realpath(sim.path("mppt")), link)
        source = _source(link, tmp_path)
        source.start()
        try:
            assert _wait(lambda: source.latest() is not None
                         and not source.hex.serial_pending, 30)
            values, _ = source.latest()  # type: ignore[misc]
            assert "PPV" in values  # the MPPT
            first = source.device()["serial"]
            with caplog.at_level(logging.WARNING):
                link.unlink()
                os.symlink(os.path.realpath(sim.path("bmv700")), link)
                sim.unplug("mppt", 60)
                # the reader reopens ttyUSB0, now the BMV, and asks its identity again
                assert _wait(lambda: source.reader is not None
                             and source.reader.latest is not None
                             and "SOC" in source.reader.latest.values
                             and source.hex.identity.get("serial"), 30)
                seen = [source.latest() for _ in range(20) if not time.sleep(0.1)]
            assert all(s is None for s in seen), "a BMV value was mixed into the MPPT's rows"
        finally:
            source.close()
    lines = [r.getMessage() for r in caplog.records if "not used" in r.getMessage()]
    assert len(lines) == 1, lines
    assert first in lines[0] and str(source.hex.identity["serial"]) in lines[0]
