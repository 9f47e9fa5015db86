"""The InfluxDB 2 write API's contract, where no InfluxDB 2 server can run here (Debian has none).

A loopback HTTP server answers as InfluxDB 2.x documents ("Write data with the InfluxDB
API", the /api/v2/write reference): 204 on success; JSON errors ``{"code", "message"}``
with 400 for line protocol errors and partial writes, 401 for a bad or missing token,
404 ``bucket "<name>" not found``, 413 for a body over the limit, 429/503 with
Retry-After when throttled or not ready. Each answer is one rule the sink must map.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from vemonitor_integrations.influxdb2.errors import (
    InfluxAuthError,
    InfluxBatchRejected,
    InfluxRejected,
    InfluxUnavailable,
)

from tests.integrations.influxdb2.support import TOKEN, SinkMaker
from vemonitor.model import Batch, Row


class Influx2Stub(BaseHTTPRequestHandler):
    """Answers /api/v2/write as InfluxDB 2 does; records each request."""

    answer: tuple[int, dict[str, Any] | None] = (204, None)
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        url = urlsplit(self.path)
        self.seen.append({"path": url.path, "query": parse_qs(url.query),
                          "auth": self.headers.get("Authorization"),
                          "encoding": self.headers.get("Content-Encoding"),
                          "body": body.decode()})
        status, payload = self.answer
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        if status in (429, 503):
            self.send_header("Retry-After", "30")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


@pytest.fixture
def stub() -> Iterator[tuple[str, type[Influx2Stub]]]:
    handler = type("Handler", (Influx2Stub,), {"seen": [], "answer": (204, None)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


BATCH = Batch("tsdb", (Row(1_700_000_000.0, "bmv", {"V": 12.5, "I": -3}),))


def test_request_is_the_documented_v2_write(stub: tuple[str, type[Influx2Stub]],
                                            make_sink: SinkMaker) -> None:
    """POST /api/v2/write?org=&bucket=&precision=s, Token auth, gzip'd line protocol."""
    url, handler = stub
    make_sink(url).write(BATCH)
    [request] = handler.seen
    assert request["path"] == "/api/v2/write"
    assert request["query"] == {"org": ["vemonitor"], "bucket": ["vemonitor"],
                                "precision": ["s"]}
    assert request["auth"] == f"Token {TOKEN}" and request["encoding"] == "gzip"
    assert request["body"] == ("vemonitor,node=bmv,pid=0x203,product=BMV-700,"
                               "serial=HQ2211ABCDE,site=home V=12.5,I=-3i 1700000000\n")


@pytest.mark.parametrize(("status", "payload", "error"), [
    # 401: {"code":"unauthorized","message":"unauthorized access"}
    (401, {"code": "unauthorized", "message": "unauthorized access"}, InfluxAuthError),
    # 403: a token without write permission on the bucket
    (403, {"code": "forbidden", "message": "insufficient permissions for write"},
     InfluxAuthError),
    # 404: {"code":"not found","message":"bucket \"nope\" not found"}
    (404, {"code": "not found", "message": 'bucket "nope" not found'}, InfluxRejected),
    # 400: partial write / field type conflict / unable to parse
    (400, {"code": "invalid", "message": "partial write: field type conflict"},
     InfluxBatchRejected),
    # 413: {"code":"request too large","message":"unable to read data: ..."}
    (413, {"code": "request too large", "message": "unable to read data"},
     InfluxBatchRejected),
    # 429 / 503 with Retry-After: throttled, or not ready (startup, compaction)
    (429, {"code": "too many requests", "message": "write limit reached"}, InfluxUnavailable),
    (503, {"code": "unavailable", "message": "service unavailable"}, InfluxUnavailable),
    (500, {"code": "internal error", "message": "timeout"}, InfluxUnavailable),
])
def test_each_documented_answer_maps_to_its_error(stub: tuple[str, type[Influx2Stub]],
                                                  make_sink: SinkMaker, status: int,
                                                  payload: dict[str, str],
                                                  error: type[Exception]) -> None:
    """The class decides what the outbox does; the message quotes the server's message."""
    url, handler = stub
    handler.answer = (status, payload)
    with pytest.raises(error) as caught:
        make_sink(url).write(BATCH)
    assert payload["message"] in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_server_that_never_answers_is_unavailable_after_the_timeout(
        make_sink: SinkMaker) -> None:
    """A hung server (accepts, never answers): SinkUnavailable after `timeout` ms."""
    import socket
    import time

    from vemonitor.errors import SinkUnavailable

    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(1)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        began = time.monotonic()
        with pytest.raises(InfluxUnavailable) as caught:
            make_sink(url, timeout=300).write(BATCH)
    assert isinstance(caught.value, SinkUnavailable)
    assert "within 0.3 s" in str(caught.value) and time.monotonic() - began < 10
