"""A refusal retrying cannot fix, in a running block: said once, every row kept, then delivered.

The block runs on hw_sim with ``compress: true`` against a stock EmonCms (the
contract server, which like PHP does not inflate request bodies): every batch earns
``200 {"success": false, "message": "Format error ..."}``. The sender must report
it once as a refusal with the fix, keep every row in the outbox and not hammer the
server; once the EmonCms side is fixed (a proxy inflating bodies is put in front),
delivery resumes by itself and every row lands once, at its own second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import Recorder, block_config, running
from tests.integrations.emoncms.contract_server import DEFAULT_KEY, ContractServer
from vemonitor.clock import ScaledClock, SystemClock

SPEED = 10.0  # device seconds per real second
AUTH_RETRY = 20.0  # device seconds between tries of a refused (or unauthorised) output


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def test_format_error_keeps_every_row_and_delivery_resumes_once_fixed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """compress: true on stock EmonCms: one ERROR naming the fix, rows kept, few requests;
    inflating proxy added: the backlog arrives, every row at its own second, once."""
    clock = ScaledClock(SystemClock(), SPEED)
    server = ContractServer(clock=clock.now).start()
    recorders: dict[str, Recorder] = {}
    inputs = {"bmv700": {"source": "bmv700", "time_interval": 1, "columns": ["V", "SOC"]}}
    outputs: dict[str, Any] = {
        "record": {"all": {"time_interval": 1, "cache_interval": 5}},
        "emoncms": {"em": {"source": "local", "time_interval": 1, "cache_interval": 5,
                           "delivery": {"auth_retry": AUTH_RETRY}}}}
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
    config["appConnectors"]["emoncms"] = {"local": {
        "addr": server.url, "apikey": DEFAULT_KEY, "timeout": 2, "compress": True}}
    try:
        with caplog.at_level(logging.INFO), running(
                config, recorders, ["bmv700"], tmp_path / "sim", speed=SPEED,
                clock=clock) as (engine, _sim):
            output = next(o for o in engine.outputs if o.spec.name == "em")
            runner = threading.Thread(target=engine.run, daemon=True)
            runner.start()
            _wait(lambda: output.sender.stats.rejected, 30, "the refusal")
            _wait(lambda: output.outbox.depth()["rows"] >= 20, 30, "20 rows kept")
            requests_while_refused = server.request_count()
            assert server.stored() == []
            server.inflate = True  # the EmonCms side is fixed: no restart
            _wait(lambda: output.sender.stats.batches > 0
                  and output.outbox.depth()["rows"] == 0, 30 + AUTH_RETRY / SPEED,
                  "the kept rows delivered")
            engine.stop()
            runner.join(30)
    finally:
        server.stop()
    produced = {int(r.time) for r in recorders["all"].rows("bmv700")}
    stored = server.stored()
    for name in ("V", "SOC"):
        times = sorted(p.time for p in stored if p.name == name)
        assert len(times) == len(set(times))
        assert set(times) == produced, (name, sorted(produced - set(times)))
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.ERROR and "refuses the data" in r.getMessage()]
    assert len(errors) == 1, errors
    assert "Format error" in errors[0] and "compress: false" in errors[0]
    # Refused batches were tried again at the slow pace, not in a storm.
    assert requests_while_refused <= 4, requests_while_refused
