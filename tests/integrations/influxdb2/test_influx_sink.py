"""The influxDb2 sink against real servers: VictoriaMetrics (v2 API) and InfluxDB 1.x (/write)."""

from __future__ import annotations

import logging

import pytest
from vemonitor_integrations.influxdb2.errors import (
    InfluxAuthError,
    InfluxBatchRejected,
    InfluxRejected,
    InfluxUnavailable,
)

from tests.integrations.influxdb2.servers import (
    InfluxDB1Server,
    VictoriaMetricsServer,
    wait_for,
)
from tests.integrations.influxdb2.support import TOKEN, SinkMaker
from tests.servers import free_port
from vemonitor import testing
from vemonitor.errors import BatchRejected, SinkAuthFailed, SinkRejected, SinkUnavailable
from vemonitor.model import Batch, Row

T0 = 1_700_000_000.0


def _batch(*rows: Row) -> Batch:
    return Batch("tsdb", rows)


def _rows(n: int, node: str = "bmv", start: float = T0) -> list[Row]:
    return [Row(start + i, node, {"V": 12.5 + i / 100, "I": -1200 + i, "ALARM": False,
                                  "CS": "Bulk"}) for i in range(n)]


def test_v2_write_to_victoriametrics_is_read_back_typed_with_identity_tags(
        vm: VictoriaMetricsServer, make_sink: SinkMaker) -> None:
    """Each row is one point: site (the block), node, serial/pid/product of the device as tags,
    gzip'd, second precision; read back through /api/v1/export with its own times."""
    sink = make_sink(vm.url)
    sink.write(_batch(*_rows(5)))
    assert sink.stats()["points"] == 5 and sink.stats()["skipped_text"] == 5
    samples = wait_for(lambda: len(vm.samples("vemonitor_V")) == 5 and vm.samples("vemonitor_V"),
                       what="5 samples of vemonitor_V")
    labels = samples[0][0]
    assert labels == {"__name__": "vemonitor_V", "site": "home", "node": "bmv",
                      "serial": "HQ2211ABCDE", "pid": "0x203", "product": "BMV-700"}
    assert sorted((t, v) for _, t, v in samples) == [(T0 + i, 12.5 + i / 100) for i in range(5)]
    assert sorted(v for _, _, v in vm.samples("vemonitor_I")) == [-1200 + i for i in range(5)]
    assert {v for _, _, v in vm.samples("vemonitor_ALARM")} == {0.0}


def test_a_resent_batch_is_stored_once(vm: VictoriaMetricsServer, influx1: InfluxDB1Server,
                                       make_sink: SinkMaker) -> None:
    """Idempotent by time + tags: the outbox resending after a lost answer duplicates nothing."""
    rows = _rows(3)
    for sink in (make_sink(vm.url), make_sink(influx1.url, api="v1")):
        sink.write(_batch(*rows))
        sink.write(_batch(*rows[1:]))
    assert len(wait_for(lambda: vm.samples("vemonitor_V"), what="samples")) == 3
    assert len(influx1.points("vemonitor")) == 3


def test_v1_write_to_influxdb1_keeps_integer_boolean_and_asked_string_types(
        influx1: InfluxDB1Server, make_sink: SinkMaker) -> None:
    """The 1.x /write API: ints stay integers, booleans booleans, CS is text only when asked."""
    sink = make_sink(influx1.url, api="v1", string_fields=["CS"], tags={"site": "boat"})
    row = Row(T0, "bmv", {"V": 12.5, "I": -1200, "ALARM": True, "CS": "Bulk", "SER#": "X1"})
    sink.write(_batch(row))
    points = influx1.points("vemonitor")
    assert points == [{"time": int(T0), "ALARM": True, "CS": "Bulk", "I": -1200, "V": 12.5,
                       "node": "bmv", "pid": "0x203", "product": "BMV-700", "serial": "X1",
                       "site": "boat"}]
    kinds = influx1.influxql('SHOW FIELD KEYS FROM "vemonitor"', "vemonitor")
    types = dict(kinds["results"][0]["series"][0]["values"])
    assert types == {"ALARM": "boolean", "CS": "string", "I": "integer", "V": "float"}


def test_unknown_database_is_rejected_once_with_the_fix(influx1: InfluxDB1Server,
                                                        make_sink: SinkMaker) -> None:
    """HTTP 404 'database not found' is SinkRejected (said once, data kept) naming the db."""
    sink = make_sink(influx1.url, api="v1", db="nope")
    with pytest.raises(InfluxRejected) as caught:
        sink.write(_batch(*_rows(1)))
    assert isinstance(caught.value, SinkRejected)
    assert "database not found" in str(caught.value) and "'nope'" in caught.value.hint


