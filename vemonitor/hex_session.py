"""One port's HEX conversation: what to send when, and which line answers what.

Pure logic, no threads and no I/O: the owner (the serial reader, the ``hex get``
command, a test) feeds it the TEXT decoder's events with the time, asks it for
the next line to write, and takes the outcomes. So every rule below is tested
without a port, and the same object runs inside the reader thread.

The rules (HEX.md §6, §8; sources named there):

* **One request at a time** (T3: devices lose requests sent too fast; KR, OD).
* **Sent in the gap**: right after a TEXT block's checksum byte, when the decoder
  holds no partial block (T2, T3; OD sends "right after decoding a frame"). The gap
  also opens right after the reply to our own request, because a FW <= 1.52 MPPT
  pauses its TEXT while HEX flows (T1) and would otherwise never offer a gap.
* **Matched by response code and register**, never by "the next line" (T4: a burst
  of ``:A`` lines may come first; GV retries on a wrong register).
* **1 s timeout** (T2: a reply waits for the current TEXT block, <= ~105 ms, and a
  BMV sends two per second; KR uses 1000 ms, OD's 500 ms is tight).
* **``:A`` async lines are used at any time**, whatever the policy: each updates the
  register's latest value; the MPPT's pushed history record for today (0x1050)
  becomes :attr:`HexSession.today` (HEX.md §4.1: a TEXT-only reader gets it too).
* **A refused register (flags 1 or 2) is remembered** and never asked again on this
  connection ("it will not change": GV). Flags 4 (parameter error) refuses one value,
  not the register.
* **Policy by device** (from the TEXT blocks seen): MPPT FW <= 1.52 -> ``on_demand``
  (only requests a user asked for: T1, OD sends HEX only to FW >= 1.53); BMV-60x ->
  ``never`` (B5: it cannot take HEX); everything else ``full``.
* **A device that never answers** (RX pin used for remote on/off, Q4; or no HEX at
  all) goes ``unresponsive`` after 3 timeouts in a row: periodic requests are then
  skipped, one ping probes again every 10 min, on-demand requests still go out. The
  session never writes unless asked, so such a device keeps working as TEXT-only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vemonitor.vedirect import hex as h
from vemonitor.vedirect.events import Block, Event, HexMessage
from vemonitor.vedirect.hex_registers import HISTORY_DAY0, family_of

TIMEOUT_S = 1.0
UNRESPONSIVE_AFTER = 3  # timeouts in a row
PROBE_EVERY_S = 600.0  # how often an unresponsive device is pinged again
MAX_QUEUE = 64  # a 30-day back-fill (32 requests) plus identity and a few polls
LAST_FW_WITH_TEXT_PAUSE = 152  # "v1.52 and below" (HEX document quoted in OD)

FULL, ON_DEMAND, NEVER = "full", "on_demand", "never"

# Outcome statuses, with what they mean (docs/hex.md lists them too).
STATUSES: dict[str, str] = {
    "ok": "the device answered with flags 00",
    "refused": "flags 1 or 2: the device does not know or support the register",
    "rejected": "flags 4: the device refused the value (Set)",
    "error": "other non-zero flags, or a value that does not fit the register",
    "mismatch": "a Set reply whose value differs from the one sent",
    "timeout": "no matching reply within the timeout",
    "unknown_command": "the device answered 3 (unknown command)",
    "frame_error": "the device answered :4AAAAFD (it could not parse our line)",
    "skipped_refused": "not sent: the register was refused before",
    "skipped_policy": "not sent: this device is asked only on demand, or never",
    "skipped_unresponsive": "not sent: the device has not answered HEX lately",
    "queue_full": "not sent: too many requests waiting",
}


@dataclass(frozen=True, slots=True)
class Request:
    """One command to send; ``on_demand`` marks a user's request (allowed on old firmware)."""

    command: int
    register: int | None = None
    value: bytes = b""
    on_demand: bool = False

    @property
    def line(self) -> bytes:
        """Return the wire line of this request."""
        if self.command == h.GET and self.register is not None:
            return h.encode_get(self.register)
        if self.command == h.SET and self.register is not None:
            return h.encode_set(self.register, self.value)
        return h.encode(self.command)

    def answered_by(self, msg: h.Response) -> bool:
        """Return True when ``msg`` is this request's reply (code and register must match)."""
        expected = h.REPLY_CODE.get(self.command)
        if isinstance(msg, h.RegisterMessage):
            return msg.code == expected and msg.register == self.register
        if isinstance(msg, h.WordMessage):
            return msg.code == expected and self.register is None
        return False


