"""Credentials and TLS against a real mosquitto: one clear auth error, never the password."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from vemonitor_integrations.mqtt.sink import MqttAuthError, MqttSink, MqttUnavailable

from tests.integrations.helpers import NOW
from tests.integrations.mqtt.certs import make_certs
from tests.integrations.mqtt.support import Namespace, batch, observe, rows
from tests.servers import MosquittoServer
from vemonitor.delivery import SinkAuthError, _describe, is_auth_error

PASSWORD = "s3cret-Pa55"
MakeSink = Callable[..., MqttSink]


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """Start a mosquitto that only lets user 'vemonitor' in."""
    with MosquittoServer(workdir=tmp_path_factory.mktemp("auth"),
                         users={"vemonitor": PASSWORD}) as server:
        yield server


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """Start a TLS-only mosquitto with a certificate for 127.0.0.1 from a test CA."""
    directory = tmp_path_factory.mktemp("tls")
    with MosquittoServer(workdir=directory, tls=make_certs(directory / "certs")) as server:
        yield server


def test_right_password_connects_and_publishes(make_sink: MakeSink, auth_broker: MosquittoServer,
                                               ns: Namespace) -> None:
    """username/password accepted: rows arrive."""
    observer = observe(auth_broker.port, auth=("vemonitor", PASSWORD))
    try:
        sink = make_sink(port=auth_broker.port,
                         connector={"username": "vemonitor", "password": PASSWORD})
        sink.start()
        sink.write(batch(rows("mppt", NOW, 1, PPV=7)))
        assert observer.wait(f"{ns.base}/mppt/state").json()["PPV"] == 7
    finally:
        observer.close()


def test_wrong_password_is_one_clear_auth_error(make_sink: MakeSink, auth_broker: MosquittoServer,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A refused password: a SinkAuthError naming broker and user, logged once, no retry storm."""
    caplog.set_level(logging.INFO, logger="vemonitor_integrations.mqtt")
    log_file = auth_broker.broker_log
    before = log_file.read_text(errors="replace").count("not authorised")
    sink = make_sink(port=auth_broker.port,
                     connector={"username": "vemonitor", "password": "wrong-" + PASSWORD})
    with pytest.raises(MqttAuthError) as caught:
        sink.start()
    err = caught.value
    assert isinstance(err, SinkAuthError) and is_auth_error(err)
    text = str(err)
    assert "refused the credentials of user 'vemonitor'" in text
    assert "Bad user name or password" in text or "Not authorized" in text
    assert PASSWORD not in text and PASSWORD not in _describe(err)
    time.sleep(2.5)  # paho would have retried twice by now if we let it
    for _ in range(2):  # the core's (slow) retries: each is one attempt, not logged again
        with pytest.raises(MqttAuthError):
            sink.write(batch(rows("mppt", NOW, 1, PPV=7)))
    # mosquitto may log a refusal just after sending it: wait for the third line (under
    # load), then check that no fourth follows (paho's own retries are off).
    def attempts() -> int:
        return log_file.read_text(errors="replace").count("not authorised") - before

    deadline = time.monotonic() + 15
    while attempts() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    assert attempts() == 3
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "refused the credentials" in errors[0].getMessage()
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert PASSWORD not in repr(sink) and PASSWORD not in repr(sink.connector)


def test_tls_with_generated_certificates(make_sink: MakeSink, tls_broker: MosquittoServer,
                                         ns: Namespace) -> None:
    """tls + ca_certs: the sink verifies the broker's certificate and publishes."""
    ca, _, _ = tls_broker.tls or ("", "", "")
    observer = observe(tls_broker.port, tls_ca=ca)
    try:
        sink = make_sink(port=tls_broker.port, connector={"tls": True, "ca_certs": ca})
        sink.start()
        sink.write(batch(rows("mppt", NOW, 1, PPV=9)))
        assert observer.wait(f"{ns.base}/mppt/state").json()["PPV"] == 9
        observer.wait(f"{ns.base}/bridge/availability", lambda m: m.payload == b"online")
    finally:
        observer.close()


def test_tls_with_an_unknown_ca_does_not_connect(make_sink: MakeSink, tls_broker: MosquittoServer,
                                                 tmp_path: Path) -> None:
    """A certificate from another CA is refused: start() raises an outage, not a hang."""
    other_ca, _, _ = make_certs(tmp_path / "other")
    sink = make_sink(port=tls_broker.port,
                     connector={"tls": True, "ca_certs": other_ca, "timeout": 1.0})
    with pytest.raises(MqttUnavailable, match="TLS"):
        sink.start()


def test_missing_tls_file_is_named(make_sink: MakeSink, tls_broker: MosquittoServer,
                                   tmp_path: Path) -> None:
    """A ca_certs path that does not exist gives an error naming TLS setup."""
    sink = make_sink(port=tls_broker.port,
                     connector={"tls": True, "ca_certs": str(tmp_path / "nope.pem")})
    with pytest.raises(MqttUnavailable, match="TLS setup failed"):
        sink.start()
