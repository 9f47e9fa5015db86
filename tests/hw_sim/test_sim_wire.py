"""The simulator at the wire's pace (``wire="usb"``): 19200 baud 8N1 through an FTDI cable.

hw_sim/wire.py holds the facts and their sources. These tests read a real pty and make
no timed assertion a loaded machine can break: a loaded host only delays the reader
(reads merge, spans grow) or the writer (chunks further apart), so every bound below
is one that delays cannot violate, and the "several reads" check needs only one block
of many to be read on time.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hw_sim.cli import main as sim_main
from hw_sim.service import SimulatorConfig, run_simulator
from hw_sim.simulator import Simulator
from hw_sim.wire import WIRES, Wire, check_speed, chunks
from vemonitor import hex_session as hs
from vemonitor.api import ConfigError, ServiceContext
from vemonitor.clock import ScaledClock
from vemonitor.serial_reader import SerialReader
from vemonitor.vedirect import hex as h
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.events import Block, HexMessage

USB = WIRES["usb"]
RATE = USB.bytes_per_s  # 1920 B/s
BLOCKS = 6  # blocks read per run (one a second from the MPPT)
WAIT_S = 60.0  # real seconds at most (a loaded 2-core machine)


# -- the wire table ------------------------------------------------------------

def test_usb_wire_is_19200_8n1_in_ftdi_chunks() -> None:
    """1920 B/s; 16 ms of line carry 30 B, less than a 62 B packet: chunks of 30 B."""
    assert RATE == 1920
    assert USB.chunk_bytes == 30
    data = bytes(range(200))
    pieces = chunks(data, USB)
    assert b"".join(pieces) == data
    assert [len(p) for p in pieces] == [30] * 6 + [20]
    assert chunks(data, WIRES["instant"]) == [data]


def test_a_slow_timer_makes_the_packet_the_limit() -> None:
    """With a 100 ms timer (192 B of line) the 62-byte packet fills first (AN232B-04)."""
    slow = Wire("slow-timer", baud=19200, packet_bytes=62, latency_ms=100.0)
    assert slow.chunk_bytes == 62
    assert [len(p) for p in chunks(bytes(130), slow)] == [62, 62, 6]


# -- refusals: one line, no traceback -------------------------------------------

def test_a_paced_wire_needs_speed_1(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs speed 1"):
        Simulator(["mppt"], tmp_path / "sim", speed=5.0, wire="usb")
    with pytest.raises(ValueError, match="unknown wire 'rs232'"):
        Simulator(["mppt"], tmp_path / "sim", wire="rs232")
    check_speed(WIRES["instant"], 100.0)  # the bare pty keeps any speed


def test_cli_refuses_usb_at_speed_5_in_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    status = sim_main(["mppt", "--dir", str(tmp_path / "sim"), "--speed", "5", "--wire", "usb"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "needs speed 1" in err and "Traceback" not in err


def test_service_config_names_the_key_of_an_unknown_wire() -> None:
    with pytest.raises(ConfigError) as caught:
        SimulatorConfig(devices=["mppt"], wire="serial").validate()
    assert caught.value.key == "simulator.wire"
    SimulatorConfig(devices=["mppt"], wire="usb").validate()


def test_a_run_at_speed_60_refuses_the_usb_wire_before_any_pty(tmp_path: Path) -> None:
    """vemonitor ... simulator.wire=usb speed=60: a ConfigError on simulator.wire."""
    config = SimulatorConfig(devices=["mppt"], wire="usb", dir=str(tmp_path / "sim"))
    context = ServiceContext(clock=ScaledClock(speed=60.0), state_dir=str(tmp_path))
    with pytest.raises(ConfigError) as caught, run_simulator(config, context):
        pass
    assert caught.value.key == "simulator.wire" and "needs speed 1" in str(caught.value)
    assert not (tmp_path / "sim").exists()


# -- a raw reader on the paced pty ----------------------------------------------

@dataclass(frozen=True)
class Read:
    """One read(): when it was called, when it returned, and where its bytes sit."""

    called: float
    returned: float
    start: int  # offset of its first byte in the stream
    data: bytes

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class RawClient:
    """Reads every byte as it comes (one read per wake-up), decodes, asks HEX in gaps."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.decoder = Decoder()
        self.session = hs.HexSession(timeout=5.0)
        self.reads: list[Read] = []
        self.events: list[object] = []
        self.outcomes: list[hs.Outcome] = []
        self.offset = 0

    def pump(self) -> None:
        called = time.monotonic()
        if select.select([self.fd], [], [], 0.05)[0]:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                data = b""
            if data:
                self.reads.append(Read(called, time.monotonic(), self.offset, data))
                self.offset += len(data)
                events = self.decoder.feed(data, time.monotonic())
                self.events += events
                self.session.on_events(events, time.monotonic(),
                                       idle=self.decoder.pending == 0)
        self.outcomes += self.session.take_outcomes()
        line = self.session.outgoing(time.monotonic())
        if line is not None:
            os.write(self.fd, line)

    def blocks(self) -> list[Block]:
        return [e for e in self.events if isinstance(e, Block)]

    def reads_of(self, block: Block) -> list[Read]:
        return [r for r in self.reads if r.start < block.end and r.end > block.start]


