"""Issue 25 point 9: `homeassistant/status` is logged once per change, not per `online`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
from vemonitor_integrations.mqtt.sink import MqttSink

from tests.integrations.mqtt.support import Namespace, Observer, observe
from tests.servers import MosquittoServer

MESSAGES = 5000


def _status_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Home Assistant is" in r.getMessage()]


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_5000_onlines_are_one_log_line_and_one_discovery(
        make_sink: Callable[..., MqttSink], observer: Observer, ns: Namespace,
        broker: MosquittoServer, caplog: pytest.LogCaptureFixture) -> None:
    """5000 non-retained `online` on a real mosquitto: one line and one re-publish of
    discovery (there were 5000 lines); `offline` then `online` are each a change."""
    caplog.set_level(logging.INFO, logger="vemonitor_integrations")
    sink = make_sink()
    sink.start()
    _wait(lambda: len(observer.configs(ns.prefix)) > 0, "no discovery at start")
    time.sleep(0.3)
    observer.clear()
    ha = observe(broker.port, "nothing/here")
    topic = f"{ns.prefix}/status"
    try:
        infos = [ha.client.publish(topic, "online", qos=1) for _ in range(MESSAGES)]
        ha.client.publish(topic, "offline", qos=1)  # the marker: every online was read
        for info in infos:
            info.wait_for_publish(30)
        _wait(lambda: any("'offline'" in line for line in _status_lines(caplog)),
              "the sink never read the final offline")
        assert _status_lines(caplog) == [
            "output mqtt: Home Assistant is online: publishing discovery again",
            "output mqtt: Home Assistant is 'offline'"]
        configs = sum(1 for m in observer.messages if m.topic.endswith("/config"))
        devices = len({m.topic for m in observer.messages if m.topic.endswith("/config")})
        assert configs == devices  # each device's config once, not 5000 times
        ha.client.publish(topic, "online", qos=1).wait_for_publish(5)  # a restart: a change
        _wait(lambda: len(_status_lines(caplog)) == 3, "the change to online was not logged")
    finally:
        ha.close()
