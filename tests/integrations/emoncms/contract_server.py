"""A local stand-in for emoncms's input API, following emoncms's own PHP source.

What it reproduces (index.php, param.php, Modules/input/input_methods.php,
input_controller.php, input_model.php of emoncms/emoncms 11.16.8; each rule was
also measured against that version running on PHP 8.2 + MariaDB + Redis):

* Routes ``/input/bulk(.json)`` and ``/input/post(.json)[/<node>]``, GET or POST;
  parameters from the query string and the form body, the body winning (param.php).
* Auth: ``apikey`` parameter (query, then body) or ``Authorization: Bearer <key>``.
  A wrong key is HTTP 401 with the body ``Invalid API key``. A request without a
  key (none sent, or the web server dropped the header: ``strip_authorization``)
  gets HTTP 200 with an EMPTY body and stores nothing (input_controller returns
  false and the login fallback prints nothing on the bulk/post routes).
* bulk: ``data=[[t, node, v1, {"name": v}, ...], ...]``; the reference time is
  ``time() - sentat``, else ``time() - offset``, else ``time``, else
  ``time() - t_last`` (legacy), with PHP's ``time()`` TRUNCATING the clock; each
  entry's time is reference + ``int(t)``. Every key of an object is an input
  (``foreach`` since 11.0.5; before, only the first key); bare values are named
  1, 2, ... Values are cast to float (``true`` -> 1, ``false``/``null``/text -> 0),
  entries with fewer than three items are skipped.
* post: ``node`` (or the path), ``time`` or now, ``fulljson`` / ``json`` / ``csv`` / ``data``.
* Names: node and input names are cleaned with ``preg_replace('/[^\\p{N}\\p{L}_\\s\\-.]/u',
  '')`` BEFORE the lookup (process_node), so ``odd/names`` is the input node
  ``oddnames`` on every post, never a duplicate; with ``org_limits`` nodes over 16
  bytes and names over 64 bytes are dropped (emoncms.org).
* Success is the text ``ok`` (``{"success": true}`` for fulljson); a format error is
  HTTP 200 with ``{"success": false, "message": ...}``.
* Request bodies are NOT inflated: PHP does not decode ``Content-Encoding``, so a
  deflate body leaves ``$_POST`` empty and bulk answers ``{"success": false,
  "message": "Format error, json string supplied is not valid"}``. With
  ``inflate=True`` the server inflates deflate/gzip bodies first, as a
  decompressing proxy in front of emoncms would.

Points are keyed by (node, name, time) as emoncms feeds key data by time, so a
resent batch replaces rather than duplicates; ``deliveries`` keeps every point
processed, duplicates included. Failures on demand: ``fail(mode, ...)``.

Feeds (``feed=``): by default every point is kept by (node, name, time), whatever its
time. A real input stores values only through its process list, into a feed, and the
feed engines refuse some past points (emoncms 11.16.8, read in
Modules/feed/engine/PHPTimeSeries.php and PHPFina.php ``post_multiple``, and measured
with the MPPT's day rows: the first run's 30 days, sent newest first, left 10 in each
feed). ``feed="phptimeseries"`` copies PHPTimeSeries: a point older than the series'
newest is kept only when a point at exactly that time exists (updated in place),
else dropped. ``feed="phpfina"`` copies PHPFina with ``feed_interval`` seconds: the
time is floored to a multiple of the interval (in UTC, so a 1-day feed holds a
Europe/Paris midnight under the day before's 00:00 UTC), the first point fixes the
feed's start, an earlier point is dropped, a later one fills its slot (updated in
place when the slot exists). Dropped points are listed in ``dropped``.

Run as a process (``python contract_server.py --port N --journal FILE``) it can be
killed and restarted like a real server: with a journal, the points of each request
are appended to the file (one JSON line per request) BEFORE the answer goes out and
read back at start, so nothing it acknowledged is lost to a SIGKILL (not fsynced: a
killed process, not a power cut). ``read_journal`` returns what such a file holds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_KEY = "0123456789abcdef0123456789abcdef"  # the same as emon_helpers.KEY
FEEDS = (None, "phptimeseries", "phpfina")  # see "Feeds" above
MODES = ("http500", "timeout", "reset", "slow", "invalid_key_body", "error_body", "redirect",
         "empty_body")


@dataclass(frozen=True, order=True)
class Point:
    """One stored input value."""

    node: str
    name: str
    time: int
    value: float


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    auth: str | None  # "bearer", "apikey" or None
    body: bytes


@dataclass
class Failure:
    """A failure to inject into the next ``times`` requests."""

    mode: str
    times: int = 1
    delay: float = 0.0
    process: bool = False  # store the data before failing (an unclear failure)


@dataclass
class Answer:
    """What the server replies."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def sanitize(name: str) -> str:
    """Return ``name`` as emoncms stores it: only letters, digits, ``_``, ``-``, ``.``, spaces.

    process_node and create_input: ``preg_replace('/[^\\p{N}\\p{L}_\\s\\-.]/u', '', $name)``,
    applied to the node before it is looked up, so a cleaned node is the same node
    on every post (measured: ``odd/names`` -> ``oddnames``, one node).
    """
    return "".join(c for c in name if c.isalnum() or c in "_-." or c.isspace())


