"""Issue 25 point 6: a scheme mismatch is said once, as that, and loses no batch.

``http://`` sent to a TLS port made influxd answer HTTP 400 to every batch: one
ERROR per batch, each batch set aside. Now it is one ERROR naming the output, the
connector's ``host`` key and the fix; the batches wait in the outbox and are
delivered once ``host`` is corrected.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from vemonitor_integrations.influxdb2.scheme import TLS_PORT_ANSWERS, tls_port_answer

from tests.integrations.influxdb2.servers import (
    InfluxDB1Server,
    VictoriaMetricsServer,
    wait_for,
)
from tests.integrations.mqtt.certs import make_certs
from tests.servers import LOOPBACK, port_open


class TlsVictoriaMetrics(VictoriaMetricsServer):
    """victoria-metrics serving HTTPS only (``-tls``)."""

    def __init__(self, certs: tuple[str, str, str]) -> None:
        super().__init__()
        self.ca, self.cert, self.key = certs

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [*super().command(), "-tls", f"-tlsCertFile={self.cert}",
                f"-tlsKeyFile={self.key}"]

    def ready(self) -> bool:
        return port_open(self.port)

    def names(self) -> list[str]:
        answer = requests.get(f"{self.url}/api/v1/label/__name__/values", verify=self.ca,
                              timeout=10)
        return list(answer.json()["data"])

    def count(self, metric: str) -> int:
        """Return the number of samples of ``metric`` (over HTTPS, checked with our CA)."""
        requests.get(f"{self.url}/internal/force_flush", verify=self.ca, timeout=10)
        answer = requests.get(f"{self.url}/api/v1/export",
                              params={"match[]": metric, "start": "0"}, verify=self.ca,
                              timeout=30)
        answer.raise_for_status()
        return sum(len(json.loads(line)["values"]) for line in answer.text.splitlines()
                   if line.strip())


class TlsInfluxDB1(InfluxDB1Server):
    """influxd 1.x serving HTTPS only (``https-enabled``)."""

    def __init__(self, certs: tuple[str, str, str]) -> None:
        super().__init__()
        self.ca, self.cert, self.key = certs

    def command(self) -> list[str]:
        command = super().command()
        self.config.write_text(self.config.read_text().replace("[http]\n", (
            f'[http]\n  https-enabled = true\n  https-certificate = "{self.cert}"\n'
            f'  https-private-key = "{self.key}"\n')))
        return command

    def ready(self) -> bool:
        return port_open(self.port)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _vemonitor(tmp_path: Path, host: str, *extra: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, HOME=str(tmp_path / "home"),
                       XDG_STATE_HOME=str(tmp_path / "xdg"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", "from vemonitor.cli import main; main()", "block=BatteryMonitor",
         "simulator.devices=[bmv700]", f"state_dir={tmp_path / 'state'}",
         f"+appConnectors.influxDb2.ix.host={host}", "+block.outputs.influxDb2.iv.source=ix",
         "+block.outputs.influxDb2.iv.db=vm", "+block.outputs.influxDb2.iv.cache_interval=1",
         *extra], env=environment, capture_output=True, text=True, timeout=120)


def _outbox_rows(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "state" / "outbox" / "iv.sqlite") as db:
        return int(db.execute("select coalesce(sum(rows), 0) from batches").fetchone()[0])


def _said_once(proc: subprocess.CompletedProcess[str], reason: str, fix: str) -> None:
    """The mismatch is one ERROR naming the output, the host key and the fix; no batch
    was set aside."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, proc.stderr
    assert "output iv" in errors[0] and "scheme mismatch" in errors[0], errors[0]
    assert reason in errors[0] and f"set appConnectors.influxDb2.ix.host to {fix}" in errors[0]
    assert "refused the batch" not in proc.stderr
    summary = json.loads((Path(proc.args[5].split("=", 1)[1]) / "summary.json").read_text())
    output = summary["outputs"]["iv"]
    assert output.get("dead_letter_batches", 0) == 0, output


def test_http_to_influxd_tls_port_is_said_once_and_keeps_every_batch(
        tmp_path: Path, certs: tuple[str, str, str]) -> None:
    """influxd answers HTTP 400 'Client sent an HTTP request to an HTTPS server.'"""
    with TlsInfluxDB1(certs) as server:
        host = f"http://{LOOPBACK}:{server.port}"
        proc = _vemonitor(tmp_path, host, "+appConnectors.influxDb2.ix.api=v1", "duration=5")
    assert proc.returncode == 0, proc.stderr
    _said_once(proc, "http:// was sent to a TLS port (", host.replace("http", "https"))
    assert _outbox_rows(tmp_path) >= 4  # every row of the run waits for the fix


def test_http_to_victoriametrics_tls_port_then_fixed_host_delivers_the_outbox(
        tmp_path: Path, certs: tuple[str, str, str]) -> None:
    """victoria-metrics -tls closes a plain connection unanswered: a TLS handshake on the
    port tells it apart from an outage. After the fix, every kept row arrives."""
    with TlsVictoriaMetrics(certs) as server:
        proc = _vemonitor(tmp_path, f"http://{LOOPBACK}:{server.port}", "duration=5")
        assert proc.returncode == 0, proc.stderr
        _said_once(proc, "http:// was sent to a TLS port (the server broke",
                   server.url)
        kept = _outbox_rows(tmp_path)
        assert kept >= 4
        fixed = _vemonitor(tmp_path, server.url, "duration=2",
                           env={"REQUESTS_CA_BUNDLE": server.ca})
        assert fixed.returncode == 0, fixed.stderr
        assert "ERROR" not in fixed.stderr, fixed.stderr
        assert _outbox_rows(tmp_path) == 0
        # Each kept row is one point; its voltage (V, named bat_voltage) is one sample.
        wait_for(lambda: server.count("vemonitor_bat_voltage") >= kept,
                 what=f"{kept} voltage samples: {server.names()}")


def test_https_to_a_plain_port_is_said_once(tmp_path: Path) -> None:
    with VictoriaMetricsServer() as server:
        proc = _vemonitor(tmp_path, f"https://{LOOPBACK}:{server.port}", "duration=4")
    assert proc.returncode == 0, proc.stderr
    _said_once(proc, "https:// was sent to a plain HTTP port", server.url)
    assert _outbox_rows(tmp_path) >= 3


@pytest.mark.parametrize("text", [
    "Client sent an HTTP request to an HTTPS server.\n",
    "<html><head><title>400 The plain HTTP request was sent to HTTPS port</title>",
    "Reason: You're speaking plain HTTP to an SSL-enabled server port.<br />",
])
def test_known_tls_port_answers(text: str) -> None:
    assert tls_port_answer(400, text)
    assert not tls_port_answer(404, text)
    assert len(TLS_PORT_ANSWERS) == 3


def test_an_ordinary_400_is_not_a_scheme_mismatch() -> None:
    assert not tls_port_answer(400, '{"error":"unable to parse \'x v=\': missing field value"}')
