"""The simulator answers HEX through a real pty, as the real devices do (issue 22).

A client opens the simulator's link like a serial port, writes HEX lines in the gap
after a TEXT block (through :class:`vemonitor.hex_session.HexSession`, the real
matching logic) or raw, and reads the replies with the TEXT decoder and HEX codec.
The expected device behaviour is HEX.md's (sources named in hw_sim/hex_device.py).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_sim.hex_device import HexDevice
from hw_sim.simulator import Simulator
from vemonitor import hex_session as hs
from vemonitor.vedirect import hex as h
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.events import Block, Event, HexMessage
from vemonitor.vedirect.hex_registers import REGISTER_BY_NAME

WAIT_S = 30.0  # real seconds a client waits at most (a loaded 2-core machine)


class Client:
    """A host on the simulator's pty: raw bytes in, decoder events and a HEX session."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.decoder = Decoder()
        self.session = hs.HexSession(timeout=5.0)
        self.events: list[Event] = []
        self.stream = bytearray()

    def close(self) -> None:
        os.close(self.fd)

    def pump(self, seconds: float = 0.05) -> None:
        """Read what arrived within ``seconds``; let the session write in a gap."""
        if select.select([self.fd], [], [], seconds)[0]:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                data = b""
            self.stream += data
            events = self.decoder.feed(data, time.monotonic())
            self.events += events
            self.session.on_events(events, time.monotonic(), idle=self.decoder.pending == 0)
        line = self.session.outgoing(time.monotonic())
        if line is not None:
            os.write(self.fd, line)

    def ask(self, *requests: hs.Request) -> list[hs.Outcome]:
        """Send requests one at a time in block gaps; return their outcomes in order."""
        for request in requests:
            self.session.submit(request)
        outcomes: list[hs.Outcome] = []
        deadline = time.monotonic() + WAIT_S
        while len(outcomes) < len(requests) and time.monotonic() < deadline:
            self.pump()
            outcomes += self.session.take_outcomes()
        assert len(outcomes) == len(requests), outcomes
        return outcomes

    def get(self, name: str) -> hs.Outcome:
        return self.ask(hs.get(REGISTER_BY_NAME[name].id))[0]

    def blocks(self) -> list[dict[str, str]]:
        return [e.fields for e in self.events if isinstance(e, Block)]

    def fields_before(self, outcome: hs.Outcome, label: str) -> str:
        """Return ``label`` of the last block written before ``outcome``'s reply line."""
        reply = [e for e in self.events if isinstance(e, HexMessage) and e.raw == outcome.raw][-1]
        before = [e for e in self.events if isinstance(e, Block) and e.end <= reply.start
                  and label in e.fields]
        return before[-1].fields[label]

    def until(self, condition: object, seconds: float = WAIT_S) -> None:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
            self.pump()
        assert condition(), "condition not met in time"  # type: ignore[operator]


@pytest.fixture
def sim_dir(tmp_path: Path) -> Path:
    return tmp_path / "sim"


@contextlib.contextmanager
def connect(sim: Simulator, name: str) -> Iterator[Client]:
    """Open the device's link as a client and wait for its first block."""
    client = Client(sim.path(name))
    try:
        client.until(lambda: len(client.blocks()) >= 1)
        yield client
    finally:
        client.close()


@pytest.fixture
def mppt(sim_dir: Path) -> Iterator[tuple[Simulator, Client]]:
    with Simulator(["mppt"], sim_dir, speed=5.0, autostart=False) as sim:
        hexdev = sim.devices["mppt"].hex
        assert hexdev is not None
        hexdev.seed_history(30, seed=7)
        sim.start()
        with connect(sim, "mppt") as client:
            yield sim, client


