"""Tell a scheme mismatch (``http://`` to a TLS port, ``https://`` to a plain one) from an outage.

Retrying cannot fix either, so the sink raises :class:`InfluxSchemeMismatch` (a
``SinkRejected``): the core says it once, with the fix, keeps every batch in the
durable outbox and tries again only at the slow pace; after ``host`` is corrected
and vemonitor restarted, the outbox delivers them first (docs/integrations.md).
Before this, each batch's HTTP 400 was an ERROR and the batch was set aside.

How a server answers the wrong scheme:

* ``http://`` to a TLS port: most servers answer HTTP 400 with a fixed text
  (:data:`TLS_PORT_ANSWERS`); some close the connection without a word
  (VictoriaMetrics with ``-tls``, seen on this project's test servers). For the
  latter we try one TLS handshake on that port: when it completes, the port is TLS.
* ``https://`` to a plain port: the TLS handshake fails with a protocol error (not
  a certificate error); we then send one plain ``HEAD /`` and, when the answer
  starts with ``HTTP/``, the port is plain HTTP.

The probes run only after such a failure, with the connector's own timeout, and
carry no credentials.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions

# Body texts of a TLS port's HTTP 400 to a plain request, and where each comes from.
TLS_PORT_ANSWERS: tuple[tuple[str, str], ...] = (
    # Go's net/http server (server.go, "Client sent an HTTP request to an HTTPS server."):
    # influxd 1.x/2.x, Traefik, Caddy; influxd 1.6 answers it on this project's tests.
    ("client sent an http request to an https server", "Go net/http"),
    # nginx's 497 error page, sent as 400 (ngx_http_special_response.c).
    ("the plain http request was sent to https port", "nginx"),
    # Apache httpd mod_ssl (ssl_engine_kernel.c / ssl_engine_io.c).
    ("speaking plain http to an ssl-enabled server port", "Apache httpd"),
)


def tls_port_answer(status: int, text: str) -> bool:
    """Return True when an HTTP answer is a TLS port's refusal of a plain request."""
    if status != 400:
        return False
    low = " ".join(text.lower().split())
    return any(known in low for known, _ in TLS_PORT_ANSWERS)


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default


def speaks_tls(url: str, timeout: float) -> bool:
    """Return True when the port of ``url`` completes a TLS handshake (certificate unchecked:
    only the protocol is asked; nothing is sent after the handshake)."""
    host, port = _address(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host or None):
            return True
    except (OSError, ValueError):
        return False


def speaks_plain_http(url: str, timeout: float) -> bool:
    """Return True when the port of ``url`` answers a plain ``HEAD /`` with ``HTTP/``."""
    host, port = _address(url)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode("ascii", "replace"))
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def _closed_without_answer(err: requests.RequestException) -> bool:
    """Return True when the server accepted the connection and broke it off: unanswered,
    or answered with a few bytes and closed while the request body was still going
    (influxd's 400 races the upload: then requests reads a broken answer)."""
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return True
    cause = err.args[0] if err.args else None
    return isinstance(err, requests.ConnectionError) and \
        isinstance(cause, urllib3.exceptions.ProtocolError)


def _tls_protocol_error(err: requests.RequestException) -> bool:
    """Return True for a TLS handshake that failed on the protocol, not on a certificate."""
    return isinstance(err, requests.exceptions.SSLError) and \
        "CERTIFICATE_VERIFY_FAILED" not in str(err) and "hostname" not in str(err).lower()


def mismatch_after(err: requests.RequestException, url: str, timeout: float) -> str | None:
    """Return what is wrong when a failed request was a scheme mismatch, else None."""
    scheme = urlsplit(url).scheme
    if scheme == "http" and _closed_without_answer(err) and speaks_tls(url, timeout):
        return "http:// was sent to a TLS port (the server broke the connection off)"
    if scheme == "https" and _tls_protocol_error(err) and speaks_plain_http(url, timeout):
        return "https:// was sent to a plain HTTP port (the TLS handshake failed)"
    return None


def with_scheme(url: str, to: str) -> str:
    """Return ``url`` with the scheme ``to`` (http or https), the rest as it was."""
    return urlunsplit((to, *urlsplit(url)[1:]))


def fix_for(reason: str, host: str) -> str:
    """Return the ``host`` value that ends the mismatch ``reason`` describes."""
    return with_scheme(host, "https" if reason.startswith("http://") else "http")
