"""vemonitor_m8's Redis reader, re-implemented from its code for contract tests.

Read from the public repository vemonitor/vemonitor_m8 (branch main):
``vemonitor_m8/workers/redis/redis_api.py`` (RedisCli, RedisBase, RedisApi: the
default db and the db selector) and ``vemonitor_m8/workers/redis/redis_h_time_series.py``
(HmapTimeSeriesApp.get_data_time_series and what it calls). CI cannot fetch that
code, so each rule is copied here with a comment naming the seed behaviour it copies;
only the reading path without ``nb_items`` is re-implemented (the seed's own cache
and consumers call it that way).
"""

from __future__ import annotations

import json
from typing import Any

import redis

SEED_DEFAULT_DB = 3  # RedisCli.__init__(..., db: int = 3)
META = "vemonitor_meta"  # RedisApi._meta_name
SEED_APP = "vemonitor_m8"  # RedisApi.is_db_meta: data.get("controled_by") == "vemonitor_m8"
SEED_DBS = 16  # RedisApi.run_db_selector: for i in range(16)


class SeedHmapReader:
    """HmapTimeSeriesApp as a consumer builds it: credentials of the sample connector."""

    def __init__(self, host: str, port: int, db: int | None = None,
                 password: str | None = None) -> None:
        # The seed's worker passes the connector dict (``active`` popped) to RedisCli(**c):
        # a connector without ``db`` opens db 3.
        self.db = SEED_DEFAULT_DB if db is None else db
        self.host, self.port, self.password = host, port, password
        self.node_base = "n"  # HmapTimeSeriesApp.__init__: self.node_base = 'n'
        self.client = self._connect(self.db)
        self.run_db_selector()

    def _connect(self, db: int) -> redis.Redis:
        # RedisCli: Redis(host, port, db, password, decode_responses=True)
        return redis.Redis(host=self.host, port=self.port, db=db, password=self.password,
                           decode_responses=True)

    def close(self) -> None:
        """Release the connection."""
        self.client.close()

    # ---------------------------------------------------------------- db selector
    def nb_keys(self) -> int:
        """RedisBase.get_db_nb_keys: the ``keys`` of ``db<N>`` in INFO (0 when absent)."""
        info = self.client.info()
        entry = info.get(f"db{self.db}")
        return int(entry.get("keys", 0)) if isinstance(entry, dict) else 0

    def is_db_meta(self) -> bool:
        """RedisApi.is_db_meta: HGETALL vemonitor_meta has controled_by == vemonitor_m8."""
        return self.client.hgetall(META).get("controled_by") == SEED_APP

    def control_current_db(self) -> bool:
        """RedisApi.control_current_db: a db with keys must carry the seed's meta;
        an empty db is initialised with it (init_db_meta: controled_by + version)."""
        if self.nb_keys() > 0:
            return self.is_db_meta()  # else: "Current db N is not empty, and meta data
            # is unreachable" and the selector moves on
        self.client.hset(META, mapping={"controled_by": SEED_APP, "version": "0.1.2"})
        return True

    def run_db_selector(self) -> None:
        """RedisApi.run_db_selector: the configured db, else the first of 0..15 that passes."""
        if self.control_current_db():
            return
        configured = self.db
        for db in range(SEED_DBS):
            if db == configured:
                continue
            self.client.close()
            self.db = db
            self.client = self._connect(db)
            if self.control_current_db():
                return
        raise RuntimeError("Fatal error: Unable to get valid Redis db.")  # RedisVeError

    # ---------------------------------------------------------------- reading
    def get_nodes_keys_list(self, node_name: str, nodes: list[str] | None) -> list[str]:
        """HmapTimeSeriesApp.get_nodes_keys_list: SMEMBERS node_name, filtered by
        get_map_key(node, node_base) = f"{node_base}_{node}" when nodes are given."""
        result = list(self.client.smembers(node_name))
        if nodes:
            formatted = [f"{self.node_base}_{x}" for x in nodes]
            result = [x for x in result if x in formatted]
        return result

    def get_keys_by_node(self, formatted_node: str, from_time: int = 0) -> list[int] | None:
        """HmapTimeSeriesApp.get_keys_by_node: HKEYS, sorted as strings, each Ut.get_int(x, 0);
        with from_time > 0 only keys >= from_time (Utils.is_from_time)."""
        keys = self.client.hkeys(formatted_node)
        if not keys:
            return None
        keys.sort()
        ints = [_get_int(x) for x in keys]
        return [k for k in ints if from_time <= 0 or 0 < from_time <= k]

    def get_data_time_series(self, node_name: str, from_time: int = 0,
                             structure: dict[str, list[str]] | None = None
                             ) -> tuple[dict[int, dict[str, dict[str, Any]]], int, int]:
        """HmapTimeSeriesApp.get_data_time_series (nb_items=0): rows by time, then by node."""
        result: dict[int, dict[str, dict[str, Any]]] = {}
        max_time = 0
        nodes = list(structure) if structure else None
        for node in self.get_nodes_keys_list(node_name, nodes):  # enum_node_keys
            keys = self.get_keys_by_node(node, from_time)
            if not keys:
                continue
            # get_node_from_map_key: key[len(node_base) + 1:]
            name = node[len(self.node_base) + 1:]
            max_time = max(keys) if max_time == 0 or max_time < max(keys) else max_time
            for key, values in self.enum_node_data_interval(node, keys):
                row = result.setdefault(key, {})
                if structure:  # Ut.get_items_from_dict(values, structure.get(node_name))
                    wanted = structure.get(name) or []
                    row[name] = {k: values[k] for k in wanted if k in values}
                else:
                    row[name] = values
        result = dict(sorted(result.items()))
        last_time = max(result) + 1 if result else 0
        return result, last_time, max_time

    def enum_node_data_interval(self, formatted_node: str, keys: list[int]
                                ) -> list[tuple[int, dict[str, Any]]]:
        """HmapTimeSeriesApp.enum_node_data_interval: HMGET; a field counts only when it is
        a non-empty JSON object under a positive integer key; nothing when lengths differ."""
        data = self.client.hmget(formatted_node, [str(k) for k in keys])
        out: list[tuple[int, dict[str, Any]]] = []
        if len(data) != len(keys):
            return out
        for key, item in zip(keys, data, strict=True):
            if isinstance(item, str) and item:
                values = json.loads(item)
                if key > 0 and isinstance(values, dict) and values:
                    out.append((key, values))
        return out


def _get_int(text: str) -> int:
    """Ut.get_int(value, 0): int(value), or 0 when it does not parse."""
    try:
        return int(text)
    except ValueError:
        return 0