def get(register: int, on_demand: bool = False) -> Request:
    """Return a Get request."""
    return Request(h.GET, register, on_demand=on_demand)


# The device's identity, asked once per connection by every owner of a reader (the
# daemon's serial source, the Home Assistant component): HEX.md §3.1; ``:4`` is the
# reliable product id (Q5). Keys: what each answer is (pid word, serial number 0x010A,
# model name 0x010B, firmware 0x0102).
IDENTITY_REQUESTS: tuple[tuple[str, Request], ...] = (
    ("pid", Request(h.PRODUCT_ID)),
    ("serial", get(0x010A)),
    ("model", get(0x010B)),
    ("firmware", get(0x0102)),
)
SERIAL_REQUEST = IDENTITY_REQUESTS[1][1]


def identity_of(outcome: Outcome) -> tuple[str, str] | None:
    """Return (key, value) when ``outcome`` answers an identity request, else None.

    The product id word reads ``0xA053``; a BMV's 0x010A may hold two serial numbers
    separated by a comma (the second is the VS input's): only the first is the device's.
    """
    if outcome.status != "ok":
        return None
    for key, request in IDENTITY_REQUESTS:
        if outcome.request != request:
            continue
        if outcome.word is not None:
            return key, f"0x{outcome.word:04X}"
        if outcome.reading is not None and outcome.reading.value is not None:
            value = str(outcome.reading.value)
            return key, value.split(",")[0].strip() if key == "serial" else value
    return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one request (``status``: a key of STATUSES)."""

    request: Request
    status: str
    reading: h.Reading | None = None  # Get/Set replies
    word: int | None = None  # ping, app version, product id
    raw: bytes = b""  # the reply line body as received ("" when none)
    at: float = 0.0


def firmware_number(fields: Mapping[str, str]) -> int | None:
    """Return the firmware as a number (FW '159' or FWE '0159FF' -> 159), None when unknown."""
    fw = fields.get("FW")
    if fw is None and (fwe := fields.get("FWE")) is not None and len(fwe) > 2:
        fw = fwe[:-2]  # FWE = version + release tag (PROTOCOL.md)
    if fw is None or not fw.strip().isdigit():
        return None
    return int(fw)


def policy_for(fields: Mapping[str, str]) -> str | None:
    """Return the HEX policy for a device by its TEXT identity, None while it is unknown."""
    pid_text = fields.get("PID")
    if pid_text is None:
        # BMV-60x sends 'BMV 60x' and no PID (HEX.md B5: venus#212, it cannot take HEX).
        return NEVER if fields.get("BMV", "").startswith("60") else None
    try:
        pid = int(pid_text, 16)
    except ValueError:
        return None
    fw = firmware_number(fields)
    if family_of(pid) == "mppt" and fw is not None and fw <= LAST_FW_WITH_TEXT_PAUSE:
        return ON_DEMAND
    return FULL


class HexSession:
    """The HEX side of one port: a queue, one request in flight, replies matched, outcomes."""

    def __init__(self, *, timeout: float = TIMEOUT_S, max_queue: int = MAX_QUEUE,
                 unresponsive_after: int = UNRESPONSIVE_AFTER,
                 probe_every: float = PROBE_EVERY_S) -> None:
        self.timeout = timeout
        self.max_queue = max_queue
        self.unresponsive_after = unresponsive_after
        self.probe_every = probe_every
        self.policy: str | None = None
        self.identity: dict[str, str] = {}  # TEXT identity labels seen (PID, FW, FWE, BMV)
        self.refused: set[int] = set()
        self.values: dict[int, h.Reading] = {}  # the latest reading of each register
        self.today: h.DayRecord | None = None  # the newest record of 0x1050
        self.timeouts_in_row = 0
        self.unresponsive = False
        self.counters: dict[str, int] = {}
        self._queue: deque[Request] = deque()
        self._in_flight: Request | None = None
        self._sent_at = 0.0
        self._gap = False
        self._last_probe = 0.0
        self._outcomes: list[Outcome] = []
        self._async: list[h.Reading] = []

    # ---------------------------------------------------------------- requests
    def submit(self, request: Request, now: float = 0.0) -> bool:
        """Queue ``request``; return False when it was settled at once (see take_outcomes)."""
        skip = self._skip_reason(request)
        if skip is None and len(self._queue) >= self.max_queue:
            skip = "queue_full"
        if skip is not None:
            self._finish(request, skip, at=now)
            return False
        in_flight = self._in_flight
        if request not in self._queue and (in_flight is None or request != in_flight):
            self._queue.append(request)  # a poll already waiting is not queued twice
        return True

    def cancel(self, request: Request) -> bool:
        """Drop ``request`` if it still waits to be sent; return True when it was dropped.

        A control gives up on a request that found no gap in time (no TEXT flowing):
        it must not go out later, after its caller was told it did not (issue 23).
        """
        try:
            self._queue.remove(request)
        except ValueError:
            return False
        return True

    @property
    def busy(self) -> bool:
        """Return True while a request is in flight or waiting."""
        return self._in_flight is not None or bool(self._queue)

    def _skip_reason(self, request: Request) -> str | None:
        """Return why ``request`` must not be sent now, or None."""
        if request.register is not None and request.register in self.refused:
            return "skipped_refused"
        if self.policy == NEVER or (self.policy == ON_DEMAND and not request.on_demand):
            return "skipped_policy"
        if self.unresponsive and not request.on_demand and request.command != h.PING:
            return "skipped_unresponsive"
        return None

    # ------------------------------------------------------------------ input
    def on_events(self, events: Iterable[Event], now: float, idle: bool = True) -> None:
        """Take the decoder's events received at ``now``; ``idle``: no partial block is held."""
        last_opened = False
        for event in events:
            if type(event) is HexMessage:  # the usual event: a reply or an async line
                # an async line after a block keeps the gap; our reply opens one
                last_opened = self._on_line(event.raw, now) or last_opened
            elif isinstance(event, Block):
                self._learn_identity(event.fields)
                last_opened = True
            else:
                last_opened = False
        self.tick(now)
        if last_opened and idle:
            self._gap = True
        elif not idle:
            self._gap = False  # TEXT bytes of the next block have started

    def _learn_identity(self, fields: Mapping[str, str]) -> None:
        """Remember the TEXT identity labels and decide the policy once they are known."""
        for label in ("PID", "FW", "FWE", "BMV"):
            if label in fields:
                self.identity[label] = fields[label]
        policy = policy_for(self.identity)
        if policy is not None:
            self.policy = policy

    def _on_line(self, body: bytes, now: float) -> bool:
        """Handle one device line; return True when it answered our request."""
        msg = h.parse_response(body)
        self._count("lines_" + type(msg).__name__)
        if isinstance(msg, h.RegisterMessage) and msg.code == h.ASYNC:
            self._remember(h.reading_of(msg), asynchronous=True)
            return False
        request = self._in_flight
        if request is not None and request.answered_by(msg):
            self._settle(request, msg, body, now)
            return True
        if isinstance(msg, h.ErrorMessage) and request is not None:
            self._in_flight = None
            self._responsive()
            status = "frame_error" if msg.frame_error else "unknown_command"
            self._finish(request, status, raw=body, at=now)
            return True
        if isinstance(msg, h.RegisterMessage) and msg.ok:
            self._remember(h.reading_of(msg), asynchronous=False)  # a late or stray reply
        return False

    def _settle(self, request: Request, msg: h.Response, body: bytes, now: float) -> None:
        """Finish the in-flight request with its reply."""
        self._in_flight = None
        self._responsive()
        if isinstance(msg, h.WordMessage):
            self._finish(request, "ok", word=msg.value, raw=body, at=now)
            return
        assert isinstance(msg, h.RegisterMessage)
        reading = h.reading_of(msg)
        if msg.refused:
            self.refused.add(msg.register)
            status = "refused"
        elif msg.flags & h.FLAG_PARAMETER_ERROR:
            status = "rejected"
        elif reading.error:
            status = "error"
        elif request.command == h.SET and msg.value != request.value:
            status = "mismatch"
        else:
            status = "ok"
            self._remember(reading, asynchronous=False)
        self._finish(request, status, reading=reading, raw=body, at=now)

    def _remember(self, reading: h.Reading, asynchronous: bool) -> None:
        """Keep a register's latest good value; async lines are also handed out."""
        if reading.error:
            return
        self.values[reading.register] = reading
        if reading.register == HISTORY_DAY0 and isinstance(reading.value, h.DayRecord):
            self.today = reading.value
        if asynchronous:
            self._async.append(reading)

    def _responsive(self) -> None:
        """A reply arrived: the device speaks HEX."""
        self.timeouts_in_row = 0
        self.unresponsive = False

    # ---------------------------------------------------------------- output
    def tick(self, now: float) -> None:
        """Time out the in-flight request when its reply is late."""
        request = self._in_flight
        if request is None or now - self._sent_at <= self.timeout:
            return
        self._in_flight = None
        self.timeouts_in_row += 1
        if self.timeouts_in_row >= self.unresponsive_after and not self.unresponsive:
            self.unresponsive = True
            self._last_probe = now  # the first probe comes one period later
        self._finish(request, "timeout", at=now)

    def outgoing(self, now: float) -> bytes | None:
        """Return the line to write now (in the gap, nothing in flight), else None."""
        self.tick(now)
        if self._in_flight is not None or not self._gap:
            return None
        if self.unresponsive:
            self._maybe_probe(now)
        while self._queue:
            request = self._queue.popleft()
            skip = self._skip_reason(request)
            if skip is not None:
                self._finish(request, skip, at=now)
                continue
            self._in_flight, self._sent_at, self._gap = request, now, False
            self._count("sent")
            return request.line
        return None

    def _maybe_probe(self, now: float) -> None:
        """Queue one ping now and then while the device is unresponsive."""
        if self.unresponsive and now - self._last_probe >= self.probe_every:
            self._last_probe = now
            probe = Request(h.PING)
            if probe not in self._queue:
                self._queue.appendleft(probe)

    # --------------------------------------------------------------- results
    def _finish(self, request: Request, status: str, *, reading: h.Reading | None = None,
                word: int | None = None, raw: bytes = b"", at: float = 0.0) -> None:
        """Record an outcome."""
        self._count(status)
        self._outcomes.append(Outcome(request, status, reading, word, raw, at))

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    @property
    def settled(self) -> bool:
        """Return True when outcomes or async readings wait to be taken."""
        return bool(self._outcomes or self._async)

    def take_outcomes(self) -> list[Outcome]:
        """Return and forget the outcomes settled since the last call."""
        out, self._outcomes = self._outcomes, []
        return out

    def take_async(self) -> list[h.Reading]:
        """Return and forget the async readings received since the last call."""
        out, self._async = self._async, []
        return out
