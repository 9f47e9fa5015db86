"""The emoncms sink against the contract server: payload, auth, errors, idempotency, secrets."""

from __future__ import annotations

import json
import logging
import math
import socket
import traceback
from collections.abc import Callable

import pytest
import requests
from vemonitor_integrations.emoncms.errors import (
    EmoncmsAuthError,
    EmoncmsError,
    EmoncmsRejected,
    EmoncmsUnavailable,
)
from vemonitor_integrations.emoncms.sink import EmoncmsSink

from tests.integrations.emoncms.contract_server import DEFAULT_KEY, ContractServer, Point
from tests.integrations.emoncms.emon_helpers import NOW, FakeClock
from vemonitor import testing
from vemonitor.errors import SinkAuthFailed, SinkRejected
from vemonitor.model import Batch, Row
from vemonitor.vedirect.fields import Code, Flags

MakeSink = Callable[..., EmoncmsSink]
T0 = int(NOW) - 2


def bmv_row(t: float = T0) -> Row:
    """Return a BMV row with every kind of value a device produces."""
    return Row(t, "bmv700", {"V": 12.5, "I": -1.25, "Relay": True, "Alarm": False, "SOC": None,
                             "BMV": "702", "CS": Code(3, "Bulk"), "AR": Flags(0, ())})


def mppt_row(t: float = T0 + 1) -> Row:
    """Return an MPPT row."""
    return Row(t, "mppt", {"PPV": 120, "VPV": 35.2})


def batch(*rows: Row) -> Batch:
    """Return a batch of ``rows`` (a default pair when none given)."""
    return Batch("emon", rows or (bmv_row(), mppt_row()))


EXPECTED_DATA = [
    [T0, "bmv700", {"V": 12.5}, {"I": -1.25}, {"Relay": 1}, {"Alarm": 0}, {"CS": 3}, {"AR": 0}],
    [T0 + 1, "mppt", {"PPV": 120}, {"VPV": 35.2}],
]
EXPECTED_POINTS = sorted([
    Point("bmv700", "V", T0, 12.5), Point("bmv700", "I", T0, -1.25),
    Point("bmv700", "Relay", T0, 1.0), Point("bmv700", "Alarm", T0, 0.0),
    Point("bmv700", "CS", T0, 3.0), Point("bmv700", "AR", T0, 0.0),
    Point("mppt", "PPV", T0 + 1, 120.0), Point("mppt", "VPV", T0 + 1, 35.2),
])


# ----------------------------------------------------------------------- payload
def test_payload_is_one_bulk_entry_per_row_with_one_object_per_input(
        make_sink: MakeSink, server: ContractServer) -> None:
    """data is [[abs time, node, {name: value}, ...], ...]; bool->1/0; None and text left out."""
    make_sink().write(batch())
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/input/bulk.json")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(request.form["data"]) == EXPECTED_DATA
    assert request.form["time"] == "0"  # the default: entry times are absolute
    assert set(request.form) == {"data", "time"}


def test_key_is_sent_only_as_a_bearer_header(make_sink: MakeSink,
                                             server: ContractServer) -> None:
    """The API key is in Authorization: Bearer, never in the URL or the form."""
    make_sink().write(batch())
    (request,) = server.requests
    assert request.auth == "bearer"
    assert request.headers["Authorization"] == f"Bearer {DEFAULT_KEY}"
    assert request.query == {}
    assert DEFAULT_KEY not in request.body.decode()


def test_success_stores_every_point_once(make_sink: MakeSink, server: ContractServer) -> None:
    """An 'ok' answer returns; the server holds exactly the batch's numeric points."""
    sink = make_sink()
    sink.write(batch())
    assert server.stored() == EXPECTED_POINTS
    assert len(server.deliveries) == len(EXPECTED_POINTS)
    assert sink.stats()["points"] == len(EXPECTED_POINTS)
    assert sink.stats()["skipped_values"] == 2  # SOC None, BMV text


def test_non_finite_values_are_left_out(make_sink: MakeSink, server: ContractServer) -> None:
    """NaN and infinities are not JSON and not data: they are not sent."""
    make_sink().write(batch(Row(T0, "bmv700", {"V": math.nan, "I": math.inf, "P": -5})))
    assert json.loads(server.requests[0].form["data"]) == [[T0, "bmv700", {"P": -5}]]


