"""Issue 25 point 4, poison-proof inputs: the influxDb2 input on hostile /query answers.

Before: a deeply nested answer (RecursionError) or ``[]`` (AttributeError) ended the
input with a traceback, and one bad row (or a NaN) cost the whole answer. Now each such
answer is one counted error (the next query goes on), a bad row costs itself, and a NaN
costs its field (vemonitor.fieldpolicy). A real influxd cannot send these answers: a
loopback HTTP server plays the server (the unit edge), the engine is the real one.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.engine.helpers import Recorder, registry_with_recorders
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine

NOW_MS = int(time.time()) * 1000 - 20_000
GOOD = ('{"results":[{"series":[{"name":"m","columns":["time","V","I"],"values":['
        f'[{NOW_MS},12.5,1.0],[{NOW_MS + 1000},"x"],[{NOW_MS + 2000},NaN,2.0],'
        f'[{NOW_MS + 3000},12.6,{{"a":1}}],["never",1,1],[{NOW_MS + 4000},12.7,3.0]]}}]}}]}}')
ANSWERS = ['{"results":' + "[" * 100_000 + "]" * 100_000 + "}", "[]", "not json",
           '{"results":[{"error":"boom"}]}', GOOD,
           '{"results":[{"statement_id":0}]}']  # then nothing newer (as influxd answers)


class _Handler(BaseHTTPRequestHandler):
    answers: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = (self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_hostile_answers_cost_themselves_only(tmp_path: Path) -> None:
    """Four hostile answers, then one with bad rows among good ones: the engine runs to
    its end; the good rows arrive, the NaN field and the bad rows are counted."""
    _Handler.answers = list(ANSWERS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    recorders: dict[str, Recorder] = {}
    registry = registry_with_recorders(recorders)
    config = {"state_dir": str(tmp_path / "state"),
              "block": {"name": "central", "inputs": {"influxDb2": {"boat": {
                  "source": "legacy", "db": "d", "measurement": "m", "columns": ["V", "I"],
                  "since": NOW_MS / 1000 - 5, "time_interval": 1}}},
                  "outputs": {"record": {"seen": {"cache_interval": 1}}}},
              "appConnectors": {"influxDb2": {"legacy": {
                  "host": f"http://127.0.0.1:{server.server_address[1]}", "api": "v1"}}}}
    try:
        engine = Engine(build_run(config, registry), registry, SystemClock())
        engine.run(8)
    finally:
        server.shutdown()
        server.server_close()
    rows = recorders["seen"].rows()
    got = {r.time: dict(r.values) for r in rows}
    base = NOW_MS / 1000
    assert got[base] == {"V": 12.5, "I": 1.0}
    assert got[base + 2] == {"I": 2.0}  # NaN V left out, the row kept
    assert got[base + 3] == {"V": 12.6}  # an object as I left out
    assert got[base + 4] == {"V": 12.7, "I": 3.0}
    assert set(got) == {base, base + 2, base + 3, base + 4}
    stats = next(iter(engine.sources.values())).stats()
    assert stats["errors"] == 4 and stats["invalid"] >= 2
    fields = engine.inputs[0].stats.fields.as_dict()
    assert fields == {"not_finite": {"V": 1}, "wrong_kind": {"I": 1}}
