"""The InfluxDB sink: one gzip'd line-protocol POST per batch, one attempt, typed errors.

Endpoints (``api``): ``v2`` posts to ``<host>/api/v2/write?org=&bucket=<db>&precision=``
with ``Authorization: Token <auth>`` (InfluxDB 2.x/3.x, InfluxDB Cloud and
VictoriaMetrics answer it); ``v1`` posts to ``<host>/write?db=&precision=[&rp=]`` with
basic auth (``username``/``auth``) or the token. The outbox in front retries with
backoff, so requests' own retries and redirects are off. Answers map to the
taxonomy of vemonitor/errors.py: 401/403 -> auth failed (slow retry); 404 (unknown
bucket or database, or no write API at that URL) -> rejected (said once, data kept);
400/413/422 -> this batch rejected by content; 408/429/5xx, timeouts, refused
connections -> unavailable (backoff). A scheme mismatch (``http://`` to a TLS port,
``https://`` to a plain one; scheme.py) -> rejected (said once, data kept).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.util.retry import Retry
from vemonitor_integrations.influxdb2.deadline import DeadlineAdapter, overall
from vemonitor_integrations.influxdb2.errors import (
    InfluxAuthError,
    InfluxBatchRejected,
    InfluxError,
    InfluxRejected,
    InfluxSchemeMismatch,
    InfluxUnavailable,
)
from vemonitor_integrations.influxdb2.line import Encoded, encode_point, split_row
from vemonitor_integrations.influxdb2.schema import PRECISIONS, InfluxConnector, InfluxOutput
from vemonitor_integrations.influxdb2.scheme import fix_for, mismatch_after, tls_port_answer

from vemonitor.api import MASK, Batch, Context, Row

log = logging.getLogger(__name__)

SNIPPET = 200
TRANSIENT = frozenset({408, 425, 429})
BY_CONTENT = frozenset({400, 413, 422})
IDENTITY = (("serial", "serial"), ("pid", "pid"), ("product", "product"))  # device() -> tag


class TokenAuth(AuthBase):
    """``Authorization: Token <auth>`` (and nowhere else, not even repr)."""

    def __init__(self, token: str) -> None:
        self._header = f"Token {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return f"TokenAuth({MASK})"


def make_session(conf: InfluxConnector) -> requests.Session:
    """Return a session with the credentials, TLS checking and no automatic retries."""
    session = requests.Session()
    if conf.username and conf.auth:
        session.auth = HTTPBasicAuth(conf.username, conf.auth)
    elif conf.auth:
        session.auth = TokenAuth(conf.auth)  # as auth, so ~/.netrc cannot replace it
    session.verify = conf.verify_ssl
    # The timeout bounds the whole request, not each read (deadline.py).
    adapter = DeadlineAdapter(max_retries=Retry(total=0, read=False, redirect=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class InfluxSink:
    """Writes each batch as line protocol; returns on 2xx or raises an InfluxError."""

    def __init__(self, item: InfluxOutput, connector: InfluxConnector, ctx: Context) -> None:
        self.name = item.name or "influxdb2"
        self.counts: Counter[str] = Counter()  # see stats()
        self._item = item
        self._conf = connector
        self._ctx = ctx
        self._tags = {"site": ctx.block, **item.tags} if ctx.block else dict(item.tags)
        self._strings = frozenset(item.string_fields)
        self._per_second = PRECISIONS[item.precision]
        self.url, self.params = write_endpoint(connector, item)
        self._session: requests.Session | None = None
        self._noted: set[str] = set()

    def __repr__(self) -> str:
        return f"InfluxSink(output={self.name!r}, url={self.url!r})"

    # ------------------------------------------------------------------ contract
    def start(self) -> None:
        """Prepare the HTTP session (no request: validation and start do no writes)."""
        if self._session is None:
            self._session = make_session(self._conf)

    def write(self, batch: Batch) -> None:
        """Send the batch in one request; return on 2xx, raise an InfluxError otherwise."""
        if self._session is None:
            self.start()
        assert self._session is not None
        encoded = self.encode(batch.rows)
        self._note(encoded)
        if not encoded.lines:
            return
        body = encoded.body()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._conf.gzip:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        self.counts["requests"] += 1
        self._check(self._post(self._session, body, headers))
        self.counts["batches"] += 1
        self.counts["points"] += len(encoded.lines)
        self.counts["bytes"] += len(body)

    def stats(self) -> dict[str, int]:
        """Return what this sink counted (vemonitor.api.KeepsStats: exported as metrics)."""
        return Counter(self.counts)  # a copy; a count never made reads 0

    def close(self) -> None:
        """Release the HTTP session (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ encoding
    def encode(self, rows: tuple[Row, ...] | list[Row]) -> Encoded:
        """Return the lines of some rows (one point per row with at least one field)."""
        encoded = Encoded()
        for row in rows:
            tags, fields = split_row(row, self._item.tag_columns, self._base_tags(row.input))
            line = encode_point(self._item.measurement, tags, fields, self._strings,
                                self._per_second, row.time, encoded.skipped)
            if line is None:
                encoded.skipped["empty_rows"] += 1
            else:
                encoded.lines.append(line)
        return encoded

    def _base_tags(self, node: str) -> dict[str, str]:
        """Return the constant tags, the node, and the device identity the input knows."""
        tags = {**self._tags, "node": node}
        info = self._ctx.inputs.get(node)
        device = info.device() if info is not None else {}
        for key, tag in IDENTITY:
            if device.get(key):
                tags[tag] = str(device[key])
        return tags

    # ------------------------------------------------------------------ request
    def _post(self, session: requests.Session, body: bytes,
              headers: dict[str, str]) -> requests.Response:
        """Make the one attempt, turning transport failures into typed errors.

        ``timeout`` bounds the whole request (deadline.py), not each read.
        """
        timeout = self._conf.timeout_s()
        with overall(session, timeout) as deadline:
            try:
                return session.post(self.url, params=self.params, data=body, headers=headers,
                                    timeout=(timeout, timeout), allow_redirects=False)
            except requests.RequestException as err:
                failure = err
        if deadline.expired or isinstance(failure, requests.Timeout):
            raise InfluxUnavailable(f"influxDb2 {self.name}: no complete answer from "
                                    f"{self.url} within {timeout:g} s") from failure
        reason = mismatch_after(failure, self.url, timeout)
        if reason is not None:
            raise self._mismatch(reason) from failure
        if isinstance(failure, requests.ConnectionError):
            raise InfluxUnavailable(f"influxDb2 {self.name}: cannot reach {self.url}: "
                                    f"{type(failure).__name__}") from failure
        raise InfluxUnavailable(f"influxDb2 {self.name}: request to {self.url} failed: "
                                f"{type(failure).__name__}") from failure

    def _check(self, response: requests.Response) -> None:
        """Return on 2xx; raise the error the answer means otherwise."""
        if tls_port_answer(response.status_code, response.text):
            raise self._mismatch(f"http:// was sent to a TLS port (HTTP 400 "
                                 f"{snippet(response.text, self._conf.auth)})")
        raise_for_answer(response.status_code, response.text, f"influxDb2 {self.name}: "
                         f"{self.url}", self._item.db, self._conf.auth)

    def _mismatch(self, reason: str) -> InfluxSchemeMismatch:
        """Return the error for a scheme mismatch, naming the output, connector and fix."""
        key = f"appConnectors.influxDb2.{self._item.source}.host"
        return InfluxSchemeMismatch(
            f"influxDb2 {self.name}: scheme mismatch on {self.url}: {reason}",
            hint=f"set {key} to {fix_for(reason, self._conf.address())} and restart; the "
                 f"batches wait in the outbox until then")

    def _note(self, encoded: Encoded) -> None:
        """Count what was left out; say once per reason why."""
        for reason, count in encoded.skipped.items():
            self.counts[f"skipped_{reason}"] += count
            if reason == "text" and reason not in self._noted:
                self._noted.add(reason)
                log.info("influxDb2 %s: text values are not written unless listed in "
                         "string_fields (a field must keep one type)", self.name)


def write_endpoint(conf: InfluxConnector, item: InfluxOutput) -> tuple[str, dict[str, str]]:
    """Return the write URL and its query parameters for the connector's API."""
    base = conf.address()
    if conf.api == "v1":
        params = {"db": item.db, "precision": item.precision}
        if item.rp:
            params["rp"] = item.rp
        return base + "/write", params
    return base + "/api/v2/write", {"org": conf.org, "bucket": item.db,
                                    "precision": item.precision}


def raise_for_answer(status: int, text: str, where: str, db: str, secret: str | None) -> None:
    """Raise the typed error an HTTP answer to a write means (nothing on 2xx)."""
    if 200 <= status < 300:
        return
    said = snippet(text, secret)
    if status in (401, 403):
        raise InfluxAuthError(f"{where} refused the credentials (HTTP {status}): {said}",
                              hint="check auth (the token, or the 1.x password) and its "
                                   "write permission on the bucket")
    if status == 404:
        raise InfluxRejected(f"{where} answered HTTP 404: {said}",
                             hint=f"create the bucket/database {db!r} (or check host and api)")
    if status in TRANSIENT or status >= 500:
        raise InfluxUnavailable(f"{where} answered HTTP {status}: {said}")
    if status in BY_CONTENT:
        raise InfluxBatchRejected(f"{where} refused the batch (HTTP {status}): {said}")
    if 300 <= status < 400:
        raise InfluxRejected(f"{where} redirects (HTTP {status})",
                             hint="set host to the final URL; a redirected POST loses its data")
    raise InfluxError(f"{where} answered HTTP {status}: {said}")


def snippet(text: str, secret: str | None) -> str:
    """Return a short quote of an answer (the ``message``/``error`` of a JSON one), secret-free."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = str(data.get("message") or data.get("error") or text)
    text = " ".join(text.split())
    if secret:
        text = text.replace(secret, MASK)
    short = text if len(text) <= SNIPPET else text[:SNIPPET] + "..."
    return repr(short) if short else "an empty body"
