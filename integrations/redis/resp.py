"""A small RESP2 client for one plain Redis server (redis-py stays for Redis Cluster).

Why not redis-py here: ``import redis`` costs about 20 MiB of RSS (its ``__init__``
imports redis.asyncio, every command mixin and ssl), a third of the daemon on a
Raspberry Pi for months (docs/performance.md, "A RESP2 client of our own"). Talking
to one server needs only the protocol below, which is small and fixed; the cluster
(slots, MOVED/ASK, topology refresh) is where a well-kept library does clearly
better, so :func:`vemonitor_integrations.redis.client.open_client` keeps redis-py's
RedisCluster for it.

Protocol (RESP2, https://redis.io/docs/latest/develop/reference/protocol-spec/):
a command is an array of bulk strings ``*N\\r\\n$len\\r\\narg\\r\\n...``; a reply starts
with ``+`` (simple string), ``-`` (error line), ``:`` (integer), ``$`` (bulk string,
``$-1`` is nil) or ``*`` (array, ``*-1`` is nil). Replies come back in the order the
commands were sent, which is what makes pipelining (send all, then read all) work.

Semantics kept from the redis-py client it replaces (``decode_responses=True``, no
retries: the outbox owns retries):

* bulk and simple strings are returned as ``str`` (UTF-8), integers as ``int``, nil as
  ``None``, arrays as ``list``; the few commands redis-py maps to ``bool`` (HSETNX)
  are mapped the same way in the method that sends them;
* an error reply raises :class:`ResponseError` carrying the server's line;
* the connection opens lazily at the first command (AUTH, SELECT, CLIENT SETNAME);
  any socket error or timeout closes it and raises :class:`ConnectionError` /
  :class:`TimeoutError`; the next command opens a new one (the caller decides when);
* ``ssl`` is imported only when the connector asks for TLS.
"""

from __future__ import annotations

import builtins
import contextlib
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    from vemonitor_integrations.redis.schema import RedisConnector

Arg = str | int | float | bytes
Reply = Any  # str | int | None | list[Reply]; an error reply is raised

CRLF = b"\r\n"
READ_SIZE = 65536  # bytes per recv: a few reads for a batch, little memory held


class RespError(Exception):
    """Base of this client's errors (translated by client.translate)."""


class ConnectionError(RespError):  # noqa: A001 (named as redis-py names it)
    """The server cannot be reached, closed the connection, or sent something unreadable."""


class TimeoutError(ConnectionError):  # noqa: A001
    """The server did not answer within socket_timeout (or connect within the connect timeout)."""


class ResponseError(RespError):
    """The server answered with an error line (``-ERR ...``): the line is the message."""


class AuthenticationError(ResponseError):
    """AUTH was refused (WRONGPASS, invalid password, NOAUTH)."""


class NoScriptError(ResponseError):
    """EVALSHA named a script the server does not hold (after a restart or SCRIPT FLUSH)."""


@dataclass(frozen=True)
class Settings:
    """What a connection needs, taken from the connector (schema.RedisConnector)."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 5.0
    client_name: str | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool = True

    @classmethod
    def of(cls, config: RedisConnector, client_name: str | None = None) -> Settings:
        """Return the settings of a connector (the same options the redis-py client had)."""
        return cls(host=config.host, port=config.port, db=config.db, username=config.username,
                   password=config.password, socket_timeout=config.socket_timeout,
                   socket_connect_timeout=config.socket_connect_timeout,
                   client_name=client_name, ssl=config.ssl, ssl_ca_certs=config.ssl_ca_certs,
                   ssl_certfile=config.ssl_certfile, ssl_keyfile=config.ssl_keyfile,
                   ssl_cert_reqs=config.ssl_cert_reqs,
                   ssl_check_hostname=config.ssl_check_hostname)


def encode(args: Sequence[Arg]) -> bytes:
    """Return one command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts += [b"$%d\r\n" % len(data), data, CRLF]
    return b"".join(parts)