def test_identity_commands_answered(mppt: tuple[Simulator, Client]) -> None:
    """Ping -> 0x4159 (FW 159), app version -> Done 0x4159, product id -> Done 0xA053."""
    _, client = mppt
    ping, version, pid = client.ask(hs.Request(h.PING), hs.Request(h.APP_VERSION),
                                    hs.Request(h.PRODUCT_ID))
    assert (ping.status, ping.word) == ("ok", 0x4159)
    assert (version.status, version.word) == ("ok", 0x4159)
    assert (pid.status, pid.word) == ("ok", 0xA053)
    serial = client.get("serial_number")
    assert serial.reading is not None and serial.reading.value == client.blocks()[-1]["SER#"]
    model = client.get("model_name")
    assert model.reading is not None and model.reading.value == "SmartSolar Charger MPPT 75/15"


def test_get_values_agree_with_text_and_unknown_registers_are_refused(
        mppt: tuple[Simulator, Client]) -> None:
    """Live registers equal the TEXT block before the reply; 0x7777 and 0xEDBD: flags 01."""
    _, client = mppt
    for name, label, scale in (("yield_total_user", "H19", 0.01), ("charger_voltage", "V", 0.001),
                               ("device_state", "CS", 1)):
        name = {"yield_total_user": "yield_user"}.get(name, name)
        outcome = client.get(name)
        assert outcome.status == "ok" and outcome.reading is not None
        text = int(client.fields_before(outcome, label)) * scale
        # The value comes from the last block written before the reply (10 mV resolution).
        assert outcome.reading.value == pytest.approx(text, abs=0.011)
    unknown, panel_current = client.ask(hs.get(0x7777), hs.get(0xEDBD))
    assert (unknown.status, panel_current.status) == ("refused", "refused")  # 75/15: GV
    temperature = client.get("battery_temperature")
    assert (temperature.status, temperature.reading.value) == ("ok", None)  # type: ignore[union-attr]


def test_replies_come_only_between_blocks_and_async_lines_only_after_hex(
        mppt: tuple[Simulator, Client]) -> None:
    """No HEX line inside a TEXT block; no :A line before the host spoke HEX; a burst after."""
    _, client = mppt
    client.until(lambda: len(client.blocks()) >= 3)
    assert not [e for e in client.events if isinstance(e, HexMessage)]
    client.ask(hs.Request(h.PING), hs.get(0xEDD5), hs.get(0xEDD7))
    client.until(lambda: len(client.blocks()) >= 6)
    blocks = [e for e in client.events if isinstance(e, Block)]
    lines = [e for e in client.events if isinstance(e, HexMessage)]
    assert lines and all(line.valid for line in lines)
    for line in lines:
        assert not any(b.start < line.start < b.end for b in blocks)
    codes = [h.parse_response(line.raw) for line in lines]
    assert any(isinstance(m, h.RegisterMessage) and m.code == h.ASYNC for m in codes)
    assert client.session.values[0x0201].value is not None  # device state came async


def test_malformed_input_gets_frame_error(mppt: tuple[Simulator, Client]) -> None:
    """A line the device cannot parse is answered :4AAAAFD (OpenDTU#436)."""
    _, client = mppt
    os.write(client.fd, b":7F0ED0072\n")  # bad check byte
    client.until(lambda: any(isinstance(e, HexMessage) and e.raw == b"4AAAAFD"
                             for e in client.events))


