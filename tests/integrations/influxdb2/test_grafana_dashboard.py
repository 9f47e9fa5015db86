"""The Grafana dashboard's queries, run against VictoriaMetrics holding what the sink wrote.

Grafana's Prometheus data source sends each panel's expression to /api/v1/query(_range)
after replacing the dashboard variables, and the ``label_values(<selector>, site)``
variable query to /api/v1/label/site/values?match[]=<selector> (Grafana docs,
"Prometheus template variables"). The test does the same replacements and requests.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tests.integrations.influxdb2.servers import VictoriaMetricsServer, http_get, wait_for
from tests.integrations.influxdb2.support import SinkMaker
from vemonitor.model import Batch, Row

DASHBOARD = Path(__file__).parents[3] / "docs" / "grafana" / "vemonitor-fleet.json"


def _expand(expr: str, site: str) -> str:
    """Replace the dashboard's variables as Grafana does (regex-escaped multi-value: .*)."""
    return (expr.replace("${measurement}", "vemonitor").replace("$site", site)
            .replace("$__interval", "1m"))


def _fill(vm: VictoriaMetricsServer, make_sink: SinkMaker, now: float) -> None:
    """Write 2 sites x 120 s of rows (SOC falls 1 % a minute at boat)."""
    for site, soc in (("boat", 80.0), ("van", 95.0)):
        sink = make_sink(vm.url, block=site)
        rows = tuple(Row(now - 120 + i, "bmv", {"V": 12.5, "I": -2.0, "P": -25,
                                                 "SOC": soc - (120 - i) / 60})
                     for i in range(121))
        sink.write(Batch("tsdb", rows))
    wait_for(lambda: len(vm.samples("vemonitor_SOC")) == 242, what="242 SOC samples")


def test_every_panel_query_answers_from_victoriametrics(vm: VictoriaMetricsServer,
                                                        make_sink: SinkMaker) -> None:
    """Each panel's PromQL is valid and returns the fleet's data; the figures are right."""
    now = float(int(time.time()))
    _fill(vm, make_sink, now)
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    answers = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            data = vm.query(_expand(target["expr"], ".*"), at=now + 1)
            assert data["result"], f"panel {panel['title']!r} returned nothing"
            answers[panel["title"]] = data["result"]
    assert float(answers["Sites reporting (last 5 min)"][0]["value"][1]) == 2
    assert abs(float(answers["Lowest state of charge"][0]["value"][1]) - 80.0) < 0.05  # boat
    assert 0 <= float(answers["Oldest site data (s)"][0]["value"][1]) < 60
    rate = float(answers["Rows stored per second (last 5 min)"][0]["value"][1])
    assert abs(rate - 242 / 300) < 0.01
    voltage = answers["Battery voltage"]
    assert {(r["metric"]["site"], r["metric"]["node"]) for r in voltage} == {
        ("boat", "bmv"), ("van", "bmv")}
    one = vm.query(_expand(dashboard["panels"][4]["targets"][0]["expr"], "van"), at=now + 1)
    assert [r["metric"]["site"] for r in one["result"]] == ["van"]


def test_site_variable_lists_every_site(vm: VictoriaMetricsServer, make_sink: SinkMaker) -> None:
    """label_values(selector, site) -> /api/v1/label/site/values lists the sites."""
    _fill(vm, make_sink, float(int(time.time())))
    site = next(v for v in json.loads(DASHBOARD.read_text())["templating"]["list"]
                if v["name"] == "site")
    found = re.fullmatch(r"label_values\((.*), (\w+)\)", site["query"]["query"])
    assert found is not None
    selector = found.group(1).replace("${measurement}", "vemonitor")
    query = urllib.parse.urlencode({"match[]": selector, "start": "0"})
    status, body = http_get(f"{vm.url}/api/v1/label/{found.group(2)}/values?{query}")
    assert status == 200 and json.loads(body)["data"] == ["boat", "van"]