def error_of(line: str) -> ResponseError:
    """Return the exception of an error reply, typed by its first word (as redis-py does)."""
    word = line.split(" ", 1)[0]
    if word == "NOSCRIPT":
        return NoScriptError(line)
    if word in ("WRONGPASS", "NOAUTH") or "invalid password" in line.lower():
        return AuthenticationError(line)
    return ResponseError(line)


class Reader:
    """Parses replies from a socket's bytes; keeps what was read past the last reply."""

    def __init__(self, recv: Callable[[int], bytes]) -> None:
        self._recv = recv
        self._buf = bytearray()
        self._pos = 0

    def _fill(self) -> None:
        chunk = self._recv(READ_SIZE)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        if self._pos:  # drop what was consumed before growing the buffer
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += chunk

    def _line(self) -> bytes:
        while (end := self._buf.find(CRLF, self._pos)) < 0:
            self._fill()
        line = bytes(self._buf[self._pos:end])
        self._pos = end + 2
        return line

    def _exact(self, size: int) -> bytes:
        while len(self._buf) - self._pos < size + 2:
            self._fill()
        data = bytes(self._buf[self._pos:self._pos + size])
        self._pos += size + 2
        return data

    def reply(self) -> Reply | ResponseError:
        """Return the next reply; an error reply is returned (not raised) so a pipeline
        can read the replies after it."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return error_of(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exact(size).decode()
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            items = [self.reply() for _ in range(count)]  # all read: the stream stays in step
            nested = [item for item in items if isinstance(item, ResponseError)]
            return nested[0] if nested else items
        raise ConnectionError(f"unreadable reply from the server: {line[:40]!r}")


def _raise_nested(reply: Reply | ResponseError) -> Reply:
    """Return a reply, raising it if it is an error line."""
    if isinstance(reply, ResponseError):
        raise reply
    return reply


Convert = Callable[[Reply], Any]


def _same(reply: Reply) -> Reply:
    return reply


def _pairs(reply: Reply) -> list[tuple[str, float]]:
    """WITHSCORES: [member, score, ...] -> [(member, float score)] (as redis-py)."""
    return [(reply[i], float(reply[i + 1])) for i in range(0, len(reply), 2)]


def _entries(reply: Reply) -> list[tuple[str, dict[str, str]]]:
    """XRANGE: [[id, [field, value, ...]], ...] -> [(id, {field: value})] (as redis-py)."""
    return [(entry_id, dict(zip(fields[::2], fields[1::2], strict=True)))
            for entry_id, fields in reply or ()]


class Commands:
    """The commands the integration sends, with redis-py's argument names and results
    (decode_responses=True); a client runs each at once, a pipeline queues it."""

    def _run(self, args: tuple[Arg, ...], convert: Convert = _same) -> Any:
        raise NotImplementedError

    def execute_command(self, *args: Arg) -> Any:
        return self._run(args)

    def evalsha(self, sha: str, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        return self._run(("EVALSHA", sha, len(keys), *keys, *args))

    def exists(self, *names: str) -> Any:
        return self._run(("EXISTS", *names))

    def dbsize(self) -> Any:
        return self._run(("DBSIZE",))

    def hget(self, name: str, key: str) -> Any:
        return self._run(("HGET", name, key))

    def hsetnx(self, name: str, key: str, value: Arg) -> Any:
        return self._run(("HSETNX", name, key, value), bool)

    def hset(self, name: str, mapping: dict[str, Arg]) -> Any:
        return self._run(("HSET", name, *(item for pair in mapping.items() for item in pair)))

    def hkeys(self, name: str) -> Any:
        return self._run(("HKEYS", name))

    def hmget(self, name: str, keys: Sequence[str]) -> Any:
        return self._run(("HMGET", name, *keys))

    def hstrlen(self, name: str, key: str) -> Any:
        return self._run(("HSTRLEN", name, key))

    def zrangebyscore(self, name: str, min: Arg, max: Arg,  # noqa: A002
                      start: int | None = None, num: int | None = None,
                      withscores: bool = False) -> Any:
        args: tuple[Arg, ...] = ("ZRANGEBYSCORE", name, min, max)
        if withscores:
            args += ("WITHSCORES",)
        if start is not None and num is not None:
            args += ("LIMIT", start, num)
        return self._run(args, _pairs if withscores else _same)

    def zrevrange(self, name: str, start: int, end: int) -> Any:
        return self._run(("ZREVRANGE", name, start, end))

    def xrange(self, name: str, min: str = "-", max: str = "+",  # noqa: A002
               count: int | None = None) -> Any:
        count_args: tuple[Arg, ...] = ("COUNT", count) if count is not None else ()
        return self._run(("XRANGE", name, min, max, *count_args), _entries)

    def xrevrange(self, name: str, max: str = "+", min: str = "-",  # noqa: A002
                  count: int | None = None) -> Any:
        count_args: tuple[Arg, ...] = ("COUNT", count) if count is not None else ()
        return self._run(("XREVRANGE", name, max, min, *count_args), _entries)


class Pipeline(Commands):
    """Commands queued, then sent in one write and answered in one read (no MULTI)."""

    def __init__(self, client: RespClient) -> None:
        self._client = client
        self._commands: list[tuple[tuple[Arg, ...], Convert]] = []

    def _run(self, args: tuple[Arg, ...], convert: Convert = _same) -> Pipeline:
        self._commands.append((args, convert))
        return self

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send every queued command, read every reply; raise the first error reply
        (after all replies are read, so the connection stays in step) unless told not to."""
        commands, self._commands = self._commands, []
        replies = self._client.round_trip([args for args, _ in commands])
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
        return [reply if isinstance(reply, ResponseError) else convert(reply)
                for reply, (_, convert) in zip(replies, commands, strict=True)]