def test_history_total_and_30_days_agree_with_h19_h20_h22(
        mppt: tuple[Simulator, Client]) -> None:
    """Total = H19; day 0 = H20/H21/HSDS, day 1 = H22/H23; days sum to H19 (0.01 kWh)."""
    _, client = mppt
    total_outcome, *day_outcomes = client.ask(
        hs.get(0x104F), *(hs.get(0x1050 + n) for n in range(31)))
    total = total_outcome.reading.value  # type: ignore[union-attr]
    assert isinstance(total, h.TotalRecord) and total.days == 31
    assert [o.status for o in day_outcomes] == ["ok"] * 31
    days = [o.reading.value for o in day_outcomes]  # type: ignore[union-attr]
    assert all(isinstance(d, h.DayRecord) for d in days)

    def text(outcome: hs.Outcome, label: str) -> int:
        return int(client.fields_before(outcome, label))

    assert total.yield_user_kwh == int(text(total_outcome, "H19")) / 100
    today, yesterday = days[0], days[1]
    assert today.yield_kwh == text(day_outcomes[0], "H20") / 100  # type: ignore[union-attr]
    assert today.max_power_w == text(day_outcomes[0], "H21")  # type: ignore[union-attr]
    assert yesterday.yield_kwh == text(day_outcomes[1], "H22") / 100  # type: ignore[union-attr]
    assert yesterday.max_power_w == text(day_outcomes[1], "H23")  # type: ignore[union-attr]
    seqs = [d.day_seq for d in days]  # type: ignore[union-attr]
    assert seqs[0] == text(day_outcomes[0], "HSDS")
    assert seqs == list(range(seqs[0], seqs[0] - 31, -1))
    # The days never sum above H19 of the same moment (H19 may hold more than 31 days).
    total_c = sum(round(d.yield_kwh * 100) for d in days)  # type: ignore[union-attr]
    assert text(day_outcomes[0], "H20") + text(day_outcomes[1], "H22") <= total_c
    assert total_c <= text(day_outcomes[0], "H19")


def _mppt_block(hsds: int, h19: int, h20: int, h22: int, h23: int = 300) -> list[tuple[str, str]]:
    return [("V", "13200"), ("I", "4000"), ("VPV", "35000"), ("PPV", "60"), ("CS", "3"),
            ("H19", str(h19)), ("H20", str(h20)), ("H21", "90"), ("H22", str(h22)),
            ("H23", str(h23)), ("HSDS", str(hsds))]


def _day(device: HexDevice, n: int) -> h.DayRecord | None:
    data = device.value(0x1050 + n, 0.0)
    return None if data is None else h.decode_day(data)


def test_a_day_roll_archives_the_closed_day_as_h22() -> None:
    """When HSDS moves on, the closed day becomes day 1 with the new block's H22/H23."""
    device = HexDevice(0xA053, 159, "HQ1")
    device.observe(_mppt_block(hsds=5, h19=1000, h20=1000, h22=0), 0.0)
    device.observe(_mppt_block(hsds=5, h19=1100, h20=1100, h22=0), 1.0)
    assert _day(device, 1) is None  # a brand-new device has today only
    device.observe(_mppt_block(hsds=6, h19=1100, h20=0, h22=1100, h23=250), 2.0)
    today, yesterday = _day(device, 0), _day(device, 1)
    assert today is not None and yesterday is not None
    assert (today.day_seq, today.yield_kwh) == (6, 0.0)
    assert (yesterday.day_seq, yesterday.yield_kwh, yesterday.max_power_w) == (5, 11.0, 250)
    total = h.decode_total(device.value(0x104F, 0.0) or b"")
    assert total is not None and (total.days, total.yield_user_kwh) == (2, 11.0)


def test_a_past_in_h19_shows_as_days_like_yesterday() -> None:
    """A charger started with 120 days in H19: 30 past days of H22 each, never above H19."""
    device = HexDevice(0xA053, 159, "HQ1")
    device.observe(_mppt_block(hsds=120, h19=120 * 300 + 50, h20=50, h22=300), 0.0)
    days = [_day(device, n) for n in range(31)]
    assert all(d is not None for d in days) and _day(device, 31) is None
    assert [d.day_seq for d in days] == list(range(120, 89, -1))  # type: ignore[union-attr]
    assert {d.yield_kwh for d in days[1:]} == {3.0}  # type: ignore[union-attr]
    short = HexDevice(0xA053, 159, "HQ2")  # H19 holds 2.5 days before today
    short.observe(_mppt_block(hsds=3, h19=750 + 50, h20=50, h22=300), 0.0)
    yields = [d.yield_kwh for n in range(31) if (d := _day(short, n)) is not None]
    assert yields == [0.5, 3.0, 3.0, 1.5]


