"""Fleet benchmark: N simulated sites -> mosquitto -> K central vemonitors -> VictoriaMetrics
and a Redis Cluster. Not a timed test: it prints (and with --write-doc stores) figures for
docs/scaling.md.

Topology (all on 127.0.0.1, every server started here):

* ``hw_sim`` simulates N BMV-700s (one process; its CPU is not counted);
* E edge vemonitor processes, each reading N/E devices (one input per device, one
  "site" per device: ``fleet/edge<j>/d<i>/state``) and publishing every row with the MQTT
  output (QoS 1, durable outbox, cache_interval 1: one publish per row);
* mosquitto (persistence on, as deployed);
* K central vemonitor processes sharing ``$share/central/fleet/+/+/state`` (MQTT input,
  ack_after 5), each writing to VictoriaMetrics (influxDb2 output, gzip, a POST per
  second) and to a 3-master/3-replica Redis Cluster (HmapTimeSeries, wait_replicas 1);
* an observer subscribed to the same topics (not shared) measures row -> broker
  latency: receive time minus the row's time (the start of its 1 s slot; the edge
  makes the row as soon as the device's frame for the slot is complete), and the
  centre reports each row's age when its input hands it to the outputs (mean / max).

CPU is read from /proc (benchmarks/procstat.py) for each process over the measured
window after a warm-up; "CPU per row" is CPU seconds / rows. Rows at the centre are
the central inputs' row counts (summary.json), rows stored are VictoriaMetrics samples.

Run from the repo root: ``python benchmarks/bench_fleet.py [--sites 32 128]
[--edges 2] [--centrals 2] [--seconds 30] [--write-doc]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from benchmarks.procstat import cpu_rss  # noqa: E402
from tests.integrations.influxdb2.servers import VictoriaMetricsServer  # noqa: E402
from tests.integrations.mqtt_input.fleet import PersistentMosquitto  # noqa: E402
from tests.integrations.redis.cluster import RedisClusterServers  # noqa: E402

VEMONITOR = [sys.executable, "-m", "vemonitor"]
COLUMNS = ["V", "I", "P", "SOC"]
WARM_UP = 12.0
DOC = ROOT / "docs" / "scaling.md"
MARK = "<!-- bench_fleet results -->"


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, HOME=str(home), XDG_STATE_HOME=str(home))


def _write(folder: Path, conf: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vm_conf.yaml").write_text(json.dumps(conf))  # JSON is YAML
    return folder


def edge_conf(folder: Path, edge: int, devices: list[int], sim_dir: Path, port: int) -> Path:
    """Return a legacy config: one input per simulated device, all published over MQTT."""
    serial = {f"d{i}": {"serialPort": f"{sim_dir}/ttyVE_d{i}"} for i in devices}
    inputs = [{"name": f"d{i}", "source": f"d{i}", "time_interval": 1, "columns": COLUMNS}
              for i in devices]
    mqtt_out = {"source": "broker", "base_topic": f"fleet/edge{edge}", "discovery": False,
                "time_interval": 1, "cache_interval": 1, "qos": 1}
    return _write(folder, {
        "appBlocks": [{"name": f"edge{edge}", "inputs": {"serial": inputs},
                       "outputs": {"mqtt": [mqtt_out]}}],
        "appConnectors": {"serial": serial, "mqtt": {"broker": {
            "host": "127.0.0.1", "port": port, "client_id": f"bench-edge{edge}"}}}})


def central_conf(folder: Path, port: int, vm_url: str, redis_nodes: list[str]) -> Path:
    """Return a legacy config: shared MQTT input -> VictoriaMetrics and the Redis Cluster."""
    item = {"name": "fleet", "source": "broker", "time_interval": 1,
            "topic": "fleet/{site}/{node}/state", "share_group": "central", "ack_after": 5}
    return _write(folder, {
        "appBlocks": [{"name": "central", "inputs": {"mqtt": [item]}, "outputs": {
            "influxDb2": [{"source": "vm", "db": "fleet", "time_interval": 1,
                           "cache_interval": 1}],
            "redis": [{"source": "cluster", "redis_node": "fleet", "time_interval": 1,
                       "cache_interval": 1}]}}],
        "appConnectors": {
            "mqtt": {"broker": {"host": "127.0.0.1", "port": port, "protocol": "5"}},
            "influxDb2": {"vm": {"host": vm_url}},
            "redis": {"cluster": {"startup_nodes": redis_nodes, "wait_replicas": 1}}}})


class Observer:
    """A plain (not shared) subscriber timing each state message against its row's slot end."""

    def __init__(self, port: int) -> None:
        self.delays: list[float] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-observer")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("fleet/+/+/state", qos=0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.measuring = False

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if self.measuring:
            self.delays.append(time.time() - json.loads(message.payload)["time"])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _cpu(pids: list[int]) -> float:
    return sum(cpu_rss(pid)[0] for pid in pids)


