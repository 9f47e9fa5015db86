"""Issue 25 point 4 (inputs and outputs): influxDb2's timeout bounds a whole request.

A server that trickles its answer, one byte every 0.2 s, never trips a per-read
timeout: the influxDb2 output (and input) waited for as long as it trickled.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from vemonitor_integrations.influxdb2.errors import InfluxUnavailable
from vemonitor_integrations.influxdb2.schema import InfluxConnector, InfluxInput
from vemonitor_integrations.influxdb2.source import InfluxSource

from tests.integrations.helpers import FakeClock
from tests.integrations.influxdb2.support import SinkMaker
from tests.servers import LOOPBACK
from vemonitor import testing
from vemonitor.api import Context

T0 = 1_700_000_000.0

TRICKLE_SECONDS = 60.0  # how long the server would keep a request alive
ANSWER = b"HTTP/1.1 204 No Content\r\nX-Padding: " + b"x" * 400 + b"\r\n\r\n"


class TricklingServer:
    """Accepts, reads the request, then answers one byte every 0.2 s."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                end = time.monotonic() + TRICKLE_SECONDS
                for byte in ANSWER:
                    if self.stop.is_set() or time.monotonic() > end:
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.2)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(2)


@pytest.fixture
def trickling() -> Iterator[TricklingServer]:
    server = TricklingServer()
    yield server
    server.close()


def test_output_gives_up_at_its_deadline(trickling: TricklingServer,
                                         make_sink: SinkMaker) -> None:
    sink = make_sink(f"http://{LOOPBACK}:{trickling.port}", timeout=1000)
    sink.start()
    started = time.monotonic()
    with pytest.raises(InfluxUnavailable, match="no complete answer .* within 1 s"):
        sink.write(testing.batch("tsdb", testing.rows(T0, 2, "bmv")))
    assert time.monotonic() - started < TRICKLE_SECONDS / 2  # not held while it trickles


def test_input_gives_up_at_its_deadline(trickling: TricklingServer,
                                        caplog: pytest.LogCaptureFixture) -> None:
    conn = InfluxConnector(host=f"http://{LOOPBACK}:{trickling.port}", timeout=1000)
    source = InfluxSource("ix", conn, Context(clock=FakeClock(), state_dir="/nonexistent"))
    source.subscribe(InfluxInput(name="central", source="ix", db="b", measurement="m"))
    source.start()
    started = time.monotonic()
    assert source.rows_since(T0 - 10, "central") == []
    assert time.monotonic() - started < TRICKLE_SECONDS / 2
    assert "deadline" in caplog.text and source.stats()["errors"] == 1
    source.close()
