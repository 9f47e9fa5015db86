"""The influxDb2 input reads rows back with InfluxQL and a central vemonitor forwards them."""

from __future__ import annotations

import time
from pathlib import Path

from vemonitor_integrations.influxdb2.schema import InfluxInput
from vemonitor_integrations.influxdb2.source import influxql

from tests.engine.helpers import Recorder, registry_with_recorders
from tests.integrations.influxdb2.servers import (
    InfluxDB1Server,
    VictoriaMetricsServer,
    wait_for,
)
from tests.integrations.influxdb2.support import SinkMaker
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine
from vemonitor.model import Batch, Row


def test_query_selects_columns_tags_and_time_in_milliseconds() -> None:
    """The InfluxQL names the fields, filters by tags and starts after the last time."""
    item = InfluxInput(name="b", source="l", db="d", measurement="m", columns=["V", "I"],
                       tags={"site": "boat"})
    assert influxql(item, 12.5, 100) == (
        'SELECT "V", "I" FROM "m" WHERE time > 12500ms AND "site" = \'boat\' GROUP BY * '
        "ORDER BY time ASC LIMIT 100")


def test_central_forwards_influxdb1_rows_to_victoriametrics_with_identity(
        tmp_path: Path, influx1: InfluxDB1Server, vm: VictoriaMetricsServer,
        make_sink: SinkMaker) -> None:
    """Rows one site wrote into InfluxDB 1.x are read back (own times, site/node/serial tags
    as values) and written by a central vemonitor into VictoriaMetrics under the same identity;
    another site's rows are not read."""
    start = float(int(time.time()) - 30)
    edge = make_sink(influx1.url, api="v1", block="boat")
    edge.write(Batch("tsdb", tuple(Row(start + i, "bmv", {"V": 12.0 + i / 10, "SOC": 90 - i})
                                   for i in range(10))))
    other = make_sink(influx1.url, api="v1", block="van")
    other.write(Batch("tsdb", (Row(start, "bmv", {"V": 1.0, "SOC": 1}),)))
    recorders: dict[str, Recorder] = {}
    registry = registry_with_recorders(recorders)
    central = {
        "block": {"name": "central",
                  "inputs": {"influxDb2": {"boat": {
                      "source": "legacy", "db": "vemonitor", "measurement": "vemonitor",
                      "tags": {"site": "boat"}, "columns": ["V", "SOC"], "since": start - 1,
                      "time_interval": 1}}},
                  "outputs": {"record": {"seen": {"cache_interval": 1}},
                              "influxDb2": {"vm": {"source": "vm", "db": "fleet",
                                                   "cache_interval": 1}}}},
        "appConnectors": {"influxDb2": {"legacy": {"host": influx1.url, "api": "v1"},
                                        "vm": {"host": vm.url}}},
        "state_dir": str(tmp_path / "central"),
    }
    spec = build_run(central, registry)
    Engine(spec, registry, SystemClock()).run(4)
    rows = recorders["seen"].rows()
    assert [r.time for r in rows] == [start + i for i in range(10)]
    assert rows[0].values["site"] == "boat" and rows[0].values["serial"] == "HQ2211ABCDE"
    assert [r.values["SOC"] for r in rows] == [90 - i for i in range(10)]
    samples = wait_for(lambda: len(vm.samples("vemonitor_SOC")) == 10 and
                       vm.samples("vemonitor_SOC"), what="10 forwarded samples")
    assert {s[0]["site"] for s in samples} == {"boat"}
    assert {s[0]["node"] for s in samples} == {"bmv"}  # the edge's node, not the input's name
    assert sorted(s[1] for s in samples) == [start + i for i in range(10)]
