"""Issue 25's soak: a FleetCentral process under good and hostile edges for minutes.

Topology, all on 127.0.0.1 (every server started here): edges publish through mosquitto
(holding every unacknowledged QoS 1 message, as a fleet's broker must) to ONE central
``vemonitor block=FleetCentral connectors=fleet`` process (shared subscription, ack_after
5) writing to VictoriaMetrics, a redis-server (streams, one per site and node) and the
local SQLite store.

The edges, publishing for ``--soak-seconds`` (CI: 600 s, the issue's 10 minutes):

* GOOD: 40 sites, one row a second each, stamped with the wall clock;
* FLOOD: every 30 s a burst of 1000 rows (100 sites x 10, stamped in the last hour),
  as a backlog after an edge's restart arrives; these are good rows too;
* HOSTILE, mixed at about 20 messages a second: nests 100,000 deep, 2 MiB payloads,
  NaN and Infinity, values of the wrong kind (a list, a string for a number), rows
  stamped 10 days ahead and ``"time": 0``, random bytes (invalid UTF-8 included),
  JSON that is not an object.

Then the central drains (until VictoriaMetrics holds every good row), is stopped with
SIGTERM, and every good row must be in each output exactly once: VictoriaMetrics
(sample per (site, time)), the Redis streams (entry per (site, time)) and the SQLite
store (row per (site, time)); nothing stamped 0 or 10 days ahead anywhere.

RSS: /proc/PID/status VmRSS of the central, sampled every 2 s. The bound asserted:
the maximum stays under the RSS after the warm-up (the first sample once the first
flood burst was taken) plus RSS_GROWTH. Why that margin: what the process may hold at
once is bounded by design, not by the run's length - the MQTT input's receive window
(paho's in-flight and queued messages, each refused above MAX_TEXT = 64 KiB before
parsing but received whole: a few 2 MiB payloads at a time), the memory cache
(max_data_points rows), and the outboxes' batches in flight; a leak (a counter per
message, a row kept per site and second) grows with the run and crosses it within
minutes at these rates. The end RSS must also be within RSS_GROWTH of the warm RSS.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion

from tests.integrations.influxdb2.servers import VictoriaMetricsServer
from tests.servers import LOOPBACK, MosquittoServer, RedisServer

pytestmark = pytest.mark.soak

GOOD_SITES = 40
FLOOD_EVERY = 30.0  # seconds between two flood bursts
FLOOD_SITES, FLOOD_ROWS = 100, 10  # one burst: 100 sites x 10 rows
HOSTILE_PER_SECOND = 20
HUGE = 2 * 1024 * 1024  # bytes of one huge payload
RSS_GROWTH_KIB = 64 * 1024  # the margin over the warm RSS (see the module's docstring)
DRAIN_DEADLINE = 600.0  # seconds for the central to store what the edges sent
SAMPLE_EVERY = 2.0  # seconds between two RSS samples


class HoldingMosquitto(MosquittoServer):
    """mosquitto holding every unacknowledged QoS 1 message (docs/scaling.md), and taking
    payloads as large as a hostile edge sends (its default limit is 256 MB anyway)."""

    def command(self) -> list[str]:
        command = super().command()
        with self.config.open("a") as conf:
            conf.write("\nmax_queued_messages 0\nmax_inflight_messages 0\n")
        return command


class Published:
    """The good rows the broker acknowledged, by (site, time); shared by the edge threads."""

    def __init__(self) -> None:
        self.rows: set[tuple[str, float]] = set()
        self.hostile = 0
        self.lock = threading.Lock()

    def add(self, site: str, stamp: float) -> None:
        with self.lock:
            self.rows.add((site, stamp))


def _client(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(LOOPBACK, port)
    client.loop_start()
    return client


def _good_edges(port: int, stop: threading.Event, published: Published) -> None:
    """GOOD_SITES sites, one row a second each, stamped with the wall clock."""
    client = _client(port, "soak-good")
    last = 0.0
    while not stop.is_set():
        stamp = float(int(time.time()))
        if stamp > last:
            last = stamp
            infos = [(f"g{n:02d}", client.publish(
                f"fleet/g{n:02d}/bmv/state",
                json.dumps({"time": stamp, "V": 12.0 + n / 100, "SOC": 80.5}), qos=1))
                for n in range(GOOD_SITES)]
            for site, info in infos:
                info.wait_for_publish(60)
                published.add(site, stamp)
        stop.wait(0.1)
    client.loop_stop()
    client.disconnect()


def _flood_edges(port: int, stop: threading.Event, published: Published) -> None:
    """Every FLOOD_EVERY s, 1000 rows at once from 100 sites (a backlog), each burst with
    sites and times of its own (a stream keeps at most max_items entries per site)."""
    client = _client(port, "soak-flood")
    burst = 0
    while not stop.wait(0 if burst == 0 else FLOOD_EVERY):
        base = float(int(time.time()) - 3600)
        infos = []
        for row in range(FLOOD_ROWS):
            for n in range(FLOOD_SITES):
                site = f"f{burst:03d}x{n:03d}"
                payload = json.dumps({"time": base + row, "V": 13.0, "SOC": 55.0})
                infos.append((site, base + row,
                              client.publish(f"fleet/{site}/bmv/state", payload, qos=1)))
        for site, stamp, info in infos:
            info.wait_for_publish(120)
            published.add(site, stamp)
        burst += 1
    client.loop_stop()
    client.disconnect()


def _hostile_payloads(now: float, count: int) -> list[bytes]:
    """Return one round of hostile messages (cycled through by the hostile edge)."""
    kinds: list[Callable[[], bytes]] = [
        lambda: b"[" * 100_000 + b"]" * 100_000,
        lambda: b'{"V": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        lambda: b'{"time": %d, "V": "' % now + b"x" * HUGE + b'"}',
        lambda: b'{"time": %d, "V": NaN, "SOC": Infinity}' % now,
        lambda: json.dumps({"time": now, "V": [1, 2], "SOC": "full"}).encode(),
        lambda: json.dumps({"time": now + 10 * 86400, "V": 12.0}).encode(),
        lambda: json.dumps({"time": 0, "V": 12.0}).encode(),
        lambda: os.urandom(200),
        lambda: b"\xff\xfe\x00garbage\x80",
        lambda: b"[1, 2, 3]",
    ]
    return [kinds[(count + i) % len(kinds)]() for i in range(HOSTILE_PER_SECOND)]


def _hostile_edges(port: int, stop: threading.Event, published: Published) -> None:
    """About HOSTILE_PER_SECOND hostile messages a second, on sites named h*."""
    client = _client(port, "soak-hostile")
    count = 0
    while not stop.wait(1.0):
        now = float(int(time.time()))
        payloads = _hostile_payloads(now, count)
        infos = [client.publish(f"fleet/h{(count + i) % 10}/bmv/state", payload, qos=1)
                 for i, payload in enumerate(payloads)]
        for info in infos:
            info.wait_for_publish(120)
        count += len(payloads)
        with published.lock:
            published.hostile = count
    client.loop_stop()
    client.disconnect()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every SAMPLE_EVERY s: (monotonic time, KiB)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_EVERY):
            try:
                self.samples.append((time.monotonic(), _rss_kib(self.pid)))
            except (OSError, AssertionError):
                return  # the process ended


def _central(tmp_path: Path, broker: int, vm_url: str, redis_port: int
             ) -> tuple[subprocess.Popen[bytes], Path]:
    state = tmp_path / "state"
    log = tmp_path / "central.log"
    args = [sys.executable, "-m", "vemonitor", "block=FleetCentral", "connectors=fleet",
            f"appConnectors.mqtt.broker.port={broker}", f"appConnectors.mqtt.broker.host={LOOPBACK}",
            f"appConnectors.influxDb2.tsdb.host={vm_url}",
            f"+appConnectors.redis.plain={{host:{LOOPBACK},port:{redis_port}}}",
            "block.outputs.redis.recent.source=plain",
            "+block.outputs.sqlite={store:{time_interval:1,cache_interval:5}}",
            f"state_dir={state}"]
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while "connected to mqtt broker" not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < end, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)
    time.sleep(0.5)  # the SUBSCRIBE follows the connection
    return process, state


def _vm_count(vm: VictoriaMetricsServer) -> int:
    data = vm.query('sum(count_over_time(vemonitor_V{site!~"h.*"}[3h]))')
    result = data.get("result") or []
    return int(float(result[0]["value"][1])) if result else 0


def _stored_vm(vm: VictoriaMetricsServer) -> list[tuple[str, float]]:
    return [(labels["site"], stamp) for labels, stamp, _ in vm.samples("vemonitor_V")]


def _stored_redis(port: int) -> list[tuple[str, float]]:
    client = redis.Redis(host=LOOPBACK, port=port, decode_responses=True)
    found = []
    for key in client.scan_iter("vemonitor:fleet/*", count=1000):
        if client.type(key) != "stream":
            continue
        site = key.split("/")[1]
        found += [(site, int(entry_id.split("-")[0]) / 1000.0)
                  for entry_id, _ in client.xrange(key)]
    client.close()
    return found


def _stored_sqlite(state: Path) -> list[tuple[str, float]]:
    conn = sqlite3.connect(state / "store.sqlite")
    found = [(json.loads(text).get("site", ""), stamp) for stamp, text
             in conn.execute('SELECT time, "values" FROM rows')]
    conn.close()
    return found


def test_fleet_central_soak(tmp_path: Path, soak_seconds: float) -> None:
    """Every good row once in each output, hostile ones nowhere, RSS bounded."""
    with HoldingMosquitto(workdir=tmp_path / "mqtt") as broker, \
            VictoriaMetricsServer(workdir=tmp_path / "vm") as vm, \
            RedisServer(workdir=tmp_path / "redis") as store:
        process, state = _central(tmp_path, broker.port, vm.url, store.port)
        sampler = RssSampler(process.pid)
        sampler.start()
        started = time.monotonic()
        published = Published()
        stop = threading.Event()
        edges = [threading.Thread(target=target, args=(broker.port, stop, published))
                 for target in (_good_edges, _flood_edges, _hostile_edges)]
        try:
            for edge in edges:
                edge.start()
            stop.wait(soak_seconds)
            stop.set()
            for edge in edges:
                edge.join(300)
            publishing_ended = time.monotonic()
            expected = set(published.rows)
            end = time.monotonic() + DRAIN_DEADLINE
            while _vm_count(vm) < len(expected) and time.monotonic() < end:
                assert process.poll() is None, "the central ended during the soak"
                time.sleep(2)
            drained = time.monotonic()
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            code = process.wait(120)
            sampler.halt.set()
            sampler.join(10)
        log = (tmp_path / "central.log").read_text(errors="replace")
        in_vm, in_redis = _stored_vm(vm), _stored_redis(store.port)
    in_sqlite = _stored_sqlite(state)
    summary = json.loads((state / "summary.json").read_text())
    rss = [kib for _, kib in sampler.samples]
    warm_at = started + min(FLOOD_EVERY + 5, soak_seconds / 2)
    warm = next((kib for at, kib in sampler.samples if at >= warm_at), rss[-1])
    report = {"seconds": soak_seconds, "good_rows": len(expected),
              "hostile_messages": published.hostile,
              "drain_s": round(drained - publishing_ended, 1),
              "rss_kib": {"first": rss[0], "warm": warm, "max": max(rss), "end": rss[-1]},
              "input": summary["inputs"]["fleet"], "source": summary["devices"]["broker"],
              "outputs": {k: {f: v[f] for f in ("rows", "errors", "rejected", "dropped_rows")}
                          for k, v in summary["outputs"].items()}}
    print("SOAK", json.dumps(report, default=str))
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    for name, stored in (("victoriametrics", in_vm), ("redis", in_redis),
                         ("sqlite", in_sqlite)):
        good = [row for row in stored if not row[0].startswith("h")]
        assert len(good) == len(set(good)), f"{name}: a good row stored twice"
        missing = expected - set(good)
        assert not missing, f"{name}: {len(missing)} good rows missing, e.g. {sorted(missing)[:3]}"
        assert set(good) == expected, f"{name}: rows nobody published"
        # Nothing stamped 0 or 10 days ahead reached any output.
        assert all(0 < stamp < time.time() + 86400 for _, stamp in stored), name
    # (Payloads over the input's MQTT 5 Maximum Packet Size are dropped by the broker
    # itself and never reach the central: no "too_large" is counted there.)
    rejected = summary["devices"]["broker"]["rejected"]
    assert {"too_deep", "not_json", "not_state"} <= set(rejected), rejected
    assert summary["inputs"]["fleet"]["dropped"].get("time_far", 0) > 0
    assert max(rss) <= warm + RSS_GROWTH_KIB, report["rss_kib"]
    assert rss[-1] <= warm + RSS_GROWTH_KIB, report["rss_kib"]
