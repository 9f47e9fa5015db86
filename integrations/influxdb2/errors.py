"""The exceptions the InfluxDB sink raises: the outbox decides how to go on from the type."""

from __future__ import annotations

from vemonitor.api import BatchRejected, SinkAuthFailed, SinkError, SinkRejected, SinkUnavailable


class InfluxError(SinkError):
    """A batch was not accepted by the InfluxDB-compatible server."""


class InfluxAuthError(InfluxError, SinkAuthFailed):
    """HTTP 401/403: the token (``auth``) or user was refused."""


class InfluxUnavailable(InfluxError, SinkUnavailable):
    """The server could not be reached, timed out, or answered 5xx/429/408."""


class InfluxRejected(InfluxError, SinkRejected):
    """Every batch will be refused (unknown bucket/database, no write API at this URL)."""


class InfluxBatchRejected(InfluxError, BatchRejected):
    """This batch is refused by content (line protocol error, field type conflict, too large)."""


class InfluxSchemeMismatch(InfluxRejected):
    """``http://`` to a TLS port or ``https://`` to a plain one (scheme.py): fix ``host``."""

    setting = "host"
