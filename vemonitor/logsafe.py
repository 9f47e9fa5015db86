"""Keep secrets out of logs and printed output, debug included.

Every secret value of the configuration (values under keys such as password,
apikey, token) is replaced by ``***`` in every log record that passes through the
root handlers, and in any mapping printed by vemonitor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret replaced by the mask (longest first)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def redact_mapping(node: Any, secrets: Iterable[str]) -> Any:
    """Return a copy of ``node`` with secret values masked wherever they appear."""
    secrets = tuple(secrets)
    if isinstance(node, Mapping):
        return {k: redact_mapping(v, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_mapping(v, secrets) for v in node]
    if isinstance(node, str):
        return redact_text(node, secrets)
    if node is not None and not isinstance(node, bool) and str(node) in secrets:
        return MASK
    return node


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in the fully formatted message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            masked = redact_text(message, self.secrets)
            if record.exc_info and record.exc_info[1] is not None:
                masked = redact_text(f"{masked} ({record.exc_info[1]})", self.secrets)
                record.exc_info = None
                record.exc_text = None
            record.msg, record.args = masked, None
        return True


def install(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` on every handler of the root logger."""
    log_filter = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(log_filter)