@pytest.fixture(scope="module")
def paced_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RawClient, list[dict[str, str]]]:
    """An MPPT on the usb wire, read from its first byte for BLOCKS blocks, 3 HEX Gets."""
    sim_dir = tmp_path_factory.mktemp("wire") / "sim"
    with Simulator(["mppt"], sim_dir, wire="usb", autostart=False) as sim:
        client = RawClient(sim.path("mppt"))
        try:
            sim.start()
            deadline = time.monotonic() + WAIT_S
            asked = False
            while len(client.blocks()) < BLOCKS and time.monotonic() < deadline:
                client.pump()
                if not asked and client.blocks():
                    for register in (0xEDD5, 0xEDD7, 0xEDBB):  # V, I, panel V
                        client.session.submit(hs.get(register))
                    asked = True
            while len(client.outcomes) < 3 and time.monotonic() < deadline:
                client.pump()
            sim.halt()
            end = time.monotonic() + 1.0
            while time.monotonic() < end:  # drain what the halted device had sent
                client.pump()
            written = [dict(b.records) for b in sim.devices["mppt"].history]
        finally:
            os.close(client.fd)
    return client, written


def test_a_block_arrives_in_chunks_at_the_line_rate(
        paced_run: tuple[RawClient, list[dict[str, str]]]) -> None:
    """A block reaches the reader in several reads of at most a packet (62 B).

    The device writes a chunk of <= 30 bytes, each its own line time after the last;
    a reader on time gets one chunk a read. A late reader, or the pty's flush worker
    running late (it moves written bytes to the reader's side: the kernel's tty flip
    buffer work), merges chunks into one read, so the claims are made on the run:
    the median read is one packet at most, and some block came in >= 3 reads. The
    bare pty gives each whole block (~180 B) in one read and fails both.
    """
    client, _ = paced_run
    blocks = client.blocks()
    assert len(blocks) >= BLOCKS
    per_block = [len(client.reads_of(b)) for b in blocks]
    assert max(per_block) >= 3, per_block  # a block (~180 B) is ~6 chunks
    sizes = sorted(len(r.data) for r in client.reads)
    assert sizes[len(sizes) // 2] <= USB.packet_bytes, sizes


def test_a_block_spans_at_least_its_line_time(
        paced_run: tuple[RawClient, list[dict[str, str]]]) -> None:
    """First to last read of a block >= its bytes after the first read and one chunk / 1920.

    A lower bound: the writer never catches up (each chunk waits its own line time after
    the previous one), and a late reader only stretches the span. It leaves out the
    first read's bytes and one chunk: those crossed the line before the reader could see
    anything of the block, or sat unread while the first read was made. A flush worker
    running late can still hand several chunks on at once, so the bound must hold for
    most blocks, not each; the bare pty (one read a block) meets it for none.
    """
    client, _ = paced_run
    blocks = client.blocks()
    spans_ok = []
    for block in blocks:
        reads = client.reads_of(block)
        first_bytes = min(reads[0].end, block.end) - block.start
        rest = (block.end - block.start) - first_bytes - USB.chunk_bytes
        spans_ok.append(len(reads) >= 2 and reads[-1].returned - reads[0].called >= rest / RATE)
    assert sum(spans_ok) > len(blocks) // 2, spans_ok


def test_hex_replies_come_after_the_block_and_every_block_decodes(
        paced_run: tuple[RawClient, list[dict[str, str]]]) -> None:
    """Each reply line lies between blocks; every written block was read, checksum valid."""
    client, written = paced_run
    assert [o.status for o in client.outcomes] == ["ok"] * 3
    lines = [e for e in client.events if isinstance(e, HexMessage)]
    assert lines and all(line.valid for line in lines)
    for line in lines:
        assert not any(b.start < line.start < b.end for b in client.blocks())
    assert not [e for e in client.events if not isinstance(e, (Block, HexMessage))]
    assert [b.fields for b in client.blocks()] == written
    responses = [h.parse_response(line.raw) for line in lines]
    assert {m.register for m in responses if isinstance(m, h.RegisterMessage)} >= {
        0xEDD5, 0xEDD7, 0xEDBB}


def _wait_opened(slave: str) -> bool:
    """Wait until this process holds ``slave`` twice: the simulator's fd and the reader's."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        held = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                held += os.readlink(f"/proc/self/fd/{fd}") == slave
            except OSError:
                continue
        if held >= 2:
            return True
        time.sleep(0.02)
    return False


def _read_until(sim: Simulator, reader: SerialReader, blocks: int,
                during: Callable[[], None] | None = None) -> int:
    """Start ``reader`` on the simulated BMV, then the device; after ``blocks`` blocks stop
    the device, wait until the reader read every clean block written, close the reader.

    ``during`` runs once the first two blocks are written. Return the clean blocks written.
    """
    device = sim.devices["bmv700"]
    reader.start()
    try:
        assert _wait_opened(device.port.slave_name), "the reader did not open the pty"
        sim.start()  # after the reader opened it: no block is missed
        assert device.wait_blocks(2, WAIT_S)
        if during is not None:
            during()
        assert device.wait_blocks(blocks, WAIT_S)
        sim.halt()
        written = sum(b.clean for b in device.history)
        end = time.monotonic() + WAIT_S
        while reader.stats.frames_ok < written and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        reader.close()
    return written


def test_the_daemons_reader_loses_nothing_on_the_usb_wire(tmp_path: Path) -> None:
    """SerialReader (the daemon's reader) on a paced BMV-700: every block, 4 HEX values."""
    with Simulator(["bmv700"], tmp_path / "sim", wire="usb", autostart=False) as sim:
        reader = SerialReader("bmv700", str(sim.path("bmv700")))
        outcomes: list[hs.Outcome] = []
        got = threading.Event()

        def collect(name: str, item: object) -> None:
            if isinstance(item, hs.Outcome):
                outcomes.append(item)
                if len(outcomes) >= 4:
                    got.set()

        def ask() -> None:
            for register in (0xED8C, 0xEEFF, 0x0FFF, 0xEEB6):  # bench_hex_daemon's 4
                reader.request_hex(hs.get(register))
            assert got.wait(WAIT_S), outcomes

        reader.subscribe_hex(collect)
        written = _read_until(sim, reader, BLOCKS, during=ask)
    assert reader.stats.frames_ok == written
    assert not reader.stats.rejected
    assert [o.status for o in outcomes] == ["ok"] * 4
    assert all(o.reading is not None and o.reading.value is not None for o in outcomes)


def test_the_daemons_reader_takes_a_block_in_few_reads_on_the_usb_wire(tmp_path: Path) -> None:
    """A BMV-700 on the usb wire: ~5 chunks a block, but the reader wakes ~twice a block.

    serial_reader.settle_time: a read that ends inside a block waits for the block's
    rest. Without it every chunk is a read (5 to 7 a block). A loaded host only merges
    reads (fewer), so the bound cannot fail under load; nothing is lost either way.
    """
    with Simulator(["bmv700"], tmp_path / "sim", wire="usb", autostart=False) as sim:
        reader = SerialReader("bmv700", str(sim.path("bmv700")))
        written = _read_until(sim, reader, 12)  # 6 s of a BMV (two blocks a second)
    history = sim.devices["bmv700"].history
    chunks_written = sum(len(chunks(b.data, USB)) for b in history)
    assert reader.stats.frames_ok == written and not reader.stats.rejected
    assert chunks_written >= 4 * written, [len(b.data) for b in history]  # cut up by the wire
    assert reader.stats.settles > 0
    assert reader.stats.reads <= 3 * written, (reader.stats.reads, written)
