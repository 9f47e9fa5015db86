"""The error taxonomy shared by the core and every integration.

What the core does with an error depends only on its class, never on its name:

=================  =========================================================  ==========
class              meaning                                                    exit / retry
=================  =========================================================  ==========
ConfigError        a user mistake in a configuration (file, key path, what)   exit 2
IntegrationError   an integration is missing, broken or misused               exit 2
OutboxError        an outbox file cannot be used (disk full, read-only...)    see outbox
SinkUnavailable    the server cannot be reached now: retried with backoff     backoff
SinkAuthFailed     the server refused the credentials: retried slowly         slow retry
SinkRejected       the server refuses every batch for a reason retrying will  said once,
                   not fix (foreign Redis db, unknown bucket, format error)   data kept
BatchRejected      this one batch can never be accepted (undecodable, a row   dead-letter,
                   the server refuses by content): the others still can       go on
=================  =========================================================  ==========

Decision (written down here because nobody answers questions): a ``SinkRejected``
output keeps every row in its outbox and is tried again only at the slow
credentials pace, so fixing the server side (creating the bucket, emptying the
db) resumes delivery without a restart, and the log says it once, with the fix.
Integrations subclass these; ``hint`` is the fix shown to the user.
"""

from __future__ import annotations


class VemonitorError(Exception):
    """Base of every error vemonitor raises on purpose (never a bug)."""


class ConfigError(VemonitorError):
    """A user mistake in a configuration; printed as one line, exit status 2."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.key = key

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key) if part)
        return f"{where}: {self.message}" if where else self.message


class IntegrationError(VemonitorError):
    """An integration is missing, broken, or misused; the message names it."""


class OutboxError(VemonitorError):
    """The outbox file cannot be used (disk full, read-only, corrupt); names the file."""


class SinkError(VemonitorError):
    """A sink did not accept a batch; the subclass tells the sender how to go on."""

    def __init__(self, message: str = "", *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class SinkUnavailable(SinkError):
    """The server cannot be reached or did not answer: an outage, retried with backoff."""


class SinkAuthFailed(SinkError):
    """The server refused the credentials: retried slowly, never in a storm."""


class SinkRejected(SinkError):
    """The server refuses every batch and retrying will not fix it: said once, data kept.

    ``setting``: the connector key whose value the user should change (e.g. a Redis
    ``db``), named with its full path where the core reports the error.
    """

    setting: str | None = None


class BatchRejected(SinkError):
    """This batch can never be accepted: it is dead-lettered and delivery goes on."""


def is_auth_failure(err: BaseException) -> bool:
    """Return True for credential failures (slow retry)."""
    return isinstance(err, SinkAuthFailed)


def is_permanent(err: BaseException) -> bool:
    """Return True for failures retrying will not fix (said once, data kept)."""
    return isinstance(err, SinkRejected)