def test_set_stores_expires_0x2015_and_counts_nv_writes(sim_dir: Path) -> None:
    """Set echoes; 0x2015 reads back, then 'not available' after 60 device s; NV counted."""
    with Simulator(["mppt"], sim_dir, speed=20.0) as sim, connect(sim, "mppt") as client:
        limit = REGISTER_BY_NAME["charge_current_limit"]
        value = h.encode_value(limit, 12.5)
        (done,) = client.ask(hs.Request(h.SET, limit.id, value))
        assert done.status == "ok" and done.raw == b"81520007D009B"  # HEX.md §2.3 example 2
        assert client.get("charge_current_limit").reading.value == 12.5  # type: ignore[union-attr]
        hexdev = sim.devices["mppt"].hex
        assert hexdev is not None
        set_at = sim.clock.now()
        client.until(lambda: sim.clock.now() - set_at > 61)
        assert client.get("charge_current_limit").reading.value is None  # type: ignore[union-attr]
        on, read_only, bad_width = client.ask(
            hs.Request(h.SET, 0xEDAB, b"\x04"), hs.Request(h.SET, 0xEDD3, b"\x00\x00"),
            hs.Request(h.SET, 0xEDAB, b"\x04\x00"))
        assert (on.status, read_only.status, bad_width.status) == ("ok", "refused", "rejected")
        assert hexdev.nv_writes == {0xEDAB: 1}
        assert client.get("load_output_control").reading.value == 4  # type: ignore[union-attr]


def test_fw_123_pauses_text_while_hex_flows(sim_dir: Path) -> None:
    """HEX.md T1: FW <= 1.52 -> no TEXT block while HEX continues; TEXT resumes after."""
    with Simulator(["mppt_fw123"], sim_dir, speed=2.0) as sim, connect(sim, "mppt_fw123") as client:
        assert client.session.policy == hs.ON_DEMAND
        device = sim.devices["mppt_fw123"]
        written, not_written = device.counters.blocks_written, device.counters.blocks_not_written
        outcomes: list[hs.Outcome] = []
        start = sim.clock.now()
        while sim.clock.now() - start < 6.0:  # 6 device s of back-to-back pings
            outcomes += client.ask(hs.Request(h.PING, on_demand=True))
        assert {o.status for o in outcomes} == {"ok"} and len(outcomes) >= 3
        assert device.counters.blocks_written - written <= 1  # at most one under way
        assert device.counters.blocks_not_written > not_written  # TEXT paused
        resumed = len(client.blocks())
        client.until(lambda: len(client.blocks()) >= resumed + 2)  # and resumes after


def test_a_device_ignoring_hex_keeps_sending_text(sim_dir: Path) -> None:
    """The fault: pings go unanswered (timeout) while TEXT blocks keep arriving."""
    with Simulator(["mppt"], sim_dir, speed=5.0) as sim:
        hexdev = sim.devices["mppt"].hex
        assert hexdev is not None
        hexdev.ignore_hex = True
        with connect(sim, "mppt") as client:
            client.session.timeout = 2.0
            before = len(client.blocks())
            (outcome,) = client.ask(hs.Request(h.PING))
            assert outcome.status == "timeout" and hexdev.counters.ignored == 1
            assert len(client.blocks()) > before
            assert not [e for e in client.events if isinstance(e, HexMessage)]


def test_bmv700_answers_from_its_blocks(sim_dir: Path) -> None:
    """BMV-700: product id 0x203; main voltage equals TEXT V; aux voltage not available."""
    with Simulator(["bmv700"], sim_dir, speed=2.0) as sim, connect(sim, "bmv700") as client:
        (pid,) = client.ask(hs.Request(h.PRODUCT_ID))
        assert pid.word == 0x0203
        client.until(lambda: any("V" in b for b in client.blocks()))
        volts = client.get("main_voltage")
        last_v = client.fields_before(volts, "V")
        assert volts.reading.value == pytest.approx(int(last_v) / 1000, abs=0.011)  # type: ignore[union-attr]
        assert client.get("aux_voltage").reading.value is None  # type: ignore[union-attr]
        assert client.get("yield_today").status == "refused"  # a charger register
        assert client.get("capacity").reading.value == 200  # type: ignore[union-attr]


