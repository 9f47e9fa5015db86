"""The EmonCms sink: one ``POST <addr>/input/bulk.json`` per batch, one attempt, typed errors.

The outbox in front of every sink retries with backoff, so this sink never
retries by itself: urllib3 retries and redirects are off. The API key travels in
an ``Authorization: Bearer`` header (emoncms's index.php reads it when no
``apikey`` parameter is given, per rfc6750) or, when the web server drops that
header, as the ``apikey`` field of the POST body (index.php reads ``$_POST``
first); never in the URL, logs, messages or ``repr()``.

Auth fallback (``auth: auto``, the default): a web server that strips
``Authorization`` (Apache + mod_php without EmonCms's ``SetEnvIf Authorization``
line) hands EmonCms a request without a key, and EmonCms answers ``200`` with an
EMPTY body and stores nothing. That answer, where ``ok`` is due, makes the sink
say once what happened and resend the same batch at once with the key in the
body, which it keeps doing until it stops. Nothing was stored by the empty
answer, so the resend cannot duplicate anything.
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
from vemonitor_integrations.emoncms.errors import (
    EmoncmsAuthError,
    EmoncmsError,
    EmoncmsRejected,
    EmoncmsUnavailable,
)
from vemonitor_integrations.emoncms.names import check_names
from vemonitor_integrations.emoncms.payload import Encoded, bulk_data, encode_rows
from vemonitor_integrations.emoncms.schema import EmoncmsConnector, EmoncmsOutput
from vemonitor_integrations.emoncms.timing import time_fields

from vemonitor.api import MASK, Batch, Context

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


class NoHeaderAuth(AuthBase):
    """No Authorization header (the key is in the body), and no ~/.netrc one either."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request

    def __repr__(self) -> str:
        return "NoHeaderAuth()"


HINT_HEADER = ('add SetEnvIf Authorization "(.*)" HTTP_AUTHORIZATION=$1 to the Apache site '
               "(EmonCms's .htaccess has it)")
HINT_SETENVIF = f"{HINT_HEADER}, or set auth: body"
HINT_COMPRESS = ("set compress: false: stock EmonCms does not inflate request bodies "
                 "(compress is only for a proxy that does)")


class EmoncmsSink:
    """Sends each batch to emoncms's input/bulk API; succeeds on ``ok`` or raises."""

    def __init__(self, item: EmoncmsOutput, connector: EmoncmsConnector, ctx: Context) -> None:
        self.name = item.name or "emoncms"
        self.url = connector.addr.rstrip("/") + BULK_PATH
        self.counts: Counter[str] = Counter()  # see stats()
        self._item = item
        self._conf = connector
        self._clock = ctx.clock
        self._session: requests.Session | None = None
        self._warned: set[str] = set()
        # The key goes in the body from the start (auth: body) or after a fallback.
        self._key_in_body = connector.auth == "body"

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
        session.auth = NoHeaderAuth() if self._key_in_body else BearerAuth(self._conf.apikey)
        session.verify = self._conf.verify_tls
        session.headers["Accept"] = "text/plain, application/json"
        adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session

    def write(self, batch: Batch) -> None:
        """Send the batch in one request (a second one when ``auth: auto`` falls back to the
        body); return on ``ok``, raise an EmoncmsError otherwise."""
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
        response = self._send(self._session, encoded)
        if self._header_dropped(response):
            self._fall_back_to_body(self._session)
            response = self._send(self._session, encoded)
        self._check(response)
        self.counts["batches"] += 1
        self.counts["points"] += encoded.points

    def stats(self) -> dict[str, int]:
        """Return what this sink counted (vemonitor.api.KeepsStats: exported as metrics)."""
        return Counter(self.counts)  # a copy; a count never made reads 0

    def close(self) -> None:
        """Release the HTTP session (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ request
    def _send(self, session: requests.Session, encoded: Encoded) -> requests.Response:
        """Make one request carrying the batch."""
        body, headers = self._body(encoded)
        self.counts["requests"] += 1
        return self._post(session, body, headers)

    def _header_dropped(self, response: requests.Response) -> bool:
        """Return True when an empty 200 says the Authorization header never reached EmonCms."""
        return (self._conf.auth == "auto" and not self._key_in_body
                and response.status_code == 200 and not response.text.strip())

    def _fall_back_to_body(self, session: requests.Session) -> None:
        """Say once that the header is dropped; send the key in the POST body from now on."""
        self._key_in_body = True
        session.auth = NoHeaderAuth()
        self.counts["auth_fallbacks"] += 1
        log.warning("emoncms %s: %s answered an empty 200 to a request with the key in the "
                    "Authorization header: the web server drops that header, so EmonCms saw "
                    "no key; sending the key in the POST body from now on (to keep the "
                    "header: %s)", self.name, self.url, HINT_HEADER)

    def _body(self, encoded: Encoded) -> tuple[bytes, dict[str, str]]:
        """Return the form body (compressed if configured) and its headers."""
        fields = {"data": bulk_data(encoded.entries),
                  **time_fields(self._conf.correct_skew, self._clock.now())}
        if self._key_in_body:
            fields["apikey"] = self._conf.apikey  # index.php reads $_POST['apikey'] first
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
        if text == "ok":
            return
        if not text:
            raise self._empty_answer(where)
        refusal = self._refusal(text)
        if refusal is not None:
            raise EmoncmsRejected(f"{where} refused the batch: {refusal!r}; the data is kept",
                                  hint=HINT_COMPRESS if self._conf.compress
                                  and refusal.startswith("Format error") else
                                  "fix the EmonCms side; delivery resumes by itself")
        raise EmoncmsUnavailable(f"{where} did not accept the batch: {self._snippet(text)}")

    def _empty_answer(self, where: str) -> EmoncmsError:
        """Return the error an empty 200 means: the key never arrived, or addr is not EmonCms."""
        if not self._key_in_body:  # auth: header (auto has fallen back before getting here)
            return EmoncmsAuthError(f"{where} answered an empty 200: the web server drops the "
                                    "Authorization header, so EmonCms saw no key",
                                    hint=HINT_SETENVIF)
        return EmoncmsRejected(f"{where} answered an empty 200 even with the key in the POST "
                               "body: addr does not lead to EmonCms's input API", hint=(
                                   "check addr (the URL EmonCms's web page is at)"))

    def _refusal(self, text: str) -> str | None:
        """Return the message of EmonCms's ``{"success": false, "message": ...}``, if it is one."""
        try:
            data: Any = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, dict) and data.get("success") is False:
            return self._redact(" ".join(str(data.get("message", "")).split())[:SNIPPET])
        return None

    # ------------------------------------------------------------------ reporting
    def _report(self, encoded: Encoded) -> None:
        """Count what was left out; warn once per bad name, note once per text input."""
        self.counts["skipped_names"] += encoded.skipped_names
        self.counts["skipped_values"] += encoded.skipped_values
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