def test_refused_credentials_are_an_auth_failure_without_the_secret(
        tmp_path: object, make_sink: SinkMaker, caplog: pytest.LogCaptureFixture) -> None:
    """InfluxDB 1.x with auth on answers 401 to a wrong password: SinkAuthFailed, no secret."""
    with InfluxDB1Server(auth=True) as server:
        server.influxql("CREATE USER admin WITH PASSWORD 'right' WITH ALL PRIVILEGES", post=True)
        server.influxql("CREATE DATABASE vemonitor", user=("admin", "right"), post=True)
        caplog.set_level(logging.DEBUG)
        bad = make_sink(server.url, api="v1", username="admin", auth="wrong-secret-42")
        with pytest.raises(InfluxAuthError) as caught:
            bad.write(_batch(*_rows(1)))
        assert isinstance(caught.value, SinkAuthFailed)
        assert "wrong-secret-42" not in str(caught.value) + repr(bad) + caplog.text
        good = make_sink(server.url, api="v1", username="admin", auth="right")
        good.write(_batch(*_rows(2)))
        assert len(server.influxql('SELECT * FROM "vemonitor"', "vemonitor",
                                   user=("admin", "right"))["results"][0]["series"][0]
                   ["values"]) == 2


def test_a_server_that_is_down_or_restarting_is_unavailable(
        vm: VictoriaMetricsServer, influx1: InfluxDB1Server, make_sink: SinkMaker) -> None:
    """A refused connection is SinkUnavailable (backoff); after a restart writes go on.

    InfluxDB 1.x is SIGKILLed (its WAL is written before it answers 204, so nothing it
    acknowledged is lost); VictoriaMetrics is stopped with SIGTERM, as systemd does: the
    Debian 1.79 build keeps recent points in memory and loses them on SIGKILL (README).
    """
    down = make_sink(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(InfluxUnavailable) as caught:
        down.write(_batch(*_rows(1)))
    assert isinstance(caught.value, SinkUnavailable)
    for sink, server in ((make_sink(vm.url), vm), (make_sink(influx1.url, api="v1"), influx1)):
        sink.write(_batch(*_rows(2)))
        server.kill() if server is influx1 else server.stop()
        with pytest.raises(InfluxUnavailable):
            sink.write(_batch(*_rows(2, start=T0 + 2)))
        server.start()
        sink.write(_batch(*_rows(2, start=T0 + 2)))
    wait_for(lambda: len(vm.samples("vemonitor_V")) == 4, what="4 samples in VictoriaMetrics")
    assert sorted(p["time"] for p in influx1.points("vemonitor")) == [T0 + i for i in range(4)]


def test_a_field_type_conflict_rejects_only_that_batch(influx1: InfluxDB1Server,
                                                       make_sink: SinkMaker) -> None:
    """InfluxDB refuses a field changing type (HTTP 400): BatchRejected, later batches go in."""
    sink = make_sink(influx1.url, api="v1")
    sink.write(_batch(Row(T0, "bmv", {"V": 12.5})))
    with pytest.raises(InfluxBatchRejected) as caught:
        sink.write(_batch(Row(T0 + 1, "bmv", {"V": 12})))
    assert isinstance(caught.value, BatchRejected)
    sink.write(_batch(Row(T0 + 2, "bmv", {"V": 12.7})))
    assert len(influx1.points("vemonitor")) == 2


def test_token_goes_in_the_header_only(make_sink: SinkMaker) -> None:
    """The token is never in the URL, the parameters or repr."""
    sink = make_sink("http://127.0.0.1:9")
    assert TOKEN not in repr(sink) + sink.url + str(sink.params)


def test_the_sink_keeps_the_shipped_contract(influx1: InfluxDB1Server,
                                             make_sink: SinkMaker) -> None:
    """vemonitor.testing.check_sink_contract: close before start, a retried batch stored once
    (a point is keyed by measurement, tags and time)."""
    sample = testing.batch("tsdb", testing.rows(T0, 5, "bmv"),
                           testing.rows(T0, 3, "solar", {"PPV": 120}))
    testing.check_sink_contract(lambda: make_sink(influx1.url, api="v1"), sample,
                                lambda: len(influx1.points("vemonitor")))
