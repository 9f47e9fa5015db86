"""vemonitor_m8 meanings for a legacy configuration (``vm_conf.yaml``).

A block loaded from the seed's files runs as the seed ran it, so its consumers
keep working (docs/migrating-from-vemonitor_m8.md lists every difference):

* every key of the seed's schemas (``appBlocks_schema.json``,
  ``appConnectors_schema.json``) and README is accepted; a key vemonitor has no
  use for is dropped with ONE notice naming it (never an error);
* ``redis_data_structure`` is the seed's name of ``structure`` (the seed always
  wrote ``HmapTimeSeries``, whatever the value);
* outputs do not apply ``ref_cols`` (the seed never did): ``apply_ref_cols: true``
  on an output opts in to vemonitor's renaming;
* serial inputs type values as the seed did (:mod:`vemonitor.seed_values`):
  ``value_format: vemonitor`` opts in to vemonitor's types;
* a redis output without ``cache_interval`` sends batches of 5 rows
  (``RedisOutputWorker.cache_interval = 5`` in the seed), and spaces its JSON as the
  seed did (``json_style: vemonitor_m8``: json.dumps' default separators);
* a redis connector without ``db`` uses db 3 (``RedisCli(db=3)`` in the seed) and
  the seed's db selector (``db_selector``): a db holding keys without the seed's
  ``vemonitor_meta`` marker is skipped for the next one, as the seed's reader does.

Hydra-native blocks keep vemonitor's own defaults. Domains the seed knows but
vemonitor has no integration for (``influxDb2``, ``tuya``) are left in place:
validation (vemonitor.config.build) hands their items to the integration when one
is registered (:data:`SEED_DOMAINS`), and otherwise says once that they do nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from vemonitor.errors import ConfigError

# Seed worker / connector key -> the vemonitor integration domain that takes its items.
# An integration registered later (e.g. influxdb2) needs only its line here.
SEED_DOMAINS: dict[str, str] = {
    "serial": "vedirect",
    "redis": "redis",
    "emoncms": "emoncms",
    "influxDb2": "influxdb2",
    "tuya": "tuya",
}

SEED_REDIS_DB = 3  # vemonitor_m8's RedisCli(db=3)
SEED_CACHE_INTERVAL = {"redis": 5}  # the seed's output worker defaults, by worker key
SEED_STRUCTURE = "HmapTimeSeries"  # the only structure the seed's redis output wrote
# The seed's schema: time_interval from 0.5 s. Below 1 s a VE.Direct device has nothing
# new (it sends once a second), so such an interval is raised to 1 s, named. (Above
# vemonitor's 1 day the seed allowed 4 days: refused here, a day is the longest slot.)
SEED_MIN_INTERVAL = 0.5

# (where, key) -> why vemonitor has no use for it: accepted, named once, dropped.
IGNORED: dict[tuple[str, str], str] = {
    ("block.args", "solarPlants"): "vemonitor has no solar plant middleware",
    ("connector.serial", "onError"): "vemonitor always reopens a lost device",
    ("input.redis", "max_items"): "a redis input reads every row written since it started",
}


class Notices:
    """One-line warnings, each key named once however many items carry it."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[str, str] = {}

    def add(self, key: str, path: str, text: str) -> None:
        self.lines.setdefault(key, f"{self.file}: {path}: {text}")


def check_unique_blocks(blocks: list[dict[str, Any]], file: str) -> None:
    """Refuse two blocks with the same name, naming both places (the seed ran one)."""
    first: dict[str, int] = {}
    for index, block in enumerate(blocks):
        name = block.get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            raise ConfigError(f"duplicate block name '{name}' (also appBlocks[{first[name]}].name"
                              f" of {file})", file=file, key=f"appBlocks[{index}].name")
        first[name] = index


def translate_block(block: dict[str, Any], file: str, index: int) -> dict[str, Any]:
    """Return the block with the seed's meanings made explicit (see the module doc)."""
    out = copy.deepcopy(block)
    notices = Notices(file)
    where = f"appBlocks[{index}]"
    args = out.get("args")
    if isinstance(args, dict):
        _drop_ignored(args, "block.args", f"{where}.args", notices)
    for role in ("inputs", "outputs"):
        groups = out.get(role)
        if not isinstance(groups, dict):
            continue
        for worker_key, items in groups.items():
            for path, item in _items(items, f"{where}.{role}.{worker_key}"):
                ITEM_RULES.get((role, worker_key), _no_rule)(item, path, notices)
                _sub_second_interval(item, path, notices)
                if role == "outputs":
                    item.setdefault("apply_ref_cols", False)
                    if worker_key in SEED_CACHE_INTERVAL:
                        item.setdefault("cache_interval", SEED_CACHE_INTERVAL[worker_key])
    out["seed_compat"] = True
    out["notices"] = list(notices.lines.values())
    return out