def run_fleet(sites: int, edges: int, centrals: int, seconds: float) -> dict[str, Any]:
    """Run one fleet size and return its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        base = Path(tmp)
        with VictoriaMetricsServer(workdir=base / "vm") as vm, \
                PersistentMosquitto(workdir=base / "broker") as broker, \
                RedisClusterServers(base / "cluster") as cluster:
            devices = [f"bmv700:d{i}" for i in range(sites)] if edges else []
            sim = subprocess.Popen([sys.executable, "-m", "hw_sim.cli", *devices, "--dir",
                                    str(base / "sim")], stdout=subprocess.PIPE, text=True,
                                   ) if devices else None
            for _ in devices:
                assert sim is not None and sim.stdout is not None
                sim.stdout.readline()
            procs: dict[str, list[subprocess.Popen[bytes]]] = {"edge": [], "central": []}
            conf = central_conf(base / "central_conf", broker.port, vm.url,
                                cluster.startup_nodes)
            for k in range(centrals):
                procs["central"].append(subprocess.Popen(
                    [*VEMONITOR, f"config_dir={conf}", "block=central",
                     f"state_dir={base / f'central{k}'}"], env=_env(base),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(3)
            synthetic = SyntheticSites(broker.port, sites) if edges == 0 else None
            for j in range(edges):
                devices = list(range(j, sites, edges))
                folder = edge_conf(base / f"edge{j}_conf", j, devices, base / "sim", broker.port)
                procs["edge"].append(subprocess.Popen(
                    [*VEMONITOR, f"config_dir={folder}", f"block=edge{j}",
                     f"state_dir={base / f'edge{j}'}"], env=_env(base),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            observer = Observer(broker.port)
            watcher = StoreWatcher(vm)
            time.sleep(WARM_UP)
            groups = {"edge": [p.pid for p in procs["edge"]],
                      "central": [p.pid for p in procs["central"]],
                      "broker": [broker.process.pid] if broker.process else [],
                      "victoriametrics": [vm.process.pid] if vm.process else [],
                      "redis_cluster": [n.process.pid for n in cluster.nodes if n.process]}
            before = {name: _cpu(pids) for name, pids in groups.items()}
            samples0 = _count(vm)
            observer.measuring = watcher.measuring = True
            began = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - began
            observer.measuring = watcher.measuring = False
            after = {name: _cpu(pids) for name, pids in groups.items()}
            samples1 = _count(vm)
            observer.close()
            watcher.close()
            if synthetic is not None:
                synthetic.close()
            for process in procs["edge"] + procs["central"]:
                process.send_signal(signal.SIGTERM)
            for process in procs["edge"] + procs["central"]:
                process.wait(60)
            if sim is not None:
                sim.terminate()
                sim.wait(10)
            central_ages = [_summary(base / f"central{k}") for k in range(centrals)]
    stored_rows_per_s = (samples1 - samples0) / len(COLUMNS) / elapsed
    cpu = {name: 100 * (after[name] - before[name]) / elapsed for name in groups}
    # Rows/s as the observer saw them; the store's count if the observer missed them.
    rows_per_s = len(observer.delays) / elapsed or stored_rows_per_s
    per_row_ms = {name: round(10 * value / max(rows_per_s, 1e-9), 3)  # % -> ms per row
                  for name, value in cpu.items()}
    return {"sites": sites, "edges": edges, "centrals": centrals, "seconds": round(elapsed),
            "offered_rows_s": sites, "published_rows_s": round(rows_per_s, 1),
            "stored_rows_s": round(stored_rows_per_s, 1),
            "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
            "cpu_ms_per_row": per_row_ms,
            "latency_row_broker_s": {"p50": round(_percentile(observer.delays, 0.5), 3),
                                      "p99": round(_percentile(observer.delays, 0.99), 3)},
            "latency_row_stored_s": {"p50": round(_percentile(watcher.delays, 0.5), 3),
                                     "p99": round(_percentile(watcher.delays, 0.99), 3),
                                     "samples": len(watcher.delays)},
            "central_age_s": {"mean": round(statistics.mean(a[0] for a in central_ages), 3),
                              "max": round(max(a[1] for a in central_ages), 3)}}


class StoreWatcher:
    """Row -> queryable in VictoriaMetrics: polls the newest sample time of every series.

    Every ``period`` s it asks ``timestamp(vemonitor_SOC)`` (the newest sample of each
    site and node); a newer time than last seen is a row that became queryable since the
    last poll: its latency is the poll time minus the row's time (resolution: the period).
    """

    def __init__(self, vm: VictoriaMetricsServer, period: float = 0.5) -> None:
        self.vm = vm
        self.period = period
        self.delays: list[float] = []
        self.newest: dict[tuple[str, str], float] = {}
        self.measuring = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import urllib.parse

        from tests.integrations.influxdb2.servers import http_get

        query = urllib.parse.urlencode({"query": 'timestamp({__name__="vemonitor_SOC"})'})
        while not self.stop.wait(self.period):
            status, body = http_get(f"{self.vm.url}/api/v1/query?{query}")
            now = time.time()
            if status != 200:
                continue
            for series in json.loads(body)["data"]["result"]:
                key = (series["metric"].get("site", ""), series["metric"].get("node", ""))
                stamp = float(series["value"][1])
                if stamp > self.newest.get(key, 0.0):
                    if self.measuring and key in self.newest:
                        self.delays.append(now - stamp)
                    self.newest[key] = stamp

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


class SyntheticSites:
    """``sites`` sites publishing one state row a second each, as the MQTT output does
    (integrations/mqtt/sink.py's state_payload, QoS 1), from this process: the centre's
    load without the edges' serial reading, to find where the centre saturates."""

    def __init__(self, port: int, sites: int) -> None:
        from vemonitor_integrations.mqtt.sink import state_payload

        from vemonitor.model import Row

        self.payload = lambda t, i: state_payload(Row(t, f"d{i}", {
            "V": 12.5 + (i % 10) / 10, "I": -1.5, "P": -19, "SOC": 80 + i % 20}))
        self.sites = sites
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-synthetic")
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.late = 0  # seconds in which publishing did not finish within the second
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            second = float(int(time.time()))
            for i in range(self.sites):
                self.client.publish(f"fleet/syn{i % 50}/d{i}/state", self.payload(second, i),
                                    qos=1)
            if time.time() >= second + 1:
                self.late += 1
            self.stop.wait(max(second + 1 - time.time(), 0))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()


def _count(vm: VictoriaMetricsServer) -> int:
    """Return the number of samples VictoriaMetrics holds for the fleet's columns."""
    data = vm.query('sum(count_over_time({__name__=~"vemonitor_(V|I|P|SOC)"}[1h]))')
    result = data.get("result", [])
    return int(float(result[0]["value"][1])) if result else 0


def _summary(state_dir: Path) -> tuple[float, float]:
    """Return the central input's mean and max row age at hand-off (s)."""
    try:
        summary = json.loads((state_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return float("nan"), float("nan")
    fleet = summary["inputs"]["fleet"]
    return float(fleet["age_mean"]), float(fleet["age_max"])


def _table(results: list[dict[str, Any]]) -> str:
    head = ("| sites (rows/s offered) | published rows/s | stored rows/s | CPU % edge | "
            "broker | centre | VictoriaMetrics | Redis Cluster | row->broker p50 / p99 s "
            "| row->queryable p50 / p99 s | centre hand-off age mean / max s |")
    lines = [head, "|" + "---|" * 11]
    for r in results:
        c = r["cpu_percent"]
        lat = r["latency_row_broker_s"]
        end = r["latency_row_stored_s"]
        age = r["central_age_s"]
        lines.append(f"| {r['sites']} | {r['published_rows_s']} | {r['stored_rows_s']} | "
                     f"{c['edge']} | {c['broker']} | {c['central']} | {c['victoriametrics']} | "
                     f"{c['redis_cluster']} | {lat['p50']} / {lat['p99']} | "
                     f"{end['p50']} / {end['p99']} | "
                     f"{age['mean']} / {age['max']} |")
    lines += ["", "CPU per row (ms of one core):", ""]
    lines += [f"- {r['sites']} sites: " + ", ".join(f"{k} {v}" for k, v in
                                                   r["cpu_ms_per_row"].items())
              for r in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--edges", type=int, default=2,
                        help="edge processes; 0: synthetic sites published from here")
    parser.add_argument("--centrals", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    results = []
    for sites in args.sites:
        result = run_fleet(sites, args.edges, args.centrals, args.seconds)
        print(json.dumps(result), flush=True)
        results.append(result)
    table = _table(results)
    print(table)
    if args.write_doc and DOC.exists():
        text = DOC.read_text()
        machine = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, "
                   f"{os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"{args.edges} edge and {args.centrals} central processes, "
                   f"{args.seconds:g} s per size after {WARM_UP:g} s warm-up; load average "
                   f"{os.getloadavg()[0]:.1f} at the end (a machine shared with other work).")
        block = f"{MARK}\n{machine}\n\n{table}\n{MARK}"
        parts = text.split(MARK)
        if len(parts) == 3:
            DOC.write_text(parts[0] + block + parts[2])


if __name__ == "__main__":
    main()
