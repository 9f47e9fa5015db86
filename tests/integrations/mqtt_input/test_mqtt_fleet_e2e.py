"""Edge -> mosquitto -> 2 central vemonitors (shared subscription) -> VictoriaMetrics.

Two edge sites publish their BMV rows through their MQTT output (durable outbox);
two central processes share ``$share/central/fleet/+/+/state`` and write to
VictoriaMetrics. The broker is restarted and one central SIGKILLed (then started
again, as systemd would) mid-run: every row of every site is stored exactly once,
with its own time and identity.

An edge whose MQTT output is still backing off after the broker's restart when its run
ends keeps the rest in its durable outbox (DESIGN.md, delivery guarantees): the next
start sends it first. Under load (three suites at once) that happened, so each edge is
started again, as systemd would, until its outbox is empty; the rows of those runs are
produced rows too.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.engine.helpers import Recorder, block_config, running
from tests.integrations.influxdb2.servers import VictoriaMetricsServer, wait_for
from tests.integrations.mqtt_input.fleet import Central, PersistentMosquitto, central_conf

EDGE_RUN = 22.0  # seconds the edges run
BROKER_DOWN = (5.0, 7.0)  # seconds after the edges start
CENTRAL_KILL = (11.0, 13.0)
DRAIN_RUN = 5.0  # seconds of an edge's restart that delivers what its outbox kept
DRAIN_RUNS = 6  # restarts at most per edge (one is enough unless the machine is starved)

pytestmark = pytest.mark.timeout(240)


def _edge(tmp_path: Path, site: str, broker_port: int, recorders: dict[str, Recorder],
          waiting: dict[str, int], seconds: float = EDGE_RUN) -> None:
    """Run one edge site for ``seconds``: BMV -> (record, mqtt fleet/<site>).

    ``waiting[site]``: the rows its MQTT output left in its outbox at the end.
    """
    sim_dir = tmp_path / site / "sim"
    inputs = {"bmv700": {"source": "bmv700", "time_interval": 1, "columns": ["V", "I", "SOC"]}}
    outputs = {"record": {site: {"cache_interval": 1}},
               "mqtt": {"up": {"source": "broker", "base_topic": f"fleet/{site}",
                               "discovery": False, "cache_interval": 1}}}
    config = block_config(sim_dir, inputs, outputs, tmp_path / site / "state")
    config["block"]["name"] = site
    config["appConnectors"]["mqtt"] = {"broker": {"host": "127.0.0.1", "port": broker_port,
                                                  "client_id": f"edge-{site}"}}
    with running(config, recorders, ["bmv700"], sim_dir) as (engine, _sim):
        engine.run(seconds)
    waiting[site] = sum(output.waiting_at_stop or 0 for output in engine.outputs
                        if output.spec.name == "up")


def test_every_row_exactly_once_across_broker_restart_and_central_kill(tmp_path: Path) -> None:
    """Each (site, node, time) an edge produced is one sample in VictoriaMetrics."""
    with VictoriaMetricsServer(workdir=tmp_path / "vm") as vm, \
            PersistentMosquitto(workdir=tmp_path / "broker") as broker:
        conf = central_conf(tmp_path / "central_conf", broker.port, vm.url)
        centrals = [Central(conf, tmp_path / f"central{i}", tmp_path / "home") for i in (1, 2)]
        for central in centrals:
            central.start()
        for central in centrals:  # both subscribed before the first row (sessions persist)
            central.wait_subscribed()
        recorders: dict[str, Recorder] = {}
        waiting: dict[str, int] = {}
        edges = [threading.Thread(target=_edge,
                                  args=(tmp_path, site, broker.port, recorders, waiting))
                 for site in ("site1", "site2")]
        started = time.monotonic()
        for edge in edges:
            edge.start()

        def at(seconds: float) -> None:
            time.sleep(max(started + seconds - time.monotonic(), 0))

        at(BROKER_DOWN[0])
        broker.stop()
        at(BROKER_DOWN[1])
        broker.start()
        at(CENTRAL_KILL[0])
        centrals[0].kill()
        at(CENTRAL_KILL[1])
        centrals[0].start()
        for edge in edges:
            edge.join(EDGE_RUN + 60)
        for site in ("site1", "site2"):
            for _ in range(DRAIN_RUNS):
                if not waiting[site]:
                    break
                _edge(tmp_path, site, broker.port, recorders, waiting, DRAIN_RUN)
        assert waiting == {"site1": 0, "site2": 0}  # every edge's outbox delivered
        produced = {(site, r.input, r.time) for site in ("site1", "site2")
                    for r in recorders[site].rows()}
        assert len(produced) >= 2 * (EDGE_RUN - 4)

        def stored() -> list[tuple[str, str, float]]:
            return [(labels["site"], labels["node"], t) for labels, t, _ in
                    vm.samples("vemonitor_SOC")]

        wait_for(lambda: {s for s in stored()} >= produced, deadline=60,
                 what="every produced row in VictoriaMetrics")
        codes = [central.stop() for central in centrals]
        final = stored()
        summaries = [central.summary() for central in centrals]
    assert codes == [0, 0]
    assert sorted(final) == sorted(produced)  # exactly once: nothing missing, nothing twice
    assert all(s["inputs"]["fleet"]["rows"] > 0 for s in summaries)  # the group shared the work
