"""Every key vemonitor_m8 documents is accepted with the seed's meaning; keys vemonitor has
no use for are named in one warning each; duplicate block names are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.shared import REPO_ROOT
from vemonitor.cli import preflight
from vemonitor.compose import prepare, register_resolvers, register_schema
from vemonitor.config.seed import SEED_DOMAINS
from vemonitor.registry import Registry

README_EXAMPLE = REPO_ROOT / "examples" / "vemonitor_m8_readme"

# Every property of the seed's schemas, read from vemonitor/vemonitor_m8 (branch main):
# vemonitor_m8/conf_manager/schemas/appBlocks_schema.json (items.properties and $defs)
# and appConnectors_schema.json; plus the worker key 'tuya' of
# vemonitor_m8/workers/workers_loader.py (input and output). CI cannot fetch the schemas,
# so they are copied here as (schema place -> properties).
SEED_SCHEMA_PROPERTIES: dict[str, tuple[str, ...]] = {
    "appBlocks.items": ("name", "app", "args", "redis_cache", "inputs", "outputs"),
    "args": ("batteryBanks", "solarPlants"),
    "redis_cache": ("source", "max_data_points"),
    "inputs": ("serial", "redis", "influxDb2"),
    "outputs": ("emoncms", "serial", "redis", "influxDb2"),
    "serial_input": ("name", "source", "time_interval", "device", "ref_cols", "columns"),
    "serial_output": ("source", "time_interval", "cache_interval", "device", "ref_cols",
                      "columns"),
    "emoncms_output": ("name", "source", "time_interval", "cache_interval", "columns"),
    "redis_input": ("name", "redis_data_structure", "source", "time_interval", "redis_node",
                    "max_items", "ref_cols", "columns"),
    "redis_output": ("source", "redis_data_structure", "time_interval", "cache_interval",
                     "redis_node", "max_items", "ref_cols", "columns"),
    "influxDb2_input": ("name", "source", "time_interval", "db", "measurement", "tags",
                        "ref_cols", "columns"),
    "influxDb2_output": ("source", "time_interval", "cache_interval", "db", "measurement",
                         "tags", "ref_cols", "columns"),
    "connectors": ("serial", "redis", "emoncms", "influxDb2"),
    "connector.serial": ("active", "onError", "serialPort", "serialTest"),
    "serialTest.item": ("typeTest", "key", "value"),
    "connector.redis": ("active", "host", "port", "db", "password"),
    "connector.emoncms": ("active", "addr", "apikey"),
    "connector.influxDb2": ("active", "host", "org", "auth", "timeout", "verify_ssl"),
}

# Keys valid for the seed that do nothing in vemonitor: each named in exactly one warning.
IGNORED = ("args.solarPlants", "appConnectors.serial.bmv.onError", ".max_items")
SEED_WORKERS_WITHOUT_PEER = (("inputs", "influxDb2"), ("outputs", "influxDb2"),
                              ("outputs", "serial"), ("inputs", "tuya"), ("outputs", "tuya"))


def noop_workers() -> list[str]:
    """Return the seed workers no integration installed here provides (warned about):
    when one lands (e.g. influxdb2), its items are handed to it instead."""
    registry = Registry().discover()
    out = []
    for role, key in SEED_WORKERS_WITHOUT_PEER:
        manifest = registry.manifests.get(registry.canonical(SEED_DOMAINS[key]))
        if manifest is None or role[:-1] not in manifest.provides:
            out.append(f"block.{role}.{key}")
    return out

REF = [["bat_voltage", "V"]]


def every_key_config() -> dict[str, Any]:
    """Return a legacy set (vm_conf.yaml content) using every seed schema property once."""
    places: dict[str, dict[str, Any]] = {
        "serial_input": {"name": "bmv", "source": "bmv", "time_interval": 1, "device": "BMV",
                         "ref_cols": REF, "columns": ["V", "I", "SOC", "time_ref"]},
        "serial_output": {"source": "bmv", "time_interval": 1, "cache_interval": 2,
                          "device": "BMV", "ref_cols": REF, "columns": {"bmv": ["V"]}},
        "emoncms_output": {"name": "emon", "source": "local", "time_interval": 1,
                           "cache_interval": 10, "columns": {"bmv": ["V", "time_ref"]}},
        "redis_input": {"name": "remote", "redis_data_structure": "HmapTimeSeries",
                        "source": "local", "time_interval": 1, "redis_node": "other",
                        "max_items": 100, "ref_cols": REF, "columns": {"bmv700": ["V"]}},
        "redis_output": {"source": "local", "redis_data_structure": "HmapTimeSeries",
                         "time_interval": 1, "cache_interval": 5, "redis_node": "bat",
                         "max_items": 3600, "ref_cols": REF, "columns": {"bmv": ["V", "I"]}},
        "influxDb2_input": {"name": "flux", "source": "local", "time_interval": 1,
                            "db": "vemonitor", "measurement": "bat", "tags": ["site"],
                            "ref_cols": REF, "columns": ["V"]},
        "influxDb2_output": {"source": "local", "time_interval": 1, "cache_interval": 5,
                             "db": "vemonitor", "measurement": "bat", "tags": ["site"],
                             "ref_cols": REF, "columns": {"bmv": ["V"]}},
    }
    for place, item in places.items():  # the walk: the table and the config agree
        assert tuple(item) == SEED_SCHEMA_PROPERTIES[place], place
    block = {
        "name": "EveryKey", "app": "batSerialMonitor",
        "args": {"batteryBanks": "bank1", "solarPlants": "roof"},
        "redis_cache": {"source": "local", "max_data_points": 120},
        "inputs": {"serial": [places["serial_input"]], "redis": [places["redis_input"]],
                   "influxDb2": [places["influxDb2_input"]],
                   "tuya": [{"name": "plug", "source": "home", "time_interval": 5,
                             "columns": ["power"]}]},
        "outputs": {"emoncms": [places["emoncms_output"]],
                    "serial": [places["serial_output"]],
                    "redis": [places["redis_output"]],
                    "influxDb2": [places["influxDb2_output"]],
                    "tuya": [{"source": "home", "time_interval": 5,
                              "columns": {"bmv": ["V"]}}]},
    }
    assert tuple(block) == SEED_SCHEMA_PROPERTIES["appBlocks.items"]
    assert tuple(block["args"]) == SEED_SCHEMA_PROPERTIES["args"]
    assert tuple(block["redis_cache"]) == SEED_SCHEMA_PROPERTIES["redis_cache"]
    assert set(SEED_SCHEMA_PROPERTIES["inputs"]) <= set(block["inputs"])
    assert set(SEED_SCHEMA_PROPERTIES["outputs"]) <= set(block["outputs"])
    connectors = {
        "serial": {"bmv": {"active": True, "onError": "restart", "serialPort": "/tmp/ttyVE",
                           "serialTest": {"PIDTest": {"typeTest": "value", "key": "PID",
                                                      "value": "0x203"}}}},
        "redis": {"local": {"active": True, "host": "127.0.0.1", "port": 6379, "db": 2,
                            "password": "seed-secret"}},
        "emoncms": {"local": {"active": True, "addr": "http://127.0.0.1:8080",
                              "apikey": "My_EmonCms_ApiKey"}},
        "influxDb2": {"local": {"active": True, "host": "http://127.0.0.1:8086",
                                "org": "vemonitor", "auth": "influx-token", "timeout": 6000,
                                "verify_ssl": False}},
        "tuya": {"home": {"active": True}},
    }
    assert set(SEED_SCHEMA_PROPERTIES["connectors"]) <= set(connectors)
    for kind in ("serial", "redis", "emoncms", "influxDb2"):
        item = next(iter(connectors[kind].values()))
        assert tuple(item) == SEED_SCHEMA_PROPERTIES[f"connector.{kind}"], kind
    assert tuple(connectors["serial"]["bmv"]["serialTest"]["PIDTest"]) == \
        SEED_SCHEMA_PROPERTIES["serialTest.item"]
    banks = {"batteryDatas": {
        "batteries": {"b1": {"manufacturer": "Rolls", "model": "S6-305", "cell_voltage": 6,
                             "nb_cells": 3, "bulk_voltage": 2.47, "float_voltage": 2.25,
                             "capacity": [[5, 253, 50.56], [20, 320, 16]]}},
        "bankItems": {"bank1": {"battery_type": "flooded", "battery_key": "b1",
                                "in_series": 4, "in_parallel": 1}}}}
    return {"appBlocks": [block], "appConnectors": connectors, "batteryBanks": banks}


def vemonitor(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed command line in a clean HOME (no ~/.vemonitor)."""
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "x"))
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           *args, f"state_dir={tmp_path / 'state'}"], env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_seed_schema_property_is_accepted(tmp_path: Path) -> None:
    """A legacy set using every property of both seed schemas validates (exit 0); each key
    vemonitor does not use is named in exactly one warning; the secrets stay out."""
    (tmp_path / "vm_conf.yaml").write_text(yaml.safe_dump(every_key_config()))
    proc = vemonitor([f"config_dir={tmp_path}", "block=EveryKey", "dry_run=true"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    noop = noop_workers()
    assert "block.outputs.serial" in noop  # VE.Direct is read-only
    for key in (*IGNORED, *noop):
        assert sum(key in line for line in warnings) == 1, (key, warnings)
    assert len(warnings) == len(IGNORED) + len(noop), warnings
    assert "seed-secret" not in proc.stderr + proc.stdout
    assert "influx-token" not in proc.stderr + proc.stdout
    # The seed's meanings: its redis output keeps its batch size, emoncms its 10.
    assert "output redis: redis every 1 s, batches of 5 ticks" in proc.stdout
    assert "output emon: emoncms every 1 s, batches of 10 ticks" in proc.stdout


def test_legacy_meanings_are_explicit_in_the_run(tmp_path: Path) -> None:
    """Validated, a legacy block carries the seed's defaults: no ref_cols at outputs, the
    seed's value types at serial inputs, redis db 3 with the db selector, batches of 5."""
    config = every_key_config()
    output = config["appBlocks"][0]["outputs"]["redis"][0]
    del output["cache_interval"]
    del config["appConnectors"]["redis"]["local"]["db"]
    (tmp_path / "vm_conf.yaml").write_text(yaml.safe_dump(config))
    register_resolvers()
    register_schema()
    spec, _ = preflight(prepare([f"config_dir={tmp_path}", "block=EveryKey",
                                 f"state_dir={tmp_path / 'state'}"]))
    redis_out = next(o for o in spec.outputs if o.domain == "redis")
    assert redis_out.cache_interval == 5
    assert {o.item.apply_ref_cols for o in spec.outputs} == {False}
    serial = next(i for i in spec.inputs if i.domain == "vedirect")
    assert serial.item.value_format == "vemonitor_m8"
    connector = spec.connectors[("redis", "local")].config
    assert (connector.db, connector.db_selector) == (3, True)
    assert redis_out.item.structure.value == "HmapTimeSeries"
    assert redis_out.item.json_style == "vemonitor_m8"


def test_opt_in_to_vemonitor_behaviour_in_a_legacy_block(tmp_path: Path) -> None:
    """apply_ref_cols, value_format, db and db_selector written in the legacy file win."""
    config = every_key_config()
    block = config["appBlocks"][0]
    block["outputs"]["redis"][0]["apply_ref_cols"] = True
    block["inputs"]["serial"][0]["value_format"] = "vemonitor"
    config["appConnectors"]["redis"]["local"].update(db=0, db_selector=False)
    (tmp_path / "vm_conf.yaml").write_text(yaml.safe_dump(config))
    register_resolvers()
    register_schema()
    spec, _ = preflight(prepare([f"config_dir={tmp_path}", "block=EveryKey",
                                 f"state_dir={tmp_path / 'state'}"]))
    assert next(o for o in spec.outputs if o.domain == "redis").item.apply_ref_cols is True
    assert next(i for i in spec.inputs if i.domain == "vedirect").item.value_format == \
        "vemonitor"
    connector = spec.connectors[("redis", "local")].config
    assert (connector.db, connector.db_selector) == (0, False)


def test_hydra_native_block_keeps_vemonitor_defaults(tmp_path: Path) -> None:
    """A shipped (Hydra) block is not a legacy one: ref_cols applied, typed values."""
    register_resolvers()
    register_schema()
    spec, _ = preflight(prepare(["block=BatteryMonitor", f"state_dir={tmp_path / 'state'}"]))
    assert {o.item.apply_ref_cols for o in spec.outputs} == {True}
    assert {i.item.value_format for i in spec.inputs} == {"vemonitor"}
    assert spec.notices == ()


def test_readme_examples_validate_with_dry_run(tmp_path: Path) -> None:
    """The seed README's examples (examples/vemonitor_m8_readme, every key verbatim) pass
    validation with dry_run=true, exit 0, with the README's batch sizes."""
    proc = vemonitor([f"config_dir={README_EXAMPLE}", "block=VedirectToRedis", "dry_run=true"],
                     tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "output redis: redis every 1 s, batches of 5 ticks" in proc.stdout
    assert "output bat_t1: emoncms every 1 s, batches of 10 ticks" in proc.stdout
    assert "error" not in proc.stderr.lower()


def test_duplicate_block_names_exit_2_with_one_line(tmp_path: Path) -> None:
    """Two blocks named alike: exit 2, one line naming the block and both places."""
    config = every_key_config()
    second = dict(config["appBlocks"][0])
    config["appBlocks"] = [config["appBlocks"][0], {"name": "Other", "inputs": {}}, second]
    (tmp_path / "vm_conf.yaml").write_text(yaml.safe_dump(config))
    proc = vemonitor([f"config_dir={tmp_path}", "block=EveryKey", "dry_run=true"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "duplicate block name 'EveryKey'" in lines[0]
    assert "appBlocks[2].name" in lines[0] and "appBlocks[0].name" in lines[0]
    assert str(tmp_path / "vm_conf.yaml") in lines[0]
    assert "Traceback" not in proc.stderr


def test_seed_interval_range_is_accepted(tmp_path: Path) -> None:
    """The seed's schema allows time_interval from 0.5 s: 0.5 is raised to 1 s with a
    warning naming it (a device sends once a second)."""
    config = every_key_config()
    block = config["appBlocks"][0]
    block["inputs"]["serial"][0]["time_interval"] = 0.5
    (tmp_path / "vm_conf.yaml").write_text(yaml.safe_dump(config))
    register_resolvers()
    register_schema()
    spec, _ = preflight(prepare([f"config_dir={tmp_path}", "block=EveryKey",
                                 f"state_dir={tmp_path / 'state'}"]))
    assert next(i for i in spec.inputs if i.domain == "vedirect").time_interval == 1
    raised = [n for n in spec.notices if "inputs.serial[0].time_interval" in n]
    assert len(raised) == 1 and "0.5 s raised to 1 s" in raised[0]


def test_seed_influx_tags_list_names_tag_columns() -> None:
    """The seed's influxDb2 ``tags`` (a list of tag names) become tag columns of that name
    on an output and columns read back on an input; vemonitor's ``tags`` stay key -> value."""
    from vemonitor.config.seed import translate_block

    block = {"name": "b", "app": "a",
             "inputs": {"influxDb2": [{"name": "in", "source": "c", "columns": ["V"],
                                       "tags": ["site"]}]},
             "outputs": {"influxDb2": [{"source": "c", "db": "d", "tags": ["site", "node"],
                                        "columns": {"in": ["V"]}}]}}
    out = translate_block(block, "vm_conf.yaml", 0)
    assert out["outputs"]["influxDb2"][0]["tag_columns"] == {"site": "site", "node": "node"}
    assert "tags" not in out["outputs"]["influxDb2"][0]
    assert out["inputs"]["influxDb2"][0]["columns"] == ["V", "site"]
    assert "tags" not in out["inputs"]["influxDb2"][0]