def translate_connectors(connectors: Any, file: str) -> tuple[Any, list[str]]:
    """Return appConnectors with the seed's defaults, and the notices of ignored keys."""
    if not isinstance(connectors, dict):
        return connectors, []
    out = copy.deepcopy(connectors)
    notices = Notices(file)
    for worker_key, group in out.items():
        if not isinstance(group, dict):
            continue
        for name, item in group.items():
            if not isinstance(item, dict):
                continue
            path = f"appConnectors.{worker_key}.{name}"
            _drop_ignored(item, f"connector.{worker_key}", path, notices)
            if worker_key == "redis":
                item.setdefault("db", SEED_REDIS_DB)
                item.setdefault("db_selector", True)
    return out, list(notices.lines.values())


# ------------------------------------------------------------------ item rules
def _serial_input(item: dict[str, Any], path: str, notices: Notices) -> None:
    item.setdefault("value_format", "vemonitor_m8")


def _redis_item(role: str) -> Callable[[dict[str, Any], str, Notices], None]:
    def rule(item: dict[str, Any], path: str, notices: Notices) -> None:
        _drop_ignored(item, f"{role}.redis", path, notices)
        if "redis_data_structure" in item:
            value = item.pop("redis_data_structure")
            if value != SEED_STRUCTURE:
                notices.add("redis_data_structure", f"{path}.redis_data_structure",
                            f"'{value}': the seed always wrote {SEED_STRUCTURE}, and so does "
                            "vemonitor for a legacy configuration")
            item.setdefault("structure", SEED_STRUCTURE)
        if role == "input":
            _redis_input_columns(item, path, notices)
        else:
            item.setdefault("json_style", "vemonitor_m8")
    return rule


def _redis_input_columns(item: dict[str, Any], path: str, notices: Notices) -> None:
    """The seed's redis input names columns per node ({node: [cols]}); vemonitor reads one."""
    columns = item.get("columns")
    if not isinstance(columns, dict) or not columns:
        return
    node, cols = next(iter(columns.items()))
    if len(columns) > 1:
        notices.add("input.redis.columns", f"{path}.columns",
                    f"several nodes: vemonitor reads node '{node}' only (one input per node)")
    item.setdefault("node", node)
    item["columns"] = list(cols or [])


def _influx_item(role: str) -> Callable[[dict[str, Any], str, Notices], None]:
    """The seed's influxDb2 ``tags`` is a list of tag NAMES (its schema: an array of
    identifiers, no values; its worker was never written). Decision: each name is a row
    column written (output) or read back (input) as a tag of that name. vemonitor's own
    ``tags`` are constant key -> value pairs, so the list moves: to ``tag_columns``
    (merged with the default identity tags) on an output, into ``columns`` on an input."""
    def rule(item: dict[str, Any], path: str, notices: Notices) -> None:
        names = item.get("tags")
        if not isinstance(names, list):
            return
        del item["tags"]
        if role == "output":
            item["tag_columns"] = {str(name): str(name) for name in names}
        elif item.get("columns"):
            item["columns"] = [*item["columns"], *(n for n in names if n not in item["columns"])]
    return rule


def _sub_second_interval(item: dict[str, Any], path: str, notices: Notices) -> None:
    value = item.get("time_interval")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            SEED_MIN_INTERVAL <= value < 1:
        item["time_interval"] = 1
        notices.add(f"time_interval@{path}", f"{path}.time_interval",
                    f"{value:g} s raised to 1 s (a VE.Direct device sends once a second)")


def _no_rule(item: dict[str, Any], path: str, notices: Notices) -> None:
    """Items of workers without seed-specific keys pass unchanged."""


ITEM_RULES: dict[tuple[str, str], Callable[[dict[str, Any], str, Notices], None]] = {
    ("inputs", "serial"): _serial_input,
    ("inputs", "redis"): _redis_item("input"),
    ("outputs", "redis"): _redis_item("output"),
    ("inputs", "influxDb2"): _influx_item("input"),
    ("outputs", "influxDb2"): _influx_item("output"),
}


def _drop_ignored(item: dict[str, Any], where: str, path: str, notices: Notices) -> None:
    for (place, key), why in IGNORED.items():
        if place == where and key in item:
            item.pop(key)
            notices.add(f"{place}.{key}", f"{path}.{key}",
                        f"accepted (vemonitor_m8 key) but does nothing: {why}")


def _items(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    """Return (path, item) for the mapping items of a list or a name -> item mapping."""
    if isinstance(node, list):
        return [(f"{path}[{i}]", item) for i, item in enumerate(node) if isinstance(item, dict)]
    if isinstance(node, dict):
        return [(f"{path}.{name}", item) for name, item in node.items()
                if isinstance(item, dict)]
    return []
