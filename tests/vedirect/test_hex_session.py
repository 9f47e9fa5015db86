"""The HEX session: when it sends, which line answers what, timeouts, refusals, policies.

The device side is bytes as real devices send them: TEXT blocks (encode_block) and
HEX lines recorded by koestler/go-victron (vedirectapi/registerApi_test.go, session
"Solar Piegn Main": async lines arrive before the reply), fed through the real
TEXT decoder, as the serial reader will.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vemonitor import hex_session as hs
from vemonitor.vedirect import hex as h
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.encoder import encode_block

MPPT_159 = [("PID", "0xA069"), ("FW", "159"), ("V", "27350"), ("CS", "3"), ("HSDS", "259")]


class Line:
    """A session fed through a real TEXT decoder, as a port's reader does."""

    def __init__(self, block: list[tuple[str, str]] = MPPT_159, **kwargs: float) -> None:
        self.session = hs.HexSession(**kwargs)  # type: ignore[arg-type]
        self.decoder = Decoder()
        self.block = encode_block(block)
        self.sent: list[bytes] = []

    def receive(self, data: bytes, now: float) -> bytes | None:
        """Feed device bytes at ``now``; return what the session writes in response (if any)."""
        events = self.decoder.feed(data, now)
        self.session.on_events(events, now, idle=self.decoder.pending == 0)
        line = self.session.outgoing(now)
        if line is not None:
            self.sent.append(line)
        return line


def test_nothing_is_sent_before_a_block_gap_then_one_at_a_time() -> None:
    """A request waits for a checksum byte; a second waits until the first is answered."""
    line = Line()
    line.session.submit(hs.get(0xEDD1))
    line.session.submit(hs.get(0xEDD0))
    assert line.receive(b"", 0.0) is None  # no block seen: no gap
    assert line.receive(line.block[:20], 0.1) is None  # mid-block: no gap
    assert line.receive(line.block[20:], 0.2) == b":7D1ED0090\n"
    assert line.receive(line.block, 0.3) is None  # in flight: nothing more
    assert line.receive(b":7D1ED0043004D\n", 0.4) == b":7D0ED0091\n"  # reply opens the gap
    (outcome,) = line.session.take_outcomes()
    assert (outcome.status, outcome.reading.value) == ("ok", 0.67)  # type: ignore[union-attr]


def test_reply_is_matched_by_code_and_register_not_by_next_line() -> None:
    """GV "Solar Piegn Main": three :A lines and a stray Get reply come before the reply."""
    line = Line()
    line.session.submit(hs.get(0xEDBD))
    line.receive(line.block, 0.0)
    burst = b":ABBED00C52AB4\n:ABCED008B360000E1\n:7D3ED0014007A\n:AD7ED00310056\n"
    line.receive(burst, 0.1)
    assert line.session.take_outcomes() == []  # none of those is the reply
    line.receive(b":7BDED000C0098\n", 0.2)
    (outcome,) = line.session.take_outcomes()
    assert outcome.status == "ok" and outcome.reading is not None
    assert (outcome.reading.name, outcome.reading.value) == ("panel_current", 1.2)
    asyncs = {r.name: r.value for r in line.session.take_async()}
    assert asyncs == {"panel_voltage": 109.49, "panel_power": 139.63, "charger_current": 4.9}
    assert line.session.values[0xEDD3].value == 0.2  # the stray Get reply still counts as a value


def test_async_lines_inside_a_block_do_not_cost_the_block() -> None:
    """An :A line between two records: the block and the line both arrive (TEXT never lost)."""
    line = Line()
    block = line.block
    cut = block.index(b"\r\nCS")
    pushed = h.encode_register_reply(h.ASYNC, 0xEDD5, 0, (2731).to_bytes(2, "little"))
    line.receive(block[:cut] + pushed + block[cut:], 0.0)
    assert line.decoder.offset == len(block) + len(pushed)
    assert line.session.values[0xEDD5].value == 27.31
    assert line.session.identity["PID"] == "0xA069"  # the block was decoded


