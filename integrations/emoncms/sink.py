"""The EmonCms sink: one ``POST <addr>/input/bulk.json`` per batch, one attempt, typed errors.

The outbox in front of every sink retries with backoff, so this sink never
retries by itself: urllib3 retries and redirects are off. The API key travels
only in an ``Authorization: Bearer`` header (emoncms's index.php reads it when
no ``apikey`` parameter is given, per rfc6750) and is kept out of URLs, logs,
messages and ``repr()``.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from integrations.emoncms.errors import EmoncmsAuthError, EmoncmsError, EmoncmsUnavailable
from integrations.emoncms.names import check_names
from integrations.emoncms.payload import Encoded, bulk_data, encode_rows
from integrations.emoncms.schema import EmoncmsConnector, EmoncmsOutput
from vemonitor.logsafe import MASK
from vemonitor.model import Batch
from vemonitor.registry import Context

log = logging.getLogger(__name__)

BULK_PATH = "/input/bulk.json"
SNIPPET = 200  # characters of an unexpected answer quoted in an error
# Answers meaning the key was refused: index.php's 401 body, or a proxy/old server's 200.
AUTH_FAILURE = re.compile(r"invalid api ?key|invalid_apikey|authentication required", re.I)
ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")
TRANSIENT_4XX = frozenset({408, 425, 429})  # the request may succeed later as it is


class BearerAuth(AuthBase):
    """Put the API key in the Authorization header (and nowhere else, not even repr)."""

    def __init__(self, apikey: str) -> None:
        self._header = f"Bearer {apikey}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return f"BearerAuth({MASK})"


class EmoncmsSink:
    """Sends each batch to emoncms's input/bulk API; succeeds on ``ok`` or raises."""

    def __init__(self, item: EmoncmsOutput, connector: EmoncmsConnector, ctx: Context) -> None:
        self.name = item.name or "emoncms"
        self.url = connector.addr.rstrip("/") + BULK_PATH
        self.stats: Counter[str] = Counter()
        self._item = item
        self._conf = connector
        self._clock = ctx.clock
        self._session: requests.Session | None = None
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"EmoncmsSink(output={self.name!r}, url={self.url!r})"

    # ------------------------------------------------------------------ contract
    def start(self) -> None:
        """Report names emoncms would not keep and prepare the HTTP session (no request)."""
        for warning in check_names(self._item, {}, self._conf):
            self._warn_once(warning, warning)
        if self._session is not None:
            return
        session = requests.Session()
        # Set as auth, not as a header: a ~/.netrc entry would otherwise replace it.
        session.auth = BearerAuth(self._conf.apikey)
        session.verify = self._conf.verify_tls
        session.headers["Accept"] = "text/plain, application/json"
        adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session

    def write(self, batch: Batch) -> None:
        """Send the batch in one request; return on ``ok``, raise an EmoncmsError otherwise."""
        if self._session is None:
            self.start()
        assert self._session is not None
        encoded = encode_rows(batch.rows, output=self.name, node_prefix=self._conf.node_prefix,
                              node_max=self._conf.max_node_length,
                              name_max=self._conf.max_name_length)
        self._report(encoded)
        if not encoded.entries:
            log.debug("emoncms %s: nothing numeric to send in a batch of %d rows", self.name,
                      len(batch.rows))
            return
        body, headers = self._body(encoded)
        self.stats["requests"] += 1
        response = self._post(self._session, body, headers)
        self._check(response)
        self.stats["batches"] += 1
        self.stats["points"] += encoded.points

    def close(self) -> None:
        """Release the HTTP session (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ request
    def _body(self, encoded: Encoded) -> tuple[bytes, dict[str, str]]:
        """Return the form body (compressed if configured) and its headers."""
        fields = {"data": bulk_data(encoded.entries)}
        if self._conf.correct_skew:
            # Rounded, not truncated: with synced clocks and < 0.5 s latency the
            # server's correction is then exactly 0, so a resend lands on the same times.
            fields["sentat"] = str(round(self._clock.now()))
        else:
            fields["time"] = "0"  # entry times are absolute as they are
        body = urlencode(fields).encode("utf-8")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._conf.compress:
            body = zlib.compress(body)
            headers["Content-Encoding"] = "deflate"  # HTTP's "deflate" is the zlib format
        log.debug("emoncms %s: POST %s: %d entries, %d points, %d bytes", self.name, self.url,
                  len(encoded.entries), encoded.points, len(body))
        return body, headers

    def _post(self, session: requests.Session, body: bytes,
              headers: dict[str, str]) -> requests.Response:
        """Make the one attempt, turning transport failures into typed errors."""
        timeout = self._conf.timeout
        try:
            # verify= per request: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a
            # session's verify=False (psf/requests#3829), silently turning it back on/off.
            return session.post(self.url, data=body, headers=headers,
                                timeout=(timeout, timeout), allow_redirects=False,
                                verify=self._conf.verify_tls)
        except requests.Timeout as err:
            raise EmoncmsUnavailable(f"emoncms {self.name}: no answer from {self.url} within "
                                     f"{timeout:g} s") from err
        except requests.ConnectionError as err:
            raise EmoncmsUnavailable(f"emoncms {self.name}: cannot reach {self.url}: "
                                     f"{self._reason(err)}") from err
        except requests.RequestException as err:
            raise EmoncmsError(f"emoncms {self.name}: request to {self.url} failed: "
                               f"{self._reason(err)}") from err

    def _check(self, response: requests.Response) -> None:
        """Return when emoncms answered ``ok``; raise the error the answer means otherwise."""
        status = response.status_code
        text = response.text.strip()
        where = f"emoncms {self.name}: {self.url}"
        if status == 401 or AUTH_FAILURE.search(text):
            raise EmoncmsAuthError(f"{where} refused the API key (HTTP {status}); check apikey "
                                   "is the account's Read & Write key")
        if status >= 500 or status in TRANSIENT_4XX:
            raise EmoncmsUnavailable(f"{where} answered HTTP {status}: {self._snippet(text)}")
        if 300 <= status < 400:
            location = self._redact(response.headers.get("Location", "?"))
            raise EmoncmsError(f"{where} redirects to {location} (HTTP {status}); set addr to "
                               "the final URL, a redirected POST loses its data")
        if status != 200:
            raise EmoncmsError(f"{where} answered HTTP {status}: {self._snippet(text)}")
        if text != "ok":
            raise EmoncmsUnavailable(f"{where} did not accept the batch: {self._snippet(text)}")

    # ------------------------------------------------------------------ reporting
    def _report(self, encoded: Encoded) -> None:
        """Count what was left out; warn once per bad name, note once per text input."""
        self.stats["skipped_names"] += encoded.skipped_names
        self.stats["skipped_values"] += encoded.skipped_values
        for key, warning in encoded.warnings.items():
            self._warn_once(key, warning)
        for node, name in encoded.text_inputs:
            if f"text:{node}:{name}" not in self._warned:
                self._warned.add(f"text:{node}:{name}")
                log.info("emoncms %s: input %r of node %r carries text, which emoncms cannot "
                         "store: not sent", self.name, name, node)

    def _warn_once(self, key: str, warning: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", warning)

    def _snippet(self, text: str) -> str:
        """Return a short, key-free quote of an answer (the message of a JSON error)."""
        try:
            data: Any = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "message" in data:
            text = str(data["message"])
        text = " ".join(text.split())
        short = text if len(text) <= SNIPPET else text[:SNIPPET] + "..."
        return repr(self._redact(short)) if short else "an empty body"

    def _reason(self, err: BaseException) -> str:
        """Return the root cause of a requests error in a few words, without the key."""
        text = str(err)
        found = ERRNO.search(text)
        if found:
            return self._redact(found.group(0).strip())
        for cause in ("RemoteDisconnected", "ConnectionResetError", "NameResolutionError",
                      "SSLError", "ProtocolError"):
            if cause in text:
                return cause
        return type(err).__name__

    def _redact(self, text: str) -> str:
        key = self._conf.apikey
        return text.replace(key, MASK) if key else text
