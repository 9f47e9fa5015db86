"""Issue 25 point 2: rows of many sites stay many rows in the local SQLite store.

Before: the store keyed rows by (input, time), so all fleet sites of one second
overwrote each other (one site of N kept). Now the key is (input, site, time); a store
of the first schema is migrated without losing a row; `vemonitor report --site` charts
one site, and without it each site is its own series.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from vemonitor_integrations.sqlite.schema import SqliteOutputItem
from vemonitor_integrations.sqlite.sink import SCHEMA_VERSION, SqliteSink, read_rows

from tests.servers import MosquittoServer
from vemonitor.api import Context
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine
from vemonitor.registry import Registry
from vemonitor.report import read_store, report_command

SITES = ("boat", "cabin", "van")
# The table of the first schema, as every store written before issue 25 has it.
FIRST_SCHEMA = """CREATE TABLE IF NOT EXISTS rows (
    source TEXT NOT NULL,
    time REAL NOT NULL,
    "values" TEXT NOT NULL,
    PRIMARY KEY (source, time)
)"""


def test_three_sites_of_one_second_are_three_rows(tmp_path: Path) -> None:
    """Three sites publish the same seconds through mosquitto; the central's SQLite
    store keeps every site's row of every second (before: one site per second)."""
    with MosquittoServer(workdir=tmp_path / "mqtt") as broker:
        config: dict[str, Any] = {
            "state_dir": str(tmp_path / "state"),
            "block": {"name": "central",
                      "inputs": {"mqtt": {"fleet": {
                          "source": "broker", "topic": "fleet/{site}/{node}/state",
                          "time_interval": 1, "ack_after": 0}}},
                      "outputs": {"sqlite": {"store": {"time_interval": 1,
                                                       "cache_interval": 1}}}},
            "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": broker.port,
                                                  "protocol": "5"}}}}
        registry = Registry().discover()
        engine = Engine(build_run(config, registry), registry, SystemClock())
        runner = threading.Thread(target=engine.run, args=(5,))
        runner.start()
        source = next(iter(engine.sources.values()))
        end = time.monotonic() + 30
        while not source.stats()["available"] and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(0.5)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sites")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        base = float(int(time.time()) - 20)
        for offset in range(3):
            for number, site in enumerate(SITES):
                payload = json.dumps({"time": base + offset, "V": 12.0 + number})
                client.publish(f"fleet/{site}/bmv/state", payload, qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        runner.join(60)
    store = tmp_path / "state" / "store.sqlite"
    rows = read_rows(store)
    got = {(r.values["site"], r.time, r.values["V"]) for r in rows}
    assert got == {(site, base + offset, 12.0 + number) for offset in range(3)
                   for number, site in enumerate(SITES)}
    assert len(rows) == 9
    charts = read_store(store, None, None)
    assert sorted(charts) == [f"fleet {site}/bmv" for site in SITES]
    assert list(read_store(store, None, None, site="cabin")) == ["fleet cabin/bmv"]


def _first_schema_store(path: Path) -> None:
    """Write a store as the first schema did: a device's rows and a fleet's (one site
    per second survived there)."""
    conn = sqlite3.connect(path)
    conn.execute(FIRST_SCHEMA)
    conn.executemany('INSERT INTO rows (source, time, "values") VALUES (?, ?, ?)', [
        ("bmv700", 1000.0, '{"V":12.5}'), ("bmv700", 1001.0, '{"V":12.6}'),
        ("fleet", 1000.0, '{"V":13.0,"site":"boat","node":"bmv"}'),
        ("fleet", 1001.0, '{"V":13.1,"node":"mppt"}'),
        ("fleet", 1002.0, 'not json')])
    conn.commit()
    conn.close()


def test_a_store_of_the_first_schema_is_migrated_without_loss(tmp_path: Path) -> None:
    """Every row of a first-schema store is kept, with its site from its own values, and
    new rows of two sites of one second are both kept afterwards."""
    from vemonitor.api import Batch, Row
    from vemonitor.testing import ManualClock

    path = tmp_path / "store.sqlite"
    _first_schema_store(path)
    sink = SqliteSink(SqliteOutputItem(name="store", path=str(path)),
                      Context(clock=ManualClock(2000.0), state_dir=str(tmp_path)))
    sink.start()
    sink.write(Batch("store", (Row(1000.0, "fleet", {"V": 14.0, "site": "van", "node": "bmv"}),
                               Row(1000.0, "fleet", {"V": 14.1, "site": "cabin",
                                                     "node": "bmv"}))))
    sink.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    stored = sorted(conn.execute('SELECT source, site, time, "values" FROM rows'))
    conn.close()
    assert stored == [
        ("bmv700", "", 1000.0, '{"V":12.5}'), ("bmv700", "", 1001.0, '{"V":12.6}'),
        ("fleet", "", 1002.0, "not json"),  # kept as it was, under no site
        ("fleet", "boat/bmv", 1000.0, '{"V":13.0,"site":"boat","node":"bmv"}'),
        ("fleet", "cabin/bmv", 1000.0, '{"V":14.1,"site":"cabin","node":"bmv"}'),
        ("fleet", "mppt", 1001.0, '{"V":13.1,"node":"mppt"}'),
        ("fleet", "van/bmv", 1000.0, '{"V":14.0,"site":"van","node":"bmv"}')]


def test_report_site_flag_and_a_first_schema_store(tmp_path: Path, capsys: Any) -> None:
    """`vemonitor report --site` reads a store of either schema; an unknown site is one
    line, exit 2."""
    path = tmp_path / "store.sqlite"
    _first_schema_store(path)  # read as it is: the report never writes a store
    common = ["--store", str(path), "--from", "1970-01-01T00:00:00+00:00",
              "--to", "1970-01-01T01:00:00+00:00"]
    assert report_command([*common, "--out", str(tmp_path / "all.html")]) == 0
    assert report_command([*common, "--site", "nowhere"]) == 2
    assert "--site nowhere: no rows of that site" in capsys.readouterr().err
