"""Issue 25 point 3, time you can trust (real mosquitto).

* A wall-clock step back (an NTP step, ``date -s``): before, no row was made for as many
  seconds as the step, with no log line, and the summary said "(0 s)". Now ticks follow
  the step: rows keep coming, one WARNING, counted in the summary.
* A row stamped far from the run's clock (an edge with a wrong clock, ``"time": 0``):
  before, future-stamped messages were held unacknowledged (filling the broker's receive
  window: every site blocked) and ``time: 0`` reached the outputs. Now each such row is
  refused (``dropped.time_far``), acknowledged, said once an hour; the others flow.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.engine.helpers import Recorder, registry_with_recorders
from tests.servers import MosquittoServer
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine


class SteppedClock(SystemClock):
    """The wall clock plus an offset a test may step (what ``date -s`` does to time())."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def _config(tmp_path: Path, port: int, **top: Any) -> dict[str, Any]:
    return {"state_dir": str(tmp_path / "state"), **top,
            "block": {"name": "central", "inputs": {"mqtt": {"fleet": {
                "source": "broker", "topic": "fleet/{site}/{node}/state",
                "time_interval": 1, "ack_after": 0}}},
                "outputs": {"record": {"seen": {"cache_interval": 1}}}},
            "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": port,
                                                  "protocol": "5"}}}}


def _start(config: dict[str, Any], clock: SystemClock, duration: float | None
           ) -> tuple[Engine, threading.Thread, dict[str, Recorder]]:
    recorders: dict[str, Recorder] = {}
    registry = registry_with_recorders(recorders)
    engine = Engine(build_run(config, registry), registry, clock)
    runner = threading.Thread(target=engine.run, args=(duration,))
    runner.start()
    source = next(iter(engine.sources.values()))
    end = time.monotonic() + 30
    while not source.stats()["available"] and time.monotonic() < end:
        time.sleep(0.1)
    time.sleep(0.5)  # the subscription follows the connection
    return engine, runner, recorders


def _client(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_rows_keep_coming_after_the_clock_steps_back(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The clock steps back 60 s mid-run: rows stamped by it keep being stored within
    seconds, one WARNING says so, the summary counts it and its seconds are not 0."""
    caplog.set_level(logging.WARNING, "vemonitor.engine.core")
    clock = SteppedClock()
    with MosquittoServer(workdir=tmp_path / "mqtt") as broker:
        engine, runner, recorders = _start(_config(tmp_path, broker.port), clock, None)
        client = _client(broker.port, "edge-step")
        try:
            def publish(seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    payload = json.dumps({"time": clock.now(), "V": 12.5})
                    client.publish("fleet/boat/bmv/state", payload, qos=1).wait_for_publish(5)
                    time.sleep(0.3)

            publish(2.5)
            clock.offset -= 60.0
            stepped_at = clock.now()
            publish(5.0)
        finally:
            client.loop_stop()
            client.disconnect()
            engine.stop()
            runner.join(60)
    # Rows stamped after the step lie 60 s before the ones stamped before it.
    after = [r for r in recorders["seen"].rows() if stepped_at - 1 <= r.time < stepped_at + 30]
    assert len(after) >= 3, "no row after the step back"
    lines = [r.getMessage() for r in caplog.records if "stepped back" in r.getMessage()]
    assert len(lines) == 1, lines
    summary = engine.summary()
    assert summary["clock_steps_back"] == 1
    assert summary["seconds"] >= 5


def test_far_stamped_rows_are_refused_one_by_one(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """An edge with its clock 10 days ahead floods 3000 messages and another sends
    ``"time": 0``: each is refused and acknowledged; every good site's row is stored."""
    caplog.set_level(logging.WARNING, "vemonitor.engine.workers")
    with MosquittoServer(workdir=tmp_path / "mqtt") as broker:
        engine, runner, recorders = _start(_config(tmp_path, broker.port), SystemClock(), None)
        client = _client(broker.port, "edges")
        try:
            ahead = time.time() + 10 * 86400
            infos = [client.publish("fleet/wrong/bmv/state",
                                    json.dumps({"time": ahead + i, "V": 12.0}), qos=1)
                     for i in range(3000)]
            infos.append(client.publish("fleet/zero/bmv/state",
                                        json.dumps({"time": 0, "V": 12.0}), qos=1))
            base = float(int(time.time()) - 10)
            infos += [client.publish(f"fleet/good{n}/bmv/state",
                                     json.dumps({"time": base + i, "V": 12.5}), qos=1)
                      for n in range(3) for i in range(5)]
            for info in infos:
                info.wait_for_publish(30)
            # Until every message is settled (the good rows stored, all acknowledged), not
            # a fixed duration: 3016 QoS 1 messages take seconds more on a busy machine.
            source = next(iter(engine.sources.values()))
            end = time.monotonic() + 60
            while time.monotonic() < end and (
                    len(recorders["seen"].rows()) < 15 or source.stats()["acked"] < 3016):
                time.sleep(0.1)
        finally:
            client.loop_stop()
            client.disconnect()
            engine.stop()
            runner.join(60)
    stored = {(r.values["site"], r.time) for r in recorders["seen"].rows()}
    assert stored == {(f"good{n}", base + i) for n in range(3) for i in range(5)}
    stats = engine.inputs[0].stats
    assert stats.dropped["time_far"] == 3001
    assert next(iter(engine.sources.values())).stats()["acked"] == 3000 + 1 + 15
    lines = [r.getMessage() for r in caplog.records if "max_time_skew" in r.getMessage()]
    assert len(lines) == 1, lines


def test_max_time_skew_is_never_zero(tmp_path: Path) -> None:
    """`max_time_skew: 0` would refuse every row: a configuration error naming the key."""
    from vemonitor.api import ConfigError
    from vemonitor.bounds import RUN, check

    with pytest.raises(ConfigError, match="max_time_skew"):
        check({"max_time_skew": 0}, RUN)