def test_batch_without_numbers_makes_no_request(make_sink: MakeSink,
                                                server: ContractServer) -> None:
    """Rows with only None or text send nothing (emoncms would reject an empty bulk)."""
    make_sink().write(batch(Row(T0, "bmv700", {"SOC": None, "BMV": "702"})))
    assert server.request_count() == 0


def test_compressed_body_is_zlib_deflate(make_sink: MakeSink, server: ContractServer) -> None:
    """compress=true sends a zlib body with Content-Encoding: deflate; the data is the same
    behind a proxy that inflates request bodies."""
    server.inflate = True
    make_sink(compress=True).write(batch())
    (request,) = server.requests
    assert request.headers["Content-Encoding"] == "deflate"
    assert request.body[:1] == b"\x78"  # zlib header
    assert server.stored() == EXPECTED_POINTS


def test_compressed_body_refused_by_stock_emoncms_is_rejected_data_kept(
        make_sink: MakeSink, server: ContractServer) -> None:
    """Stock EmonCms cannot read a deflate body: its 200 {"success": false, "message":
    "Format error ..."} is EmoncmsRejected (said once, data kept), with the fix."""
    sink = make_sink(compress=True)
    with pytest.raises(EmoncmsRejected, match="Format error, json string supplied") as caught:
        sink.write(batch())
    assert isinstance(caught.value, SinkRejected)
    assert "compress: false" in caught.value.hint
    assert server.stored() == []
    assert server.request_count() == 1


# ----------------------------------------------------------------------- time
def test_sentat_lets_the_server_correct_clock_skew(make_sink: MakeSink, server: ContractServer,
                                                   clock: FakeClock) -> None:
    """With the device an hour behind the server, points land at the server's times."""
    server.clock = lambda: clock.now() + 3600
    make_sink(correct_skew=True).write(batch())
    assert {p.time for p in server.stored()} == {T0 + 3600, T0 + 3601}


def test_correct_skew_off_sends_absolute_times(make_sink: MakeSink, server: ContractServer,
                                               clock: FakeClock) -> None:
    """correct_skew=false sends time=0: the device's times are stored unchanged."""
    server.clock = lambda: clock.now() + 3600
    make_sink(correct_skew=False).write(batch())
    assert server.requests[0].form["time"] == "0"
    assert "sentat" not in server.requests[0].form
    assert server.stored() == EXPECTED_POINTS


FRACTIONS = [0.0, 0.2, 0.49, 0.5, 0.51, 0.7, 0.999]
LATENCIES = [0.0, 0.02, 0.3, 0.6]


@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("latency", LATENCIES)
def test_default_times_land_on_their_own_second_at_any_fraction(
        make_sink: MakeSink, server: ContractServer, clock: FakeClock, fraction: float,
        latency: float) -> None:
    """EmonCms's skew rule replayed (time() truncates): with the default time=0 every point
    is at its row's second whatever the fraction of the send and the latency."""
    clock.t = NOW + fraction
    server.clock = lambda: NOW + fraction + latency
    make_sink().write(batch())
    assert server.stored() == EXPECTED_POINTS


def test_outage_backlog_and_shutdown_batch_land_on_their_own_seconds(
        make_sink: MakeSink, server: ContractServer, clock: FakeClock) -> None:
    """30 rows held through a 30 s outage and sent at x.6 s, then a 3-row batch sent at
    shutdown at x.9 s with 0.2 s latency: 33 rows, 33 seconds, none overwritten."""
    sink = make_sink()
    backlog = [Row(T0 + i, "bmv700", {"V": 12.0 + i / 100}) for i in range(30)]
    clock.t = T0 + 30.6
    server.clock = lambda: T0 + 30.65
    sink.write(batch(*backlog))
    last = [Row(T0 + 30 + i, "bmv700", {"V": 13.0 + i / 100}) for i in range(3)]
    clock.t = T0 + 33.9
    server.clock = lambda: T0 + 34.1
    sink.write(batch(*last))
    assert server.stored() == [Point("bmv700", "V", int(r.time), r.values["V"])  # type: ignore[arg-type]
                               for r in backlog + last]