def test_timeout_after_one_second() -> None:
    """No reply: the request times out after 1 s (not at 1 s), and the next one goes out."""
    line = Line()
    line.session.submit(hs.get(0xEDD1))
    line.session.submit(h_ping := hs.Request(h.PING))
    line.receive(line.block, 10.0)
    line.session.tick(11.0)
    assert line.session.take_outcomes() == []
    assert line.receive(line.block, 11.05) == b":154\n"
    (timeout,) = line.session.take_outcomes()
    assert timeout.status == "timeout" and timeout.request == hs.get(0xEDD1)
    line.receive(b":51641F9\n", 11.2)
    (pong,) = line.session.take_outcomes()
    assert (pong.request, pong.status, pong.word) == (h_ping, "ok", 0x4116)


def test_refused_register_is_remembered_and_not_asked_again() -> None:
    """GV: unknown id -> flags 1; the register is never sent again; flags 4 is not remembered."""
    line = Line()
    line.session.submit(hs.get(0x7777))
    line.receive(line.block, 0.0)
    line.receive(b":77777015F\n", 0.1)
    assert [o.status for o in line.session.take_outcomes()] == ["refused"]
    assert line.session.submit(hs.get(0x7777)) is False
    assert [o.status for o in line.session.take_outcomes()] == ["skipped_refused"]
    assert line.sent == [b":777770060\n"]
    line.session.submit(hs.Request(h.SET, 0x2015, b"\xff\x7f"))
    line.receive(line.block, 1.0)
    line.receive(h.encode_register_reply(h.SET_REPLY, 0x2015, 4, b"\xff\x7f"), 1.1)
    assert [o.status for o in line.session.take_outcomes()] == ["rejected"]
    assert 0x2015 not in line.session.refused


def test_set_reply_must_echo_the_value() -> None:
    """A Set reply with flags 00 but another value is a mismatch (HEX.md §8, item 5)."""
    line = Line()
    line.session.submit(hs.Request(h.SET, 0x2015, (125).to_bytes(2, "little")))
    assert line.receive(line.block, 0.0) == b":81520007D009B\n"
    line.receive(h.encode_register_reply(h.SET_REPLY, 0x2015, 0, (100).to_bytes(2, "little")), .1)
    line.session.submit(hs.Request(h.SET, 0x2015, (125).to_bytes(2, "little")))
    line.receive(line.block, 1.0)
    line.receive(b":81520007D009B\n", 1.1)
    assert [o.status for o in line.session.take_outcomes()] == ["mismatch", "ok"]


def test_identity_commands_and_error_replies() -> None:
    """:4 is answered by Done (1); :4AAAAFD and unknown command (3) settle the request."""
    line = Line()
    for command in (h.PRODUCT_ID, h.APP_VERSION, h.PING):
        line.session.submit(hs.Request(command))
    line.receive(line.block, 0.0)
    line.receive(b":156A05E\n", 0.1)
    line.receive(b":4AAAAFD\n", 0.2)
    line.receive(h.encode(h.UNKNOWN_COMMAND, b"\x01\x00"), 0.3)
    statuses = [(o.request.command, o.status, o.word) for o in line.session.take_outcomes()]
    assert statuses == [(h.PRODUCT_ID, "ok", 0xA056), (h.APP_VERSION, "frame_error", None),
                        (h.PING, "unknown_command", None)]
    assert line.sent == [b":451\n", b":352\n", b":154\n"]


def test_mppt_fw_152_is_asked_only_on_demand() -> None:
    """HEX.md T1: FW <= 1.52 pauses TEXT during HEX; polls are skipped, a user's Get goes out."""
    line = Line([("PID", "0xA042"), ("FW", "152"), ("V", "12000")])
    line.receive(line.block, 0.0)
    assert line.session.policy == hs.ON_DEMAND
    assert line.session.submit(hs.get(0xEDD3)) is False
    assert line.session.submit(hs.get(0xEDD3, on_demand=True)) is True
    line.receive(line.block, 1.0)
    assert line.sent == [b":7D3ED008E\n"]
    assert [o.status for o in line.session.take_outcomes()] == ["skipped_policy"]
    assert hs.policy_for({"PID": "0xA042", "FW": "153"}) == hs.FULL
    assert hs.policy_for({"PID": "0xA06C", "FWE": "0152FF"}) == hs.ON_DEMAND
    assert hs.policy_for({"PID": "0x203", "FW": "0308"}) == hs.FULL  # BMV-700: FW rule is MPPT's
    assert hs.policy_for({"FW": "152"}) is None


