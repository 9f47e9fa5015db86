"""A real Redis Cluster on loopback: 3 masters and 3 replicas of redis-server, made by redis-cli."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from tests.servers import LOOPBACK, RedisServer, free_port, require_binary

NODE_TIMEOUT_MS = 2000  # a dead master's replica is promoted a few seconds after this
READY_TIMEOUT = 60.0


BUS_OFFSET = 10000  # a cluster node's bus port is its port + 10000 (redis.conf, cluster-port)


def cluster_ports(count: int) -> list[int]:
    """Return ``count`` node ports whose ports and bus ports are all distinct and reserved.

    The ports are chosen before the nodes start one by one: a node's bus port must not be
    a later node's port (free when chosen, taken when the first node starts). free_port
    reserves each port and its bus port machine-wide, so no other node, test or parallel
    worker gets either of them.
    """
    return [free_port(bus_offset=BUS_OFFSET) for _ in range(count)]


class ClusterNodeServer(RedisServer):
    """One cluster-enabled redis-server (its nodes.conf in its own temp dir)."""

    def command(self) -> list[str]:
        """Return redis-server's command line with cluster mode on."""
        return [*super().command(), "--cluster-enabled", "yes", "--cluster-config-file",
                str(self.dir / "nodes.conf"), "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0"]


class RedisClusterServers:
    """Six nodes joined by ``redis-cli --cluster create --cluster-replicas 1``."""

    def __init__(self, workdir: Path) -> None:
        self.nodes = [ClusterNodeServer(port, workdir=workdir / f"node{i}")
                      for i, port in enumerate(cluster_ports(6))]

    @property
    def startup_nodes(self) -> list[str]:
        """Return every node as host:port."""
        return [f"{LOOPBACK}:{node.port}" for node in self.nodes]

    def start(self) -> RedisClusterServers:
        """Start the nodes, create the cluster, wait until every slot is served."""
        for node in self.nodes:
            node.start()
        cli = require_binary("redis-cli", ("/usr/bin/redis-cli",))
        subprocess.run([cli, "--cluster", "create", *self.startup_nodes, "--cluster-replicas",
                        "1", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        self.wait_ok()
        return self

    def wait_ok(self, alive: list[ClusterNodeServer] | None = None) -> None:
        """Wait until every live node says cluster_state:ok."""
        deadline = time.monotonic() + READY_TIMEOUT
        for node in alive or self.nodes:
            client = redis.Redis(host=LOOPBACK, port=node.port, decode_responses=True)
            while client.cluster("info")["cluster_state"] != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not become ok")
                time.sleep(0.2)
            client.close()

    def master_of(self, key: str) -> ClusterNodeServer:
        """Return the node serving ``key``'s slot now."""
        client = redis.RedisCluster(host=LOOPBACK, port=self.nodes[0].port)
        try:
            node = client.get_node_from_key(key)
            return next(n for n in self.nodes if n.port == node.port)
        finally:
            client.close()

    def role(self, server: ClusterNodeServer) -> str:
        """Return 'master' or 'slave' as the node says."""
        client = redis.Redis(host=LOOPBACK, port=server.port, decode_responses=True)
        try:
            return str(client.info("replication")["role"])
        finally:
            client.close()

    def cleanup(self) -> None:
        """Stop every node and remove their temp dirs."""
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.cleanup()