@pytest.mark.parametrize("fraction", [0.51, 0.7, 0.99])
def test_a_rounded_sentat_would_shift_the_batch_a_second_early(
        server: ContractServer, fraction: float) -> None:
    """Why sentat is never rounded: sent past x.5, round() gives x+1 while the server's
    time() still says x, so EmonCms stores every point 1 s early (measured against
    EmonCms 11.16.8: 158 feed points for 159 rows)."""
    server.clock = lambda: NOW + fraction
    form = {"data": json.dumps([[T0, "n", {"V": 1}], [T0 + 1, "n", {"V": 2}]]),
            "sentat": str(round(NOW + fraction))}
    requests.post(f"{server.url}/input/bulk.json", data=form, timeout=5,
                  headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert [p.time for p in server.stored()] == [T0 - 1, T0]


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_correct_skew_sends_the_truncated_clock(
        make_sink: MakeSink, server: ContractServer, clock: FakeClock, fraction: float) -> None:
    """correct_skew=true sends floor(now) like PHP's time(): no shift at any fraction when
    the request arrives within the same second (a -1 s shift with a rounded clock)."""
    clock.t = NOW + fraction
    server.clock = lambda: NOW + fraction + (0.999 - fraction) / 2
    sink = make_sink(correct_skew=True)
    sink.write(batch())
    assert server.requests[0].form["sentat"] == str(int(NOW))
    assert server.stored() == EXPECTED_POINTS


def test_correct_skew_shifts_a_batch_whose_request_crosses_a_second(
        make_sink: MakeSink, server: ContractServer, clock: FakeClock) -> None:
    """The documented cost of correct_skew=true: sent at x.9, processed at (x+1).1, the
    batch lands 1 s late (why it is off by default)."""
    clock.t = NOW + 0.9
    server.clock = lambda: NOW + 1.1
    make_sink(correct_skew=True).write(batch())
    assert {p.time for p in server.stored()} == {T0 + 1, T0 + 2}


# ----------------------------------------------------------------------- failures
@pytest.mark.parametrize(("mode", "error"), [
    ("http500", EmoncmsUnavailable),
    ("reset", EmoncmsUnavailable),
    ("timeout", EmoncmsUnavailable),
    ("error_body", EmoncmsRejected),
    ("invalid_key_body", EmoncmsAuthError),
])
def test_each_failure_raises_its_type_after_one_request(
        make_sink: MakeSink, server: ContractServer, mode: str,
        error: type[EmoncmsError]) -> None:
    """A failure is one request and one typed exception: the outbox, not the sink, retries."""
    server.fail(mode, times=5, delay=1.0)
    sink = make_sink(timeout=0.3)
    with pytest.raises(error) as caught:
        sink.write(batch())
    assert type(caught.value) is error
    if mode in ("reset", "timeout"):
        assert caught.value.__cause__ is not None  # raised from the requests error
    assert server.request_count() == 1
    assert sink.stats()["batches"] == 0


def test_wrong_key_is_an_auth_error(make_sink: MakeSink, server: ContractServer) -> None:
    """HTTP 401 'Invalid API key' raises EmoncmsAuthError; nothing is stored."""
    with pytest.raises(EmoncmsAuthError, match="refused the API key"):
        make_sink(apikey="f" * 32).write(batch())
    assert server.request_count() == 1
    assert server.stored() == []


def test_redirect_is_not_followed(make_sink: MakeSink, server: ContractServer) -> None:
    """A 301 raises (a redirected POST would lose its body) instead of being followed."""
    server.fail("redirect")
    with pytest.raises(EmoncmsError, match="redirects to https://127.0.0.1:1/"):
        make_sink().write(batch())
    assert server.request_count() == 1


def test_refused_connection_is_unavailable(make_sink: MakeSink) -> None:
    """Nothing listening on the port raises EmoncmsUnavailable naming the cause."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EmoncmsUnavailable, match="Connection refused"):
        make_sink(addr=f"http://127.0.0.1:{port}").write(batch())


def test_dns_failure_is_unavailable(make_sink: MakeSink,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that does not resolve raises EmoncmsUnavailable (resolver faked: no network)."""
    def no_dns(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(EmoncmsUnavailable, match="cannot reach"):
        make_sink(addr="http://emoncms.example.invalid").write(batch())


def test_slow_answer_within_timeout_succeeds(make_sink: MakeSink,
                                             server: ContractServer) -> None:
    """A server slower than usual but within the timeout is a success."""
    server.fail("slow", delay=0.3)
    make_sink(timeout=2.0).write(batch())
    assert server.stored() == EXPECTED_POINTS


def test_sink_recovers_after_failures(make_sink: MakeSink, server: ContractServer) -> None:
    """After a failed write, the next write (the outbox's retry) goes through."""
    server.fail("reset")
    sink = make_sink()
    with pytest.raises(EmoncmsUnavailable):
        sink.write(batch())
    sink.write(batch())
    assert server.stored() == EXPECTED_POINTS
    assert server.request_count() == 2


# ----------------------------------------------------------------------- auth
@pytest.fixture
def stripping(server: ContractServer) -> ContractServer:
    """Return the server behind a web server that drops the Authorization header."""
    server.strip_authorization = True
    return server


def test_dropped_header_falls_back_to_the_body_once(
        make_sink: MakeSink, stripping: ContractServer,
        caplog: pytest.LogCaptureFixture) -> None:
    """An empty 200 where ok is due: said once, the same batch resent at once with the key
    as a POST body field (never in the URL or a log), and every later batch sent so."""
    sink = make_sink()
    with caplog.at_level(logging.DEBUG):
        sink.write(batch())
        sink.write(batch(Row(T0 + 5, "mppt", {"PPV": 7})))
    first, resent, later = stripping.requests
    assert (first.auth, first.form.get("apikey")) == (None, None)
    assert first.headers["Authorization"] == f"Bearer {DEFAULT_KEY}"  # sent, then dropped
    for request in (resent, later):
        assert request.auth == "apikey" and request.form["apikey"] == DEFAULT_KEY
        assert "Authorization" not in request.headers and request.query == {}
    assert stripping.stored() == sorted([*EXPECTED_POINTS, Point("mppt", "PPV", T0 + 5, 7.0)])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "drops that header" in warnings[0], warnings
    assert "SetEnvIf Authorization" in warnings[0]
    assert DEFAULT_KEY not in caplog.text
    assert sink.stats()["auth_fallbacks"] == 1 and sink.stats()["batches"] == 2


def test_auth_header_only_reports_the_dropped_header(
        make_sink: MakeSink, stripping: ContractServer) -> None:
    """auth: header never falls back: the empty 200 is an auth failure naming the fix."""
    with pytest.raises(EmoncmsAuthError, match="drops the Authorization header") as caught:
        make_sink(auth="header").write(batch())
    assert isinstance(caught.value, SinkAuthFailed)
    assert "SetEnvIf" in caught.value.hint
    assert stripping.request_count() == 1 and stripping.stored() == []


def test_auth_body_sends_the_key_only_in_the_body(make_sink: MakeSink,
                                                  server: ContractServer) -> None:
    """auth: body puts the key in the POST body from the first request, never a header."""
    make_sink(auth="body").write(batch())
    (request,) = server.requests
    assert request.auth == "apikey" and "Authorization" not in request.headers
    assert request.query == {} and server.stored() == EXPECTED_POINTS


def test_empty_answer_even_with_the_key_in_the_body_is_rejected(
        make_sink: MakeSink, server: ContractServer) -> None:
    """After the fallback, an empty 200 again means addr is not EmonCms's input API:
    EmoncmsRejected (said once, data kept), not an endless outage."""
    server.fail("empty_body", times=2)
    sink = make_sink()
    with pytest.raises(EmoncmsRejected, match="even with the key in the POST body") as caught:
        sink.write(batch())
    assert "check addr" in caught.value.hint
    assert server.request_count() == 2 and server.stored() == []


def test_wrong_key_in_the_body_is_still_an_auth_error(make_sink: MakeSink,
                                                      stripping: ContractServer) -> None:
    """401 after the fallback (a wrong key) stays EmoncmsAuthError: retried slowly."""
    with pytest.raises(EmoncmsAuthError, match="refused the API key"):
        make_sink(apikey="f" * 32).write(batch())
    assert stripping.request_count() == 2 and stripping.stored() == []


# ----------------------------------------------------------------------- idempotency
def test_resend_after_unclear_failure_stores_each_point_once(
        make_sink: MakeSink, server: ContractServer, clock: FakeClock) -> None:
    """Stored-then-timed-out, then resent later: the same points, each once."""
    server.fail("timeout", delay=1.0, process=True)
    sink = make_sink(timeout=0.3)
    with pytest.raises(EmoncmsUnavailable):
        sink.write(batch())
    clock.t += 30  # the outbox retries later; both clocks move on together
    sink.write(batch())
    assert server.stored() == EXPECTED_POINTS
    assert len(server.deliveries) == 2 * len(EXPECTED_POINTS)


def test_resend_gives_the_same_points(make_sink: MakeSink, server: ContractServer) -> None:
    """Writing the same batch twice leaves the server's data as after one write."""
    sink = make_sink()
    sink.write(batch())
    sink.write(batch())
    assert server.stored() == EXPECTED_POINTS


# ----------------------------------------------------------------------- names
def test_bad_names_are_not_sent_and_warned_once(make_sink: MakeSink, server: ContractServer,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A node or input emoncms would rename or drop is warned about once and left out."""
    rows = (Row(T0, "bmv/700", {"V": 12.5}),
            Row(T0, "bmv700", {"V": 12.5, "I+": 1.0, "x" * 65: 2.0}))
    sink = make_sink()
    with caplog.at_level(logging.WARNING):
        sink.write(batch(*rows))
        sink.write(batch(*rows))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert any("'bmv/700'" in w and "rows are not sent" in w for w in warnings)
    assert any("'I+'" in w for w in warnings)
    assert any("is 65 bytes long" in w for w in warnings)
    assert server.stored() == [Point("bmv700", "V", T0, 12.5)]
    assert server.renamed == []
    assert sink.stats()["skipped_names"] == 6


def test_start_warns_about_names_the_item_lists(make_sink: MakeSink,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Names in the output's columns are checked at start-up, before any data flows."""
    with caplog.at_level(logging.WARNING):
        make_sink(item={"columns": {"bmv700": ["V", "H#1"], "a_very_long_input_name": ["V"]}})
    messages = caplog.text
    assert "'H#1'" in messages and "'a_very_long_input_name'" in messages


def test_node_prefix_is_prepended(make_sink: MakeSink, server: ContractServer) -> None:
    """node_prefix namespaces every node."""
    make_sink(node_prefix="site1_").write(batch(mppt_row()))
    assert {p.node for p in server.stored()} == {"site1_mppt"}


def test_long_names_pass_when_limits_are_lifted(make_sink: MakeSink,
                                                server: ContractServer) -> None:
    """A self-hosted server takes long names once the emoncms.org limits are lifted."""
    node = "a_very_long_node_name"
    make_sink(max_node_length=None).write(batch(Row(T0, node, {"V": 1})))
    assert server.stored() == [Point(node, "V", T0, 1.0)]


# ----------------------------------------------------------------------- lifecycle
def test_close_is_idempotent_and_start_makes_no_request(make_sink: MakeSink,
                                                        server: ContractServer) -> None:
    """start() prepares without a request; close() twice is fine."""
    sink = make_sink()
    assert server.request_count() == 0
    sink.close()
    sink.close()


# ----------------------------------------------------------------------- secrets
def test_key_never_in_logs_errors_or_repr(make_sink: MakeSink, server: ContractServer,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """With debug logging, the key appears in no log record, exception text or repr."""
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        sink = make_sink(timeout=0.3)
        sink.write(batch())
        for mode in ("http500", "reset", "timeout", "invalid_key_body", "error_body",
                     "redirect"):
            server.fail(mode, delay=1.0)
            with pytest.raises(EmoncmsError) as caught:
                sink.write(batch())
            texts.append("".join(traceback.format_exception(caught.value)))
        with pytest.raises(EmoncmsAuthError) as caught:
            make_sink(apikey="f" * 32).write(batch())
        texts.append("".join(traceback.format_exception(caught.value)))
    texts += [caplog.text, repr(sink), repr(sink._conf), str(sink._conf),
              repr(sink._session), repr(sink._session.auth if sink._session else None)]
    assert caplog.records  # debug logging did run
    for text in texts:
        assert DEFAULT_KEY not in text
        assert "f" * 32 not in text


def test_the_sink_keeps_the_shipped_contract(make_sink: MakeSink, server: ContractServer) -> None:
    """vemonitor.testing.check_sink_contract: close before start, a retried batch stored once
    (EmonCms keys a value by node, name and second)."""
    sample = testing.batch("emon", testing.rows(T0, 5, "bmv"),
                           testing.rows(T0, 3, "solar", {"PPV": 120}))
    testing.check_sink_contract(lambda: make_sink(start=False), sample,
                                lambda: len({(p.node, p.time) for p in server.stored()}))