def test_bmv60x_is_never_asked_but_its_async_lines_are_used() -> None:
    """HEX.md B5: no request ever goes to a BMV-60x; the session still reads :A lines."""
    line = Line([("V", "12000"), ("I", "0"), ("BMV", "602"), ("FW", "212")])
    line.session.submit(hs.Request(h.PING, on_demand=True))
    line.receive(line.block, 0.0)
    assert line.session.policy == hs.NEVER and line.sent == []
    assert [o.status for o in line.session.take_outcomes()] == ["skipped_policy"]


def test_pushed_history_record_for_today_is_kept_without_any_request() -> None:
    """HEX.md §4.2: the MPPT pushes 0x1050; the session keeps it as ``today``."""
    line = Line([("PID", "0xA060"), ("FW", "159"), ("H20", "81"), ("HSDS", "195")])
    day = b":A501000005100000001000000670B84090000000000140180006000F700000055007911C3000C\n"
    line.receive(line.block + day, 0.0)
    assert line.session.today is not None
    assert (line.session.today.yield_kwh, line.session.today.day_seq) == (0.81, 195)
    assert line.sent == []


def test_a_device_that_never_answers_becomes_unresponsive_and_is_probed_rarely() -> None:
    """3 timeouts in a row: polls are skipped; one ping per probe period; a reply heals it."""
    line = Line(probe_every=600.0)
    for register in (0xEDD1, 0xEDD0, 0xEDD3):
        line.session.submit(hs.get(register))
    now = 0.0
    for _ in range(4):
        line.receive(line.block, now)
        now += 1.5
    line.session.tick(now)
    assert line.session.unresponsive
    assert line.sent == [b":7D1ED0090\n", b":7D0ED0091\n", b":7D3ED008E\n"]
    assert line.session.submit(hs.get(0xEDD2)) is False
    assert line.session.submit(hs.get(0xEDD2, on_demand=True)) is True  # a user may still ask
    line.receive(line.block, now)
    line.receive(line.block, now + 1.5)
    count = len(line.sent)
    for later in (2, 100, 500):
        line.receive(line.block, now + later)
    assert len(line.sent) == count  # silent until one probe period has passed
    line.receive(line.block, now + 601)
    assert line.sent[-1] == b":154\n"  # the probe
    line.receive(b":51641F9\n", now + 601.1)
    assert not line.session.unresponsive
    assert line.session.submit(hs.get(0xEDD2)) is True


def test_gap_closes_when_the_next_block_has_started() -> None:
    """A request submitted after the next block's first bytes waits for that block's end."""
    line = Line()
    line.receive(line.block, 0.0)
    line.receive(line.block[:10], 0.5)
    line.session.submit(hs.get(0xEDD1))
    assert line.receive(b"", 0.6) is None
    assert line.receive(line.block[10:], 0.7) == b":7D1ED0090\n"


def test_a_poll_already_waiting_is_not_queued_twice() -> None:
    """Polling at an interval never piles up duplicates behind a slow device."""
    session = hs.HexSession(max_queue=2)
    assert session.submit(hs.get(0xEDD1)) and session.submit(hs.get(0xEDD1))
    assert session.submit(hs.get(0xEDD0))
    assert session.submit(hs.get(0xEDD3)) is False
    assert [o.status for o in session.take_outcomes()] == ["queue_full"]


PIECES = [
    encode_block(MPPT_159), encode_block([("H19", "1"), ("H20", "2")]), b":51641F9\n",
    b":7D1ED0043004D\n", b":77777015F\n", b":4AAAAFD\n", b":ABBED00C52AB4\n", b":7D1ED00\n",
    b"\x00\xff", b"\r\n", b":", b"Checksum\t", b":7D1ED0043004D\r\n",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PIECES), st.floats(0.0, 2.0),
                          st.sampled_from([None, 0xEDD1, 0x7777, -1])), max_size=40))
def test_any_stream_keeps_one_request_in_flight_and_never_raises(
        steps: list[tuple[bytes, float, int | None]]) -> None:
    """Arbitrary device bytes, times and submits: no exception, never two requests in flight."""
    line = Line()
    now, sent, answered = 0.0, 0, 0
    for data, dt, register in steps:
        now += dt
        if register == -1:
            line.session.submit(hs.Request(h.PING))
        elif register is not None:
            line.session.submit(hs.get(register))
        if line.receive(data, now) is not None:
            sent += 1
        answered += sum(1 for o in line.session.take_outcomes()
                        if not o.status.startswith("skipped") and o.status != "queue_full")
        assert sent - answered in (0, 1)  # one request at a time, each settled once
