"""Keep secrets out of logs and printed output, debug included.

Every secret value of the configuration (values under keys such as password,
apikey, token) is replaced by ``***`` in every log record that passes through the
root handlers, and in any mapping printed by vemonitor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from vemonitor import secretpolicy

MASK = "***"


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret masked as a whole token (vemonitor.secretpolicy)."""
    return secretpolicy.redact_text(text, secrets)


def redact_mapping(node: Any, secrets: Iterable[str]) -> Any:
    """Return a copy of ``node`` with secret values masked wherever they appear."""
    secrets = tuple(secrets)
    if isinstance(node, Mapping):
        return {k: redact_mapping(v, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_mapping(v, secrets) for v in node]
    if isinstance(node, str):
        return MASK if node in secrets else redact_text(node, secrets)
    if node is not None and not isinstance(node, bool) and str(node) in secrets:
        return MASK
    return node


RedactingFilter = secretpolicy.RedactingFilter


def install(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` on every handler of the root logger (replacing an earlier filter:
    a ``-m`` sweep installs one per job)."""
    log_filter = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(log_filter)
