"""Redis Cluster: the redis output (hashes and streams), cache and input on 3 masters + 3 replicas.

A master is SIGKILLed mid-run; its replica is promoted by the cluster. Writes wait for
one replica (``wait_replicas: 1``), so nothing acknowledged is lost in the failover,
and the idempotent scripts make the outbox's resends harmless: every row is stored once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from vemonitor_integrations.redis import layout
from vemonitor_integrations.redis.schema import RedisConnector, RedisInput
from vemonitor_integrations.redis.source import RedisSource

from tests.engine.helpers import Recorder, block_config, running
from tests.integrations.helpers import FakeClock
from tests.integrations.redis.cluster import RedisClusterServers
from vemonitor.api import Context

RUN = 16.0
KILL_AT = 4.0
pytestmark = pytest.mark.timeout(240)


def test_keys_one_script_writes_share_a_hash_slot() -> None:
    """Hash tags put the SET, hashes, indexes and meta of a redis_node in one slot."""
    from redis.crc import key_slot

    names = layout.Names(cluster=True)
    keys = [names.meta("site"), names.hmap_set("site"), names.hmap("site", "bmv"),
            names.index("site", "mppt")]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    stream = [names.stream_meta("vm:", "bmv"), names.stream("vm:", "bmv")]
    assert len({key_slot(k.encode()) for k in stream}) == 1


def test_cluster_failover_loses_nothing_and_stores_every_row_once(tmp_path: Path) -> None:
    """Rows of two devices through HmapTimeSeries and Stream outputs and a redis_cache on the
    cluster; the master of the hashes' slot is killed mid-run: each row is read back once."""
    with RedisClusterServers(tmp_path / "cluster") as cluster:
        connector = {"startup_nodes": cluster.startup_nodes, "wait_replicas": 1,
                     "socket_timeout": 1, "socket_connect_timeout": 1}
        fast = {"retry_initial": 0.5, "retry_max": 1.0}
        inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "SOC"]},
                  "mppt": {"source": "mppt", "time_interval": 1, "columns": ["V", "PPV"]}}
        outputs = {"record": {"seen": {"cache_interval": 1}},
                   "redis": {"hashes": {"source": "fleet", "redis_node": "site",
                                        "cache_interval": 2, "delivery": fast},
                             "streams": {"source": "fleet", "structure": "Stream",
                                         "cache_interval": 1, "delivery": fast}}}
        config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state")
        config["appConnectors"]["redis"] = {"fleet": connector}
        config["block"]["redis_cache"] = {"source": "fleet", "max_data_points": 120}
        victim = cluster.master_of(layout.Names(cluster=True).hmap_set("site"))
        killer = threading.Timer(KILL_AT, victim.kill)
        recorders: dict[str, Recorder] = {}
        since = time.time() - 1
        with running(config, recorders, ["bmv700", "mppt"], tmp_path / "sim") as (engine, _s):
            killer.start()
            engine.run(RUN)
        killer.join()
        summary = engine.summary()
        assert victim.process is None  # it was killed
        cluster.wait_ok([n for n in cluster.nodes if n is not victim])
        cluster_client = redis.RedisCluster(host="127.0.0.1", port=next(
            n.port for n in cluster.nodes if n is not victim), decode_responses=True)
        cached = {node: cluster_client.zcard(f"{{vemonitor:cache:{node}}}")
                  for node in ("bmv", "mppt")}
        cluster_client.close()
        read = {}
        for structure in ("HmapTimeSeries", "Stream"):
            source = RedisSource("fleet", RedisConnector(**connector),
                                 Context(clock=FakeClock(), state_dir=str(tmp_path)))
            for node in ("bmv", "mppt"):
                source.subscribe(RedisInput(name=node, source="fleet", structure=structure,
                                            redis_node="site", since=since))
            source.start()
            read[structure] = [(r.input, r.time, dict(r.values)) for r in
                               source.rows_since(-1.0)]
            source.close()
    sent = sorted((r.input, r.time, dict(r.values)) for r in recorders["seen"].rows())
    assert all(count >= RUN - 6 for count in cached.values()), cached  # the cache is there
    assert len(sent) >= 2 * (RUN - 4)
    for structure, rows in read.items():
        assert sorted(rows, key=_key) == sorted(sent, key=_key), structure
    outputs_seen = summary["outputs"]
    assert outputs_seen["hashes"]["errors"] >= 1  # the failover was felt, and recovered from
    assert all(outputs_seen[name]["dropped_rows"] == 0 for name in ("hashes", "streams"))


def _key(row: tuple[str, float, dict[str, object]]) -> tuple[str, float]:
    return row[0], row[1]


def test_cluster_ports_never_collide_with_another_nodes_bus_port() -> None:
    """Six nodes bind twelve ports (port and port + 10000): all distinct (a CI run once
    chose a node port equal to an earlier node's bus port)."""
    from tests.integrations.redis.cluster import cluster_ports

    for _ in range(50):
        ports = cluster_ports(6)
        bound = [*ports, *(p + 10000 for p in ports)]
        assert len(set(bound)) == 12, ports
