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
            if "offset -2d" in target["expr"]:
                continue  # the daily panel looks at the next day: its own test below
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


DAY = 86400.0


def test_daily_panel_counts_each_charger_day_once_under_its_date(
        vm: VictoriaMetricsServer, make_sink: SinkMaker) -> None:
    """The daily panel, as Grafana evaluates it at each UTC midnight (1d step): the bar
    of a date is the H22 read the next date, where HSDS changed; H20 that survives
    midnight (as a charger's does) is not counted again under the next date."""
    panel = next(p for p in json.loads(DASHBOARD.read_text())["panels"]
                 if p["title"].startswith("Solar yield per charger day"))
    expr = _expand(panel["targets"][0]["expr"], ".*")
    day0 = float(int(time.time() // DAY) * DAY) - 5 * DAY  # a UTC midnight, 5 days ago
    rows = []
    # From midnight of day0: charger day 6 (begun the day before) still holds its 0.4 kWh.
    seq, today, yesterday = 6, 0.4, 0.3
    t = day0
    while t < day0 + 3 * DAY:
        hour = (t % DAY) / 3600
        if 6.0 <= hour < 6.25:  # first light: a new charger day
            seq, yesterday, today = seq + 1, today, 0.0
        if 6.0 <= hour < 18.0:
            today += 0.05 if seq == 7 else 0.04  # 0.05 x 48 = 2.4, 0.04 x 48 = 1.92
        rows.append(Row(t, "mppt", {"H20": round(today, 2), "H22": round(yesterday, 2),
                                    "HSDS": seq}))
        t += 900
    make_sink(vm.url, block="boat").write(Batch("tsdb", tuple(rows)))
    wait_for(lambda: len(vm.samples("vemonitor_HSDS")) == len(rows), what="HSDS samples")

    def bar(date: float) -> list[float]:
        return [float(r["value"][1]) for r in vm.query(expr, at=date)["result"]]

    assert bar(day0 - DAY) == [0.4]  # day 6, read at day0's dawn; not again under day0
    assert bar(day0) == [2.4]  # charger day 7 (began on day0), read at day0+1's dawn
    assert bar(day0 + DAY) == [1.92]  # day 8, read at day0+2's dawn
    assert bar(day0 + 2 * DAY) == []  # day 9 has not ended in the data
