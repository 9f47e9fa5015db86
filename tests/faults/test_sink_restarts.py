"""Sinks killed with SIGKILL and restarted on the same port during a real ``vemonitor`` run.

redis-server is covered by test_process_faults.py and test_outage_e2e.py; these do the same
for mosquitto and for the EmonCms contract server run as its own process. Each run is the
BatteryMonitor block on a simulated BMV-700 at SPEED, so its ``sqlite`` store output lists
every row time the run produced: the ground truth the other output is checked against.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integrations.emoncms.contract_server import DEFAULT_KEY, Point, read_journal
from tests.servers import LOOPBACK, EmoncmsContractServer, MosquittoServer

SPEED = 5.0  # device seconds per real second
DURATION = 75  # device seconds of each run: 15 s real
DOWN = 2.0  # real seconds a killed server stays down (10 device seconds)
NODE = "bmv700"  # the simulated device's input, an MQTT topic level and an emoncms node
STATE_TOPIC = f"vemonitor/{NODE}/state"
RUN_TIMEOUT = 60.0  # real seconds for a run to end by itself
COMMON = ["block=BatteryMonitor", f"simulator.devices=[{NODE}]", f"speed={SPEED:g}",
          f"duration={DURATION}"]


def _vemonitor(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    """Start ``vemonitor`` (as test_process_faults does); its output goes to files in tmp_path."""
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    with (tmp_path / "vemonitor.out").open("w") as out, (tmp_path / "vemonitor.err").open("w") as err:
        return subprocess.Popen([sys.executable, "-c", "from vemonitor.cli import main; main()",
                                 *COMMON, f"state_dir={tmp_path / 'state'}", *args],
                                env=env, stdout=out, stderr=err, text=True)


def _finish(proc: subprocess.Popen[str], tmp_path: Path) -> str:
    """Wait for the run to end by itself (``duration``); return its stderr, failing on exit != 0."""
    proc.wait(RUN_TIMEOUT)
    err = (tmp_path / "vemonitor.err").read_text()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return err


def _reap(proc: subprocess.Popen[str]) -> None:
    """Kill a run that is still going (a failed test must leave no process behind)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def _poll(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Return whether ``condition`` came to hold within ``timeout`` real seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def _wait(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.02,
          run: tuple[subprocess.Popen[str], Path] | None = None) -> None:
    """Poll ``condition`` until it holds; fail the test naming ``what`` otherwise (with the
    run's exit status and stderr when given: the usual cause is a run that stopped early)."""
    if _poll(condition, timeout, step):
        return
    detail = ""
    if run is not None:
        proc, tmp_path = run
        err = (tmp_path / "vemonitor.err").read_text()
        detail = f"; vemonitor exit status {proc.poll()}, stderr:\n{err[-3000:]}"
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")


def _produced(state: Path) -> set[int]:
    """Return the row times of the run, from its local sqlite store (every row it made)."""
    with sqlite3.connect(state / "store.sqlite") as db:
        times = {int(t) for (t,) in db.execute("select time from rows where source = ?", (NODE,))}
    assert times, "the run produced no rows"
    return times


def _summary_output(state: Path, name: str) -> dict[str, Any]:
    """Return an output's delivery counters from the run's summary.json."""
    summary: dict[str, Any] = json.loads((state / "summary.json").read_text())
    return dict(summary["outputs"][name])


def _outbox_rows(state: Path, name: str) -> int:
    """Return how many rows an output's durable outbox still holds."""
    with sqlite3.connect(state / "outbox" / f"{name}.sqlite") as db:
        return int(db.execute("select coalesce(sum(rows), 0) from batches").fetchone()[0])


# ---------------------------------------------------------------------- mosquitto
class DurableMosquitto(MosquittoServer):
    """A mosquitto saving its sessions every second, so a killed broker comes back with them.

    The subscriber's persistent session (clean_session false, QoS 1) then survives the kill:
    what vemonitor publishes after the restart is queued for it even before it reconnects,
    so a missing row can only be vemonitor's, not a subscriber that reconnected late.
    """

    @property
    def database(self) -> Path:
        """Return mosquitto's persistence file."""
        return self.dir / "mosquitto.db"

    def command(self) -> list[str]:
        """Write MosquittoServer's config with persistence on (autosave every second)."""
        cmd = super().command()
        lines = [line for line in self.config.read_text().splitlines() if line != "persistence false"]
        lines += ["persistence true", f"persistence_location {self.dir}/", "autosave_interval 1"]
        self.config.write_text("\n".join(lines) + "\n")
        return cmd

    def __enter__(self) -> DurableMosquitto:
        self.start()
        return self


class StateWatcher:
    """A paho subscriber with a persistent session recording each state message's row time."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watcher-{port}",
                                  clean_session=False)
        self.client.reconnect_delay_set(1, 2)
        self.received: list[tuple[float, int]] = []  # (monotonic arrival, row time)
        self.sessions: list[bool] = []  # session_present of each CONNACK
        self.subscribed_at = 0.0  # epoch seconds
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(LOOPBACK, port, keepalive=5)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the watcher could not subscribe"

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        """Subscribe on a new session only: a restored one must already hold the subscription."""
        self.sessions.append(bool(flags.session_present))
        if not flags.session_present:
            client.subscribe(STATE_TOPIC, qos=1)

    def _on_subscribe(self, *args: Any) -> None:
        self.subscribed_at = time.time()
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((time.monotonic(), int(json.loads(msg.payload)["time"])))

    def times(self, after: float = 0.0) -> set[int]:
        """Return the row times of the messages that arrived after monotonic time ``after``."""
        with self._lock:
            return {t for arrived, t in self.received if arrived > after}

    def count(self) -> int:
        """Return how many state messages arrived, duplicates included."""
        with self._lock:
            return len(self.received)

    def quiet_for(self) -> float:
        """Return the seconds since the last message arrived."""
        with self._lock:
            return time.monotonic() - self.received[-1][0] if self.received else 0.0

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def test_mosquitto_killed_and_restarted_mid_run_every_row_arrives(tmp_path: Path) -> None:
    """mosquitto is SIGKILLed between two batches and back on its port DOWN s later: the
    rows made meanwhile wait in the outbox and arrive after the restart, then delivery
    goes on; every row time of the run reaches the subscriber (QoS 1: duplicates allowed)."""
    state = tmp_path / "state"
    with DurableMosquitto(workdir=tmp_path / "broker") as broker:
        watcher = StateWatcher(broker.port)
        proc = _vemonitor([f"+appConnectors.mqtt.local.host={LOOPBACK}",
                           f"+appConnectors.mqtt.local.port={broker.port}",
                           "+appConnectors.mqtt.local.timeout=2",
                           "+block.outputs.mqtt.ha.source=local",
                           "+block.outputs.mqtt.ha.cache_interval=5",
                           "+block.outputs.mqtt.ha.delivery.retry_max=4"], tmp_path)
        try:
            _wait(lambda: broker.database.exists()
                  and broker.database.stat().st_mtime > watcher.subscribed_at + 0.01, 10,
                  "mosquitto to save the watcher's session")
            _wait(lambda: len(watcher.times()) >= 10, 20, "10 rows delivered before the kill",
                  run=(proc, tmp_path))
            # Between two batches (one a real second): nothing acknowledged is left unsent to
            # the watcher, which a broker without a synchronous disk could lose.
            _wait(lambda: watcher.quiet_for() > 0.25, 5, "a pause between batches")
            last_before = max(watcher.times())
            killed = time.monotonic()
            broker.kill()
            time.sleep(DOWN)
            broker.start()
            restarted = time.monotonic()
            _finish(proc, tmp_path)
            produced = _produced(state)
            _poll(lambda: produced <= watcher.times(), 10)  # the asserts below say what is missing
        finally:
            _reap(proc)
            watcher.close()
    received = watcher.times()
    assert watcher.sessions[0] is False and all(watcher.sessions[1:]), (
        f"test setup: the restarted broker lost the watcher's session {watcher.sessions}")
    assert len(watcher.sessions) >= 2, "the watcher never reconnected"
    assert produced <= received, f"rows never delivered: {sorted(produced - received)}"
    assert received <= produced, f"rows the run never made: {sorted(received - produced)}"
    # The rows made while the broker was down came later, from the outbox.
    down_until = last_before + SPEED * (restarted - killed)
    backlog = {t for t in produced if last_before < t <= down_until}
    assert len(backlog) >= 0.8 * SPEED * DOWN, sorted(backlog)
    assert backlog <= watcher.times(after=restarted)
    assert max(produced) >= down_until + 10, "the run did not go on after the restart"
    stats = _summary_output(state, "ha")
    assert stats["errors"] >= 1 and stats["outages"] >= 1, stats
    assert _outbox_rows(state, "ha") == 0
    assert watcher.count() >= len(produced)


# ---------------------------------------------------------------------- emoncms
EMON_HOLD = 0.3  # real seconds the server waits between storing a request and answering it


def _store(journal: Path) -> dict[str, set[int]]:
    """Return the server's store as input name -> times, asserting one node and no duplicate.

    Points are keyed by (node, name, time) as emoncms's feeds are; a resent batch only
    replaces values, so a time stored under two values would be a duplicate."""
    keyed: dict[tuple[str, str, int], float] = {}
    for batch in read_journal(journal):
        for p in batch:
            previous = keyed.setdefault((p.node, p.name, p.time), p.value)
            assert previous == p.value, f"{p} stored before as {previous}"
    assert {node for node, _, _ in keyed} == {NODE}, sorted(keyed)[:5]
    names: dict[str, set[int]] = {}
    for _node, name, when in keyed:
        names.setdefault(name, set()).add(when)
    return names


def _times(batches: list[list[Point]]) -> set[int]:
    """Return the row times of some stored requests."""
    return {p.time for batch in batches for p in batch}


@pytest.mark.parametrize("strip_authorization", [False, True], ids=["header", "stripped"])
def test_emoncms_server_killed_and_restarted_mid_run_loses_nothing(
        tmp_path: Path, strip_authorization: bool) -> None:
    """The EmonCms server (its own process, storing to disk before answering) is SIGKILLed
    after storing a request but before answering it, and restarted DOWN s later: that
    request is sent again, the rows made meanwhile arrive from the outbox, and at the end
    every row time of the run is stored once per input name, at its own second, with
    nothing else; the batch sent at shutdown included. Behind a web server dropping the
    Authorization header (``stripped``), the default ``auth: auto`` says so once and
    sends the key in the POST body, with the same result and the key in no output."""
    state = tmp_path / "state"
    with EmoncmsContractServer(workdir=tmp_path / "emoncms", apikey=DEFAULT_KEY,
                               slow=EMON_HOLD,
                               strip_authorization=strip_authorization) as server:
        proc = _vemonitor([f"+appConnectors.emoncms.local.addr={server.url}",
                           f"+appConnectors.emoncms.local.apikey={DEFAULT_KEY}",
                           "+appConnectors.emoncms.local.timeout=2",
                           # The default time=0: absolute row times, whatever the clocks.
                           "+block.outputs.emoncms.em.source=local",
                           "+block.outputs.emoncms.em.cache_interval=5",
                           f"+block.outputs.emoncms.em.columns={{{NODE}:[V,SOC]}}",
                           "+block.outputs.emoncms.em.delivery.retry_max=4"], tmp_path)
        try:
            _wait(lambda: len(read_journal(server.journal)) >= 3, 20, "3 requests stored",
                  run=(proc, tmp_path))
            stored = len(read_journal(server.journal))
            # Right after the next request is stored, while its answer is held back.
            _wait(lambda: len(read_journal(server.journal)) > stored, 5, "a new request",
                  step=0.005)
            killed = time.monotonic()
            server.kill()
            before = read_journal(server.journal)
            time.sleep(DOWN)
            server.start()
            restarted = time.monotonic()
            _finish(proc, tmp_path)
        finally:
            _reap(proc)
    produced = _produced(state)
    journal = read_journal(server.journal)
    assert journal[:len(before)] == before, "the restarted server lost acknowledged points"
    store = _store(server.journal)
    assert len(store) == 2, sorted(store)  # V (under its ref_cols name) and SOC
    for name, times in store.items():
        assert times == produced, (name, sorted(produced - times), sorted(times - produced))
    resent = _times(journal[len(before):])
    unanswered = _times(before[-1:])
    assert unanswered <= resent, "the request killed before its answer was not sent again"
    last_before = max(_times(before))
    down_until = last_before + SPEED * (restarted - killed)
    backlog = {t for t in produced if last_before < t <= down_until}
    assert len(backlog) >= 0.8 * SPEED * DOWN, sorted(backlog)
    assert backlog <= resent
    assert max(produced) >= down_until + 10, "the run did not go on after the restart"
    stats = _summary_output(state, "em")
    assert stats["errors"] >= 1 and stats["outages"] >= 1, stats
    assert _outbox_rows(state, "em") == 0
    err = (tmp_path / "vemonitor.err").read_text()
    out = (tmp_path / "vemonitor.out").read_text()
    assert DEFAULT_KEY not in err + out
    fallbacks = err.count("sending the key in the POST body from now on")
    assert fallbacks == (1 if strip_authorization else 0), err[-3000:]