def test_smartshunt_register_map() -> None:
    """SmartShunt (no TEXT profile yet): PID 0xA389, ping 0x4414 form, no relay register."""
    shunt = HexDevice(0xA389, 414, "HQ2117NTVX4")
    shunt.observe([("V", "26690"), ("I", "-150"), ("SOC", "699"), ("TTG", "-1")], 0.0)
    shunt.receive(b":154\n:451\n:78DED00D4\n:74E0300FD\n:7FE0F0041\n:7FF0F0040\n", 1.0)
    replies = [h.parse_response(line) for line in h.LineSplitter().feed(shunt.output(1.0))
               if isinstance(line, bytes)]
    words = [m for m in replies if isinstance(m, h.WordMessage)]
    assert words == [h.WordMessage(h.PING_REPLY, 0x4414), h.WordMessage(h.DONE, 0xA389)]
    gets = {m.register: h.reading_of(m) for m in replies
            if isinstance(m, h.RegisterMessage) and m.code == h.GET_REPLY}
    assert gets[0xED8D].value == 26.69
    assert gets[0x034E].error == "unknown id"  # SmartShunt has no relay (HEX.md B4)
    assert gets[0x0FFE].value is None  # TTG -1 (infinite): not available
    assert gets[0x0FFF].value == 69.9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), st.sampled_from([
    b":154\n", b":7F0ED0071\n", b":81520007D009B\n", b":8ABED00B5\n", b":7ECED0075\r\n",
    b":4AAAAFD\n", b":" + b"7" * 150 + b"\n", b":74F1000EF\n", b":7501000EE\n"])), max_size=20))
def test_the_simulated_device_answers_any_bytes_with_valid_lines(chunks: list[bytes]) -> None:
    """Whatever a host writes, the device never raises and only writes well-formed lines."""
    device = HexDevice(0xA053, 159, "HQ1")
    device.observe(_mppt_block(hsds=7, h19=500, h20=100, h22=200), 0.0)
    for i, chunk in enumerate(chunks):
        device.receive(chunk, float(i))
        for item in h.LineSplitter().feed(device.output(float(i))):
            assert isinstance(item, bytes)
            assert not isinstance(h.parse_response(item), h.Malformed)


def test_a_request_is_answered_within_the_gap_not_at_the_next_stop_check(
        sim_dir: Path) -> None:
    """A real device answers in its gap within milliseconds (OpenDTU-OnBattery #1692's
    serial log: five replies within 40 ms at 19200 baud). The simulator's writer waits
    between blocks on the pty itself, so a request ends its wait: the pause it is in
    (60 s here, long enough that the old 50 ms sleeps would not matter, and a plain sleep
    would not end) returns as soon as the host writes. The writer thread is not started,
    so this test's pause is the only one reading the pty. The 30 s allowed for it is for
    a starved machine (it failed once at 5 s under three suites' load); it is still half
    the pause, so a pause that does not end on the write fails."""
    with Simulator(["mppt"], sim_dir, speed=1.0, autostart=False) as sim:
        device = sim.devices["mppt"]
        sim.open_ports()
        fd = os.open(sim.path("mppt"), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            done = threading.Event()

            def pause() -> None:
                device._pause(60.0)
                done.set()

            worker = threading.Thread(target=pause, daemon=True)
            worker.start()
            assert not done.wait(0.2)  # nothing written: it waits
            os.write(fd, hs.Request(h.PING).line)
            assert done.wait(30.0), "the pause did not end when the host wrote"
        finally:
            os.close(fd)
