"""Debian's ``victoria-metrics`` and ``influxd`` (InfluxDB 1.x) as throw-away loopback servers.

Both keep their data in the server's temp dir, so :meth:`kill` + :meth:`start` is a
crash and restart that keeps what was acknowledged (VictoriaMetrics flushes its
in-memory buffers at most every second; the tests read back with deadlines).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import LOOPBACK, ServerProcess, free_port

READ_DEADLINE = 30.0  # seconds a test waits for written points to be readable


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Return the status and body of a GET (errors as their status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback)
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def http_post(url: str, body: bytes = b"", timeout: float = 5.0) -> tuple[int, bytes]:
    """Return the status and body of a POST (errors as their status)."""
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


class VictoriaMetricsServer(ServerProcess):
    """``victoria-metrics`` single node: InfluxDB writes on /api/v2/write and /write.

    ``-dedup.minScrapeInterval=1ms`` keeps one sample per series and millisecond:
    the setting that makes a resent point (same measurement, tags and time)
    stored once, as InfluxDB does by design (docs.victoriametrics.com, "Deduplication").
    """

    binary_name = "victoria-metrics"
    binary_candidates = ("/usr/bin/victoria-metrics",)

    @property
    def url(self) -> str:
        """Return the base URL (an influxDb2 connector's ``host``)."""
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        """Return the command line: loopback, data in the temp dir, dedup on."""
        return [self.binary, f"-httpListenAddr={LOOPBACK}:{self.port}",
                f"-storageDataPath={self.dir / 'data'}", "-retentionPeriod=100y",
                "-dedup.minScrapeInterval=1ms", "-search.latencyOffset=0s",
                "-search.disableCache", "-loggerLevel=ERROR"]

    def ready(self) -> bool:
        """Return whether /health answers OK."""
        return http_get(self.url + "/health", timeout=0.5)[0] == 200

    def flush(self) -> None:
        """Make every acknowledged point searchable now (/internal/force_flush)."""
        http_get(self.url + "/internal/force_flush")

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """Return every series matching ``match`` from /api/v1/export (JSON lines)."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, body = http_get(f"{self.url}/api/v1/export?{query}", timeout=30)
        if status != 200:
            raise RuntimeError(f"export answered {status}: {body[:200]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def samples(self, metric: str) -> list[tuple[dict[str, str], float, float]]:
        """Return (labels, time in s, value) of every sample of a metric."""
        found = []
        for series in self.export(metric):
            labels = dict(series["metric"])
            for value, stamp in zip(series["values"], series["timestamps"], strict=True):
                found.append((labels, stamp / 1000.0, float(value)))
        return found

    def query(self, promql: str, at: float | None = None) -> dict[str, Any]:
        """Return the data of an instant PromQL query (/api/v1/query)."""
        self.flush()
        args = {"query": promql, **({"time": str(at)} if at is not None else {})}
        status, body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(args)}")
        answer = json.loads(body or b"{}")
        if status != 200 or answer.get("status") != "success":
            raise RuntimeError(f"query {promql!r} answered {status}: {body[:300]!r}")
        return dict(answer["data"])

    def __enter__(self) -> VictoriaMetricsServer:
        self.start()
        return self


class InfluxDB1Server(ServerProcess):
    """``influxd`` 1.x with its HTTP API on a free loopback port (auth optional)."""

    binary_name = "influxd"
    binary_candidates = ("/usr/bin/influxd",)

    def __init__(self, port: int | None = None, workdir: str | Path | None = None,
                 auth: bool = False) -> None:
        super().__init__(port, workdir)
        self.auth = auth
        self.rpc_port = free_port()
        self.config = self.dir / "influxdb.conf"

    @property
    def url(self) -> str:
        """Return the base URL (an influxDb2 connector's ``host``)."""
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        """Write a config with every listener on loopback and every dir in the temp dir."""
        data = self.dir / "influx"
        self.config.write_text("\n".join([
            "reporting-enabled = false", f'bind-address = "{LOOPBACK}:{self.rpc_port}"',
            "[meta]", f'  dir = "{data / "meta"}"',
            "[data]", f'  dir = "{data / "data"}"', f'  wal-dir = "{data / "wal"}"',
            '  query-log-enabled = false', "[monitor]", "  store-enabled = false",
            "[http]", f'  bind-address = "{LOOPBACK}:{self.port}"',
            f"  auth-enabled = {'true' if self.auth else 'false'}", "  log-enabled = false",
            "[logging]", '  level = "warn"', "[ifql]", "  enabled = false", ""]))
        return [self.binary, "-config", str(self.config)]

    def ready(self) -> bool:
        """Return whether /ping answers 204."""
        return http_get(self.url + "/ping", timeout=0.5)[0] == 204

    def influxql(self, query: str, db: str | None = None, user: tuple[str, str] | None = None,
                 post: bool = False) -> dict[str, Any]:
        """Run an InfluxQL query (epoch=s) and return the JSON answer."""
        args = {"q": query, "epoch": "s", **({"db": db} if db else {}),
                **({"u": user[0], "p": user[1]} if user else {})}
        url = f"{self.url}/query?{urllib.parse.urlencode(args)}"
        status, body = http_post(url) if post else http_get(url)
        if status != 200:
            raise RuntimeError(f"{query!r} answered {status}: {body[:300]!r}")
        return dict(json.loads(body))

    def points(self, db: str, measurement: str = "vemonitor") -> list[dict[str, Any]]:
        """Return every point of a measurement as dicts (time in s, tags and fields)."""
        answer = self.influxql(f'SELECT * FROM "{measurement}"', db)
        found = []
        for series in answer["results"][0].get("series", []):
            for values in series["values"]:
                found.append(dict(zip(series["columns"], values, strict=True)))
        return found

    def __enter__(self) -> InfluxDB1Server:
        self.start()
        return self


def wait_for(check: Any, deadline: float = READ_DEADLINE, what: str = "condition") -> Any:
    """Poll ``check()`` until it returns something truthy; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")
        time.sleep(0.2)