def php_int(value: Any) -> int:
    """Return PHP's ``(int)`` cast of a JSON or form value."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        match = re.match(r"\s*[+-]?\d+", value)
        return int(match.group(0)) if match else 0
    return 0


def php_float(value: Any) -> float:
    """Return PHP's ``(float)`` cast of a JSON or form value (null and text become 0)."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        match = re.match(r"\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)", value)
        return float(match.group(0)) if match else 0.0
    return 0.0


def php_str(value: Any) -> str:
    """Return PHP's string form of a scalar (for ``strlen``)."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    return str(value)


class ContractServer:
    """emoncms's input API on 127.0.0.1, in a thread, recording what it receives."""

    def __init__(self, apikeys: Iterable[str] = (DEFAULT_KEY,), *,
                 clock: Callable[[], float] = time.time, org_limits: bool = False,
                 port: int = 0, journal: str | Path | None = None,
                 strip_authorization: bool = False, inflate: bool = False,
                 feed: str | None = None, feed_interval: int = 86400) -> None:
        if feed not in FEEDS:
            raise ValueError(f"unknown feed engine {feed!r}, expected one of {FEEDS}")
        self.apikeys = set(apikeys)
        self.feed, self.feed_interval = feed, feed_interval
        self.clock = clock
        self.org_limits = org_limits
        # Apache + mod_php without EmonCms's "SetEnvIf Authorization" line never hands
        # the Authorization header to PHP: as if the client had not sent it.
        self.strip_authorization = strip_authorization
        self.inflate = inflate  # a proxy inflating request bodies (stock PHP does not)
        # What a previous process acknowledged comes back before the port is bound.
        self.points: dict[tuple[str, str, int], float] = (
            {(p.node, p.name, p.time): p.value for batch in read_journal(journal) for p in batch}
            if journal else {})
        self._journal = (os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                         if journal else None)
        self.deliveries: list[Point] = []
        self.renamed: list[tuple[str, str]] = []  # (name sent, name stored)
        self.dropped: list[tuple[str, str, str]] = []  # (node, name, why)
        self.requests: list[Received] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._release = threading.Event()  # cuts injected sleeps short at stop()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.contract = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        daemon=True, name="emoncms-contract")

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Return the base URL (what a connector's ``addr`` is)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> ContractServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release any injected sleep."""
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        journal, self._journal = self._journal, None
        if journal is not None:
            os.close(journal)

    def serve(self) -> None:
        """Serve in the calling thread until the process is stopped (the process entry point)."""
        self._httpd.serve_forever(0.05)

    # ------------------------------------------------------------------ test API
    def fail(self, mode: str, times: int = 1, delay: float = 0.0,
             process: bool | None = None) -> None:
        """Make the next ``times`` requests fail with ``mode`` (see MODES)."""
        if mode not in MODES:
            raise ValueError(f"unknown failure mode {mode!r}, expected one of {MODES}")
        if process is None:
            process = mode in ("timeout", "slow")  # the server did the work, the answer is late
        with self._lock:
            self._failures.append(Failure(mode, times, delay, process))

    def stored(self) -> list[Point]:
        """Return the stored points, sorted."""
        with self._lock:
            return sorted(Point(n, k, t, v) for (n, k, t), v in self.points.items())

    def request_count(self) -> int:
        """Return how many requests reached the server."""
        with self._lock:
            return len(self.requests)

    # ------------------------------------------------------------------ handling
    def next_failure(self) -> Failure | None:
        """Take one use of the pending failure, if any."""
        with self._lock:
            if not self._failures:
                return None
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            return failure

    def record(self, received: Received) -> None:
        """Remember a request."""
        with self._lock:
            self.requests.append(received)

    def sleep(self, seconds: float) -> None:
        """Wait, unless the server is stopping."""
        self._release.wait(seconds)

    def authenticate(self, query: dict[str, str], form: dict[str, str],
                     headers: dict[str, str]) -> tuple[str | None, Answer | None]:
        """Return the auth method used, or the refusal (index.php's rules)."""
        # index.php: $_GET['apikey'], then $_POST['apikey'], then HTTP_AUTHORIZATION.
        if "apikey" in query or "apikey" in form:
            method, key = "apikey", query.get("apikey", form.get("apikey", ""))
        elif "Authorization" in headers:
            method, key = "bearer", headers["Authorization"].replace("Bearer ", "")
        else:
            # No key: input_controller returns false and the login page fallback prints
            # nothing on input/bulk (measured: 200, Content-Length 0, nothing stored).
            return None, Answer(200, "")
        if key not in self.apikeys:
            return method, Answer(401, "Invalid API key", {
                "WWW-Authenticate": 'Bearer realm="API KEY", error="invalid_apikey", '
                                    'error_description="Invalid API key"'})
        return method, None

    def route(self, path: str, params: dict[str, str]) -> Answer:
        """Run input/bulk or input/post and return emoncms's answer."""
        parts = [p for p in path.split("/") if p]
        action = parts[1].removesuffix(".json") if len(parts) > 1 else ""
        if not parts or parts[0] != "input" or action not in ("bulk", "post"):
            return Answer(406, json.dumps({"success": False,
                                           "message": "406 Not Acceptable. Route not found"}))
        if action == "bulk":
            result = self.bulk(params)
        else:
            result = self.post(params, parts[2] if len(parts) > 2 else None)
        if result == "ok":
            return Answer(200, '{"success": true}' if "fulljson" in params else "ok")
        message = result.replace('"', "'")
        return Answer(200, '{"success": false, "message": "' + message + '"}')

    def bulk(self, params: dict[str, str]) -> str:
        """Process input/bulk (InputMethods::bulk); return "ok" or the error text."""
        try:
            data = json.loads(params.get("data", ""))
        except ValueError:
            data = None
        if not isinstance(data, list) or not data:
            return "Format error, json string supplied is not valid"
        last = data[-1]
        if not isinstance(last, list) or not last:
            return "Format error, last item in bulk data does not contain any data"
        now = math.floor(self.clock())  # PHP's time() truncates: x.999 s is still x
        if "sentat" in params:
            time_ref = now - php_int(params["sentat"])
        elif "offset" in params:
            time_ref = now - php_int(params["offset"])
        elif "time" in params:
            time_ref = php_int(params["time"])
        else:
            time_ref = now - php_int(last[0])
        for item in data:
            if not isinstance(item, list) or len(item) <= 2:
                continue
            if isinstance(item[1], dict):
                return "Format error, node must not be an object"
            node = php_str(item[1]) or "0"  # if ($nodeid=="") $nodeid = 0;
            self.store(node, _bulk_inputs(item[2:]), time_ref + php_int(item[0]))
        return "ok"

    def post(self, params: dict[str, str], path_node: str | None) -> str:
        """Process input/post (InputMethods::post); return "ok" or the error text."""
        node = sanitize(path_node or params.get("node", "")) or "0"
        when = php_int(params["time"]) if "time" in params else int(self.clock())
        raw = next((params[k] for k in ("json", "fulljson", "csv", "data") if k in params), "")
        if raw == "":
            return "Request contains no data via csv, json or data tag"
        if "fulljson" in params:
            try:
                inputs = json.loads(raw)
            except ValueError:
                return "Error decoding JSON string (invalid or too deeply nested)"
            if not isinstance(inputs, dict):
                return "Input must be a JSON object"
            self.store(node, {str(k): php_float(v) for k, v in inputs.items()}, when)
            return "ok"
        parsed = _loose_pairs(raw)
        if isinstance(parsed, str):
            return parsed
        self.store(node, parsed, when)
        return "ok"

    def store(self, node: str, inputs: dict[str, float], when: int) -> None:
        """Keep each value under the names emoncms would create (process_node); with a journal,
        write them to it before returning, so before the request is answered."""
        kept: list[Point] = []
        with self._lock:
            for name, value in inputs.items():
                stored_node, stored_name = sanitize(node), sanitize(name)
                if (stored_node, stored_name) != (node, name):
                    self.renamed.append((f"{node}/{name}", f"{stored_node}/{stored_name}"))
                if self.org_limits and len(stored_node.encode()) > 16:
                    self.dropped.append((node, name, "node longer than 16 bytes"))
                    continue
                if self.org_limits and len(stored_name.encode()) > 64:
                    self.dropped.append((node, name, "name longer than 64 bytes"))
                    continue
                at = self._feed_time(stored_node, stored_name, when)
                if at is None:
                    self.dropped.append((node, name, f"{self.feed} refuses a point at {when}, "
                                                     "before the feed's newest/first"))
                    continue
                self.points[(stored_node, stored_name, at)] = value
                self.deliveries.append(Point(stored_node, stored_name, at, value))
                kept.append(Point(stored_node, stored_name, at, value))
            if self._journal is not None and kept:
                line = json.dumps([[p.node, p.name, p.time, p.value] for p in kept]) + "\n"
                os.write(self._journal, line.encode())  # one O_APPEND write: whole or absent


    def _feed_time(self, node: str, name: str, when: int) -> int | None:
        """Return the time a feed stores a point under, None when the engine drops it
        (lock held; the rules and their source are in the module docstring)."""
        if self.feed is None:
            return when
        if self.feed == "phpfina":
            when -= when % self.feed_interval
        times = [t for (n, k, t) in self.points if (n, k) == (node, name)]
        if not times or when >= max(times) or when in times:
            return when  # appended, the newest updated, or an existing point updated
        if self.feed == "phpfina" and when > min(times):
            return when  # PHPFina's slot between its start and its end: written in place
        return None


def read_journal(path: str | Path | None) -> list[list[Point]]:
    """Return the points of each stored request in a journal, oldest first (none if absent).

    A last line cut short (the process killed while writing it) was never acknowledged
    and is skipped.
    """
    if path is None or not Path(path).exists():
        return []
    batches: list[list[Point]] = []
    for line in Path(path).read_text().splitlines():
        try:
            entries = json.loads(line)
        except ValueError:
            continue
        batches.append([Point(str(n), str(k), int(t), float(v)) for n, k, t, v in entries])
    return batches


def _bulk_inputs(values: list[Any]) -> dict[str, float]:
    """Return the named values of one bulk entry: every key of each object, else 1, 2, ..."""
    inputs: dict[str, float] = {}
    position = 1
    for value in values:
        if isinstance(value, dict):
            # foreach ($item[$i] as $key=>$value) $inputs[$key] = (float) $value;
            # (emoncms >= 11.0.5; older versions took key()/current(): the first only)
            for key, item in value.items():
                inputs[str(key)] = php_float(item)
            continue
        if php_str(value):
            inputs[str(position)] = php_float(value)
        position += 1
    return inputs


def _loose_pairs(raw: str) -> dict[str, float] | str:
    """Parse input/post's ``json``/``csv`` forms ({a:1,b:2} or 1,2,3), or return the error."""
    text = "".join(c for c in raw if c.isalnum() or c in "_-.:, " or c.isspace())
    inputs: dict[str, float] = {}
    index = 0
    for pair in text.split(","):
        key, sep, value = pair.partition(":")
        if sep:
            if key == "":
                return "Format error, json key missing or invalid character"
            if not _is_numeric(value) and value != "null":
                return "Format error, json value is not numeric"
            inputs[key] = php_float(value)
        else:
            if not _is_numeric(key) and key != "null":
                return "Format error: csv value is not numeric"
            index += 1
            inputs[str(index)] = php_float(key)
    return inputs


def _is_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into ContractServer calls, injecting failures."""

    protocol_version = "HTTP/1.1"  # keep-alive, like a real server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        """Stay quiet (pytest shows failures, not access logs)."""

    def do_GET(self) -> None:  # noqa: N802 (stdlib's name)
        """Handle a GET (emoncms accepts both)."""
        self._handle(b"")

    def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
        """Handle a POST."""
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length) if length else b"")

    def _handle(self, body: bytes) -> None:
        contract: ContractServer = self.server.contract  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {k: v for k, v in self.headers.items()}
        form = self._form(body)
        params = {**query, **form}  # param.php: POST values override GET ones
        # What PHP sees; ``headers`` (recorded) keeps what the client sent.
        seen = {k: v for k, v in headers.items()
                if not (contract.strip_authorization and k.lower() == "authorization")}
        auth, refusal = contract.authenticate(query, form, seen)
        contract.record(Received(self.command, split.path, query, form, headers, auth, body))
        failure = contract.next_failure()
        if failure is not None and not failure.process:
            self._fail(contract, failure)
            return
        answer = refusal or contract.route(split.path, params)
        if failure is not None:
            self._fail(contract, failure, answer)
            return
        self._send(answer)

    def _form(self, body: bytes) -> dict[str, str]:
        contract: ContractServer = self.server.contract  # type: ignore[attr-defined]
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding in ("deflate", "gzip") and not contract.inflate:
            return {}  # PHP parses no $_POST out of an encoded body
        if encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "gzip":
            body = gzip.decompress(body)
        if not body or "x-www-form-urlencoded" not in (self.headers.get("Content-Type") or ""):
            return {}
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))

    def _fail(self, contract: ContractServer, failure: Failure,
              answer: Answer | None = None) -> None:
        if failure.mode in ("timeout", "slow"):
            contract.sleep(failure.delay)
            self._send(answer or Answer(200, "ok"))
        elif failure.mode == "http500":
            self._send(Answer(500, "<h1>500 Internal Server Error</h1>"))
        elif failure.mode == "invalid_key_body":
            self._send(Answer(200, "Invalid API key"))
        elif failure.mode == "error_body":
            self._send(Answer(200, '{"success": false, "message": "Format error, json string '
                                   'supplied is not valid"}'))
        elif failure.mode == "empty_body":  # a server (or not-EmonCms) answering nothing
            self._send(Answer(200, ""))
        elif failure.mode == "redirect":  # e.g. a server moved to https
            self._send(Answer(301, "", {"Location": "https://127.0.0.1:1/input/bulk.json"}))
        elif failure.mode == "reset":
            # SO_LINGER 0 makes close() send a TCP RST instead of a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

    def _send(self, answer: Answer) -> None:
        data = answer.body.encode("utf-8")
        try:
            self.send_response(answer.status)
            content_type = "application/json" if answer.status == 406 else "text/plain"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a timeout test): nothing to tell it
            self.close_connection = True


def main(argv: list[str] | None = None) -> None:
    """Serve emoncms's input API on 127.0.0.1:<port> until killed (a stand-alone server)."""
    parser = argparse.ArgumentParser(description="emoncms input API contract server (tests)")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--apikey", action="append", help=f"accepted key (default {DEFAULT_KEY})")
    parser.add_argument("--journal", help="file keeping every stored point across restarts")
    parser.add_argument("--slow", type=float, default=0.0,
                        help="answer each request this many seconds after storing its points")
    parser.add_argument("--strip-authorization", action="store_true",
                        help="drop the Authorization header, like Apache without SetEnvIf")
    args = parser.parse_args(argv)
    server = ContractServer(args.apikey or [DEFAULT_KEY], port=args.port, journal=args.journal,
                            strip_authorization=args.strip_authorization)
    if args.slow > 0:
        server.fail("slow", times=2**62, delay=args.slow, process=True)
    server.serve()


if __name__ == "__main__":
    main()