class Script:
    """A Lua script called by EVALSHA, loaded (SCRIPT LOAD) when the server lacks it.

    Its SHA1 is the one SCRIPT LOAD answers (loaded at the first call), not computed
    here: ``hashlib`` loads OpenSSL's libcrypto, about 4 MiB of RSS.
    """

    def __init__(self, client: RespClient, lua: str) -> None:
        self.client = client
        self.lua = lua
        self._sha: str | None = None

    @property
    def sha(self) -> str:
        """Return the script's SHA1, loading the script into the server the first time."""
        if self._sha is None:
            self.load()
        assert self._sha is not None
        return self._sha

    def load(self) -> None:
        """SCRIPT LOAD (after a restart or SCRIPT FLUSH the server holds no script)."""
        self._sha = str(self.client.execute_command("SCRIPT", "LOAD", self.lua))

    def __call__(self, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> Reply:
        try:
            return self.client.evalsha(self.sha, keys, args)
        except NoScriptError:
            # A restarted or flushed server: load it once and run it again (as redis-py).
            self.load()
            return self.client.evalsha(self.sha, keys, args)


class RespClient(Commands):
    """One connection to one Redis server, with the commands the integration uses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sock: socket.socket | None = None
        self._reader: Reader | None = None
        self._deadline = 0.0  # monotonic end of the current request (issue 25 point 4)

    def __repr__(self) -> str:
        return f"RespClient({self.settings.host}:{self.settings.port}/{self.settings.db})"

    # ------------------------------------------------------------------ connection
    def _open(self) -> None:
        s = self.settings
        try:
            sock = socket.create_connection((s.host, s.port), timeout=s.socket_connect_timeout)
        except builtins.TimeoutError as err:
            raise TimeoutError(f"timeout connecting to {s.host}:{s.port}") from err
        except OSError as err:
            raise ConnectionError(f"error connecting to {s.host}:{s.port}: {err}") from err
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if s.ssl:
                sock = _wrap_tls(sock, s)
            sock.settimeout(s.socket_timeout)
        except OSError as err:
            sock.close()
            raise ConnectionError(f"TLS handshake with {s.host}:{s.port} failed: {err}") from err
        self._sock, self._reader = sock, Reader(self._recv)
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    def _handshake(self) -> None:
        """AUTH, SELECT and CLIENT SETNAME in one round trip, each checked."""
        s = self.settings
        commands: list[tuple[Arg, ...]] = []
        if s.password is not None:
            auth: tuple[Arg, ...] = (s.username, s.password) if s.username else (s.password,)
            commands.append(("AUTH", *auth))
        if s.db:
            commands.append(("SELECT", s.db))
        if s.client_name:
            commands.append(("CLIENT", "SETNAME", s.client_name))
        for reply in self._exchange(commands):
            if isinstance(reply, ResponseError):
                raise reply

    def close(self) -> None:
        """Close the connection (idempotent); the next command opens a new one."""
        sock, self._sock, self._reader = self._sock, None, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _left(self) -> float:
        """Seconds left of the request's deadline; socket.timeout once it has passed."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise builtins.TimeoutError("the request's deadline passed")
        return left

    def _recv(self, size: int) -> bytes:
        # One deadline for the whole request, not one timeout per read: a server that
        # trickles a byte every few seconds would otherwise hold the caller for ever.
        assert self._sock is not None
        self._sock.settimeout(self._left())
        return self._sock.recv(size)

    def _exchange(self, commands: Sequence[Sequence[Arg]]) -> list[Reply | ResponseError]:
        assert self._sock is not None and self._reader is not None
        if not commands:
            return []
        self._deadline = time.monotonic() + self.settings.socket_timeout
        try:
            self._sock.settimeout(self._left())
            self._sock.sendall(b"".join(encode(c) for c in commands))
            return [self._reader.reply() for _ in commands]
        except builtins.TimeoutError as err:
            self.close()
            raise TimeoutError(f"timeout reading from {self.settings.host}:"
                               f"{self.settings.port}") from err
        except ConnectionError:
            self.close()
            raise
        except (OSError, ValueError) as err:  # reset, broken pipe; ValueError: bad length
            self.close()
            raise ConnectionError(f"connection to {self.settings.host}:{self.settings.port} "
                                  f"lost: {err}") from err

    def round_trip(self, commands: Sequence[Sequence[Arg]]) -> list[Reply | ResponseError]:
        """Send commands in one write and return their replies (errors as values)."""
        if self._sock is None:
            self._open()
        return self._exchange(commands)

    # ------------------------------------------------------------------ commands
    def _run(self, args: tuple[Arg, ...], convert: Convert = _same) -> Any:
        """Send one command and return its reply; an error reply is raised."""
        return convert(_raise_nested(self.round_trip([args])[0]))

    def pipeline(self, transaction: bool = False) -> Pipeline:
        """Return a pipeline (never a MULTI transaction: the scripts are the atomic unit)."""
        if transaction:
            raise ValueError("RespClient pipelines are not transactions")
        return Pipeline(self)

    def register_script(self, lua: str) -> Script:
        return Script(self, lua)

    def ping(self) -> bool:
        return self.execute_command("PING") == "PONG"


def _wrap_tls(sock: socket.socket, s: Settings) -> socket.socket:
    """Return the socket wrapped in TLS as the connector asks (ssl imported only here)."""
    import ssl  # noqa: PLC0415 (lazily: about 2 MiB, only for a TLS connector)

    context = ssl.create_default_context(cafile=s.ssl_ca_certs)
    # Host name checked only with verification on (the same rule client.connect passed
    # to redis-py: a certificate for another host is refused by default).
    context.check_hostname = s.ssl_check_hostname and s.ssl_cert_reqs == "required"
    context.verify_mode = _CERT_REQS(ssl)[s.ssl_cert_reqs]
    if s.ssl_certfile:
        context.load_cert_chain(s.ssl_certfile, s.ssl_keyfile)
    return context.wrap_socket(sock, server_hostname=s.host)


def _CERT_REQS(ssl_module: Any) -> dict[str, ssl.VerifyMode]:  # noqa: N802
    """Return schema.CERT_REQS' names mapped to ssl's modes (as redis-py maps them)."""
    return {"none": ssl_module.CERT_NONE, "optional": ssl_module.CERT_OPTIONAL,
            "required": ssl_module.CERT_REQUIRED}
