"""The exceptions an EmonCms sink raises: the outbox decides how to retry from the type."""

from __future__ import annotations

from vemonitor.api import SinkAuthFailed, SinkError, SinkRejected, SinkUnavailable


class EmoncmsError(SinkError):
    """A batch was not accepted by EmonCms (base of the more precise errors below)."""


class EmoncmsAuthError(EmoncmsError, SinkAuthFailed):
    """The server refused the API key (HTTP 401 or an 'Invalid API key' body)."""


class EmoncmsUnavailable(EmoncmsError, SinkUnavailable):
    """The server could not be reached or did not answer ``ok`` (5xx, timeout, reset...)."""


class EmoncmsRejected(EmoncmsError, SinkRejected):
    """EmonCms refuses every batch for a reason retrying cannot fix: said once, data kept.

    ``{"success": false, "message": ...}`` (a body it cannot parse, a node limit
    reached) or an empty answer even with the key in the POST body; ``hint`` says
    what to change.
    """
