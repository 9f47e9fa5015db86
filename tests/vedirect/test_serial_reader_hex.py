"""The serial reader's HEX session through the simulator's pty (issue 22).

A reader nobody asks for HEX writes nothing; asked, it gets the answer; and no TEXT
block is lost to HEX traffic, whether the device answers or ignores HEX.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from unittest import mock

import pytest

from hw_sim import FaultConfig, Simulator
from tests.shared import wait_until
from vemonitor import hex_session as hs
from vemonitor.serial_reader import SerialReader
from vemonitor.vedirect import hex as h


class Collector:
    """HEX outcomes and async readings a reader published, from its thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: list[hs.Outcome] = []
        self.asyncs: list[h.Reading] = []

    def __call__(self, name: str, item: hs.Outcome | h.Reading) -> None:
        with self.lock:
            (self.outcomes if isinstance(item, hs.Outcome) else self.asyncs).append(item)


def _started(sim: Simulator, collector: Collector, blocks: int = 1) -> SerialReader:
    """Start a reader on the simulated MPPT, its HEX told to ``collector``; wait for blocks."""
    reader = SerialReader("mppt", str(sim.path("mppt")))
    reader.subscribe_hex(collector)
    reader.start()
    assert wait_until(lambda: reader.stats.frames_ok >= blocks, 20)
    return reader


def test_a_reader_nobody_asks_writes_nothing(tmp_path: Path) -> None:
    """Without a request the port stays receive-only, exactly as before HEX existed."""
    with Simulator(["mppt"], tmp_path / "sim", speed=5) as sim:
        reader = SerialReader("mppt", str(sim.path("mppt")))
        reader.start()
        assert wait_until(lambda: reader.stats.frames_ok >= 5, 20)
        reader.close()
        assert sim.devices["mppt"].port.bytes_received == 0


def test_a_requested_get_is_answered(tmp_path: Path) -> None:
    """request_hex: the outcome reaches HEX subscribers; the value agrees with TEXT."""
    collector = Collector()
    with Simulator(["mppt"], tmp_path / "sim", speed=5) as sim:
        reader = _started(sim, collector)
        reader.request_hex(hs.get(0xEDDC))  # yield_user = H19
        reader.request_hex(hs.Request(h.PRODUCT_ID))
        assert wait_until(lambda: len(collector.outcomes) >= 2, 20)
        reader.close()
    get, pid = collector.outcomes
    assert get.status == "ok" and get.reading is not None and get.reading.name == "yield_user"
    assert reader.latest is not None
    assert get.reading.value == pytest.approx(int(reader.latest.raw["H19"]) / 100, abs=0.02)
    assert (pid.status, pid.word) == ("ok", 0xA053)
    assert collector.asyncs  # the burst the device pushes after HEX activity


@pytest.mark.parametrize("ignore_hex", [False, True])
def test_no_text_block_is_lost_to_hex_traffic(tmp_path: Path, ignore_hex: bool) -> None:
    """Gets back to back for 30 device s, HEX faults on: every clean block written is read."""
    collector = Collector()
    faults = FaultConfig(hex=0.3, hex_mid=0.2, split=0.2, seed=3)
    with Simulator(["mppt", "bmv700"], tmp_path / "sim", speed=10, faults=faults,
                   autostart=False) as sim:
        readers = {name: SerialReader(name, str(sim.path(name))) for name in sim.devices}
        for name, reader in readers.items():
            reader.subscribe_hex(collector)
            hexdev = sim.devices[name].hex
            assert hexdev is not None
            hexdev.ignore_hex = ignore_hex
            reader.start()
        time.sleep(0.5)
        sim.start()
        start = sim.clock.now()
        register = {"mppt": 0xEDD5, "bmv700": 0xED8D}
        # 30 device s, and (a machine loaded 18 deep gave only 6 answers in them) until
        # 20 Gets were settled, within a real minute
        deadline = time.monotonic() + 60
        while (sim.clock.now() - start < 30 or len(collector.outcomes) < 20) \
                and time.monotonic() < deadline:
            for name, reader in readers.items():
                if reader.hex is not None and not reader.hex.busy:
                    reader.request_hex(hs.get(register[name]))
            time.sleep(0.02)
        sim.halt()
        time.sleep(0.5)
        for reader in readers.values():
            reader.close()
        for name, reader in readers.items():
            device = sim.devices[name]
            clean = sum(block.clean for block in device.history)
            assert reader.stats.frames_ok == clean, name
            assert sum(reader.stats.rejected.values()) == device.counters.blocks_written - clean
    statuses = {o.status for o in collector.outcomes}
    if ignore_hex:  # after 3 timeouts in a row the session stops asking (unresponsive)
        assert "timeout" in statuses and statuses <= {"timeout", "skipped_unresponsive"}
    else:
        assert statuses == {"ok"} and len(collector.outcomes) >= 20


def test_requests_made_on_the_reader_thread_go_out_without_a_wake_up(tmp_path: Path) -> None:
    """A subscriber that asks for more from the reader thread (the history total asks
    for its days; a control reads back) needs no wake-up write: the reader takes the
    request in the same step and sends it in the gap its reply opened. So the reader
    never writes to its own wake pipe, and the follow-up is answered."""
    collector = Collector()
    with Simulator(["mppt"], tmp_path / "sim", speed=5) as sim:
        reader = SerialReader("mppt", str(sim.path("mppt")))
        wake_writes: list[bytes] = []
        real_write = os.write

        def counting_write(fd: int, data: bytes) -> int:
            if fd == reader._wake_w:
                wake_writes.append(bytes(data))
            return real_write(fd, data)

        def follow_up(name: str, item: hs.Outcome | h.Reading) -> None:
            if isinstance(item, hs.Outcome) and item.request == hs.get(0xEDDC):
                reader.request_hex(hs.Request(h.PRODUCT_ID))  # on the reader thread

        reader.subscribe_hex(collector)
        reader.subscribe_hex(follow_up)
        reader.start()
        assert wait_until(lambda: reader.stats.frames_ok >= 1, 20)
        with mock.patch("vemonitor.serial_reader.os.write", counting_write):
            reader.request_hex(hs.get(0xEDDC))  # from this (test) thread: one wake-up
            assert wait_until(lambda: len(collector.outcomes) >= 2, 20)
        reader.close()
    assert [o.status for o in collector.outcomes] == ["ok", "ok"]
    assert collector.outcomes[1].word == 0xA053
    assert wake_writes == [b"r"]  # the test thread's request only


def test_a_system_without_epoll_reads_with_poll(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """epoll is Linux's (the Pi, Home Assistant OS); elsewhere the reader waits in poll(),
    whose timeout is in milliseconds: blocks and a HEX reply still arrive."""
    import select

    monkeypatch.delattr(select, "epoll")
    collector = Collector()
    with Simulator(["mppt"], tmp_path / "sim", speed=5) as sim:
        reader = _started(sim, collector, blocks=3)
        reader.request_hex(hs.Request(h.PRODUCT_ID))
        assert wait_until(lambda: len(collector.outcomes) >= 1, 20)
        reader.close()
    assert (collector.outcomes[0].status, collector.outcomes[0].word) == ("ok", 0xA053)
