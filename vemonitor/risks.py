"""Say, once at start, every setting that weakens security (issue 14 item 4).

Verification stays on by default everywhere; turning it off is allowed (a
self-signed server on a LAN) but never silent. A connector config reports its
own risks through the optional :class:`HasRisks` ability, and so does an output item
(the MQTT output's ``allow_commands``); the run adds its own:
metrics bound beyond loopback, and a CA bundle taken from the environment
(``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``/``SSL_CERT_FILE``) other than the
system's own, which changes which servers are trusted without a word in the
configuration.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Protocol, runtime_checkable

from vemonitor.config.build import RunSpec

log = logging.getLogger("vemonitor")

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
# The system's bundle on Debian and Raspberry Pi OS (ca-certificates), always trusted.
DEBIAN_TRUST_PATHS = ("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs")


@runtime_checkable
class HasRisks(Protocol):
    """A connector config that can say what weakens its security."""

    def risks(self) -> list[str]:
        """Return one line per risk."""


def is_loopback(host: str) -> bool:
    """Return True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _system_trust_paths() -> set[str]:
    """Return the system's own CA bundle paths (pointing a variable at them changes nothing).

    ssl is imported here, only when a CA-bundle variable names another path than Debian's
    own: ``import ssl`` costs about 5 MiB of RSS, which a daemon without TLS should not
    carry (docs/performance.md).
    """
    import ssl  # noqa: PLC0415

    paths = ssl.get_default_verify_paths()
    candidates = (paths.cafile, paths.capath, paths.openssl_cafile, paths.openssl_capath,
                  *DEBIAN_TRUST_PATHS)
    return {os.path.realpath(p) for p in candidates if p}


def risks(spec: RunSpec) -> list[str]:
    """Return every security risk of a run, one line each."""
    found: list[str] = []
    for connector in spec.connectors.values():
        if isinstance(connector.config, HasRisks):
            found += connector.config.risks()
    for output in spec.outputs:  # an output item may weaken it too (mqtt allow_commands)
        if isinstance(output.item, HasRisks):
            found += output.item.risks()
    metrics = spec.runtime.metrics
    if metrics.port is not None and not is_loopback(metrics.host):
        found.append(f"metrics on {metrics.host}:{metrics.port} are reachable beyond this "
                     f"machine (metrics.host); they name devices and outputs, without "
                     f"authentication")
    # Debian's own bundle paths first: asking ssl for the others imports it (~5 MiB).
    usual = {os.path.realpath(p) for p in DEBIAN_TRUST_PATHS}
    unusual = [name for name in CA_BUNDLE_VARIABLES
               if os.environ.get(name) and os.path.realpath(os.environ[name]) not in usual]
    system = _system_trust_paths() if unusual else set()
    for name in unusual:
        if os.path.realpath(os.environ[name]) not in system:
            found.append(f"{name}={os.environ[name]} from the environment decides which TLS "
                         f"servers are trusted")
    return found


def warn(spec: RunSpec) -> None:
    """Log one WARNING per risk (at start)."""
    for line in risks(spec):
        log.warning("security: %s", line)
