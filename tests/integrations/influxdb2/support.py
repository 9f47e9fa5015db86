"""influxDb2 test support: the token the test servers accept, a device, the sink factory's type.

A plain module, not a conftest: test modules import from here, conftest.py holds the fixtures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vemonitor_integrations.influxdb2.sink import InfluxSink

TOKEN = "tok-0123456789abcdef"


class Device:
    """A source describing its device, as the vedirect source does."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def device(self) -> dict[str, Any]:
        """Return the device identity."""
        return dict(self.info)


SinkMaker = Callable[..., InfluxSink]
