"""The RESP2 client (integrations/redis/resp.py) against a real redis-server.

Every reply type, error replies (alone and inside a pipeline), AUTH with an ACL user,
SELECT, CLIENT SETNAME, NOSCRIPT -> SCRIPT LOAD, a 10 MB bulk string, TLS, timeouts,
and a server that goes away mid-pipeline.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from vemonitor_integrations.redis import resp
from vemonitor_integrations.redis.client import (
    RedisAuthError,
    RedisUnavailable,
    open_client,
    translate,
)
from vemonitor_integrations.redis.schema import RedisConnector

from tests.integrations.mqtt.certs import make_certs
from tests.servers import LOOPBACK, RedisServer, free_port

SECRET = "acl-Pa55word-xyz"
WRONG = "wrong-Pa55word-xyz"


def client_of(port: int, **options: object) -> resp.RespClient:
    """Return a RESP client of a connector to ``port`` with ``options``."""
    conn = RedisConnector(host=LOOPBACK, port=port, **options)  # type: ignore[arg-type]
    made = open_client(conn, client_name="vemonitor-test")
    assert isinstance(made, resp.RespClient)
    return made


@pytest.fixture
def client(redis_server: RedisServer, raw: redis.Redis) -> Iterator[resp.RespClient]:
    """Return a RESP client of the folder's server (db 0, flushed by ``raw``)."""
    made = client_of(redis_server.port)
    yield made
    made.close()


def test_every_reply_type(client: resp.RespClient) -> None:
    """Simple string, integer, bulk (text, empty, CRLF inside), nil, arrays (nested,
    empty, nil) as redis-py returned them with decode_responses=True."""
    assert client.execute_command("PING") == "PONG"                       # +
    assert client.execute_command("SET", "k", "a\r\nb é") == "OK"         # +
    assert client.execute_command("GET", "k") == "a\r\nb é"               # $ with CRLF inside
    assert client.execute_command("SET", "empty", "") == "OK"
    assert client.execute_command("GET", "empty") == ""                   # $0
    assert client.execute_command("GET", "missing") is None               # $-1
    assert client.execute_command("INCRBY", "n", -5) == -5                # :
    assert client.execute_command("RPUSH", "l", 1, 2.5, "x") == 3
    assert client.execute_command("LRANGE", "l", 0, -1) == ["1", "2.5", "x"]   # *
    assert client.execute_command("LRANGE", "nothing", 0, -1) == []       # *0
    assert client.execute_command("BLPOP", "nothing", "0.01") is None     # *-1
    client.execute_command("XADD", "s", "1-0", "f", "v")
    assert client.execute_command("XRANGE", "s", "-", "+") == [["1-0", ["f", "v"]]]  # nested
    assert client.hsetnx("h", "a", 1) is True and client.hsetnx("h", "a", 2) is False
    assert client.hset("h", mapping={"b": 2, "c": "3"}) == 2
    assert client.hget("h", "a") == "1" and client.hget("h", "zz") is None
    client.execute_command("ZADD", "z", 1, "one", 2, "two", 3, "three")
    assert client.zrangebyscore("z", "(1", "3") == ["two", "three"]


def test_error_reply_carries_the_server_line_and_the_connection_goes_on(
        client: resp.RespClient) -> None:
    """An error reply raises ResponseError with the server's line; the next command works."""
    client.execute_command("SET", "k", "text")
    with pytest.raises(resp.ResponseError, match="^ERR value is not an integer"):
        client.execute_command("INCR", "k")
    with pytest.raises(resp.ResponseError, match="WRONGTYPE"):
        client.execute_command("LPUSH", "k", "x")
    assert client.execute_command("GET", "k") == "text"


def test_pipeline_reads_every_reply_then_raises_the_first_error(
        client: resp.RespClient, raw: redis.Redis) -> None:
    """Commands after a failing one still ran and the stream stays in step."""
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("SET", "k", "text").execute_command("INCR", "k")
    pipe.execute_command("SET", "after", "1").dbsize()
    with pytest.raises(resp.ResponseError, match="not an integer"):
        pipe.execute()
    assert raw.get("after") == "1"
    pipe.exists("k", "after", "none").hget("h", "x").dbsize()
    assert pipe.execute() == [2, None, 2]
    pipe.execute_command("INCR", "k").execute_command("GET", "k")
    replies = pipe.execute(raise_on_error=False)
    assert isinstance(replies[0], resp.ResponseError) and replies[1] == "text"


def test_script_is_loaded_again_after_script_flush(client: resp.RespClient) -> None:
    """EVALSHA answered NOSCRIPT (a restarted server): SCRIPT LOAD, then run it."""
    script = client.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
    client.execute_command("SCRIPT", "FLUSH")
    assert script(keys=["a"], args=["b", 41]) == ["a", "b", 42]
    assert script(keys=["c"], args=["d", 1]) == ["c", "d", 2]  # now by EVALSHA alone
    failing = client.register_script("return redis.error_reply('vemonitor_foreign_db')")
    with pytest.raises(resp.ResponseError, match="vemonitor_foreign_db"):
        failing()


def test_ten_megabyte_bulk_string_both_ways(client: resp.RespClient) -> None:
    """A 10 MB argument and a 10 MB reply arrive whole (many recv calls)."""
    big = "0123456789abcdef" * (10 * 1024 * 1024 // 16)
    assert client.execute_command("SET", "big", big) == "OK"
    assert client.execute_command("GET", "big") == big
    assert client.execute_command("STRLEN", "big") == len(big)


def test_select_and_client_name(redis_server: RedisServer, raw: redis.Redis) -> None:
    """The connector's db is selected and the connection is named for CLIENT LIST."""
    made = client_of(redis_server.port, db=3)
    try:
        made.execute_command("SET", "in3", "yes")
        assert made.execute_command("CLIENT", "GETNAME") == "vemonitor-test"
    finally:
        made.close()
    assert raw.get("in3") is None
    assert redis.Redis(host=LOOPBACK, port=redis_server.port, db=3,
                       decode_responses=True).get("in3") == "yes"
    raw.flushall()


@pytest.fixture
def acl_user(redis_server: RedisServer, raw: redis.Redis) -> Iterator[str]:
    """Create the ACL user 'vemon' (password SECRET) on the test server; remove it after."""
    raw.execute_command("ACL", "SETUSER", "vemon", "on", f">{SECRET}", "~*", "+@all")
    yield "vemon"
    raw.execute_command("ACL", "DELUSER", "vemon")


def test_auth_with_an_acl_user(redis_server: RedisServer, acl_user: str) -> None:
    """AUTH user password: the connection runs as that user."""
    made = client_of(redis_server.port, username=acl_user, password=SECRET)
    try:
        assert made.execute_command("ACL", "WHOAMI") == acl_user
    finally:
        made.close()


def test_wrong_password_is_one_line_without_the_password(redis_server: RedisServer,
                                                         acl_user: str) -> None:
    """WRONGPASS becomes RedisAuthError: one line naming the server, no secret."""
    conn = RedisConnector(host=LOOPBACK, port=redis_server.port, username=acl_user,
                          password=WRONG)
    made = open_client(conn)
    with pytest.raises(resp.AuthenticationError) as info:
        made.execute_command("PING")
    typed = translate(info.value, conn, "connecting")
    assert isinstance(typed, RedisAuthError)
    text = str(typed)
    assert "\n" not in text and WRONG not in text and SECRET not in text
    assert f"{LOOPBACK}:{redis_server.port}/0" in text and "authentication failed" in text


def test_server_gone_mid_pipeline_is_unavailable_and_reports_nothing(tmp_path: Path) -> None:
    """The server answers the first command then goes away: the pipeline raises
    (translated: RedisUnavailable), no partial replies are returned, and the next call
    opens a new connection once the server is back."""
    with RedisServer(workdir=tmp_path) as server:
        conn = RedisConnector(host=LOOPBACK, port=server.port)
        made = open_client(conn)
        pipe = made.pipeline()
        pipe.execute_command("SET", "a", "1").execute_command("SHUTDOWN", "NOSAVE")
        pipe.execute_command("SET", "b", "2")
        with pytest.raises(resp.ConnectionError) as info:
            pipe.execute()
        assert isinstance(translate(info.value, conn, "writing"), RedisUnavailable)
        with pytest.raises(resp.ConnectionError):  # still down: refused, not a hang
            made.execute_command("PING")
        server.restart()
        assert made.execute_command("GET", "b") is None  # nothing saved: a fresh server
        assert made.execute_command("PING") == "PONG"
        made.close()


def test_a_server_that_never_answers_times_out(redis_server: RedisServer) -> None:
    """A listener that accepts but never replies: TimeoutError (RedisUnavailable)."""
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(1)
        conn = RedisConnector(host=LOOPBACK, port=silent.getsockname()[1], socket_timeout=0.2)
        made = open_client(conn)
        with pytest.raises(resp.TimeoutError) as info:
            made.execute_command("PING")
        assert isinstance(translate(info.value, conn, "reading"), RedisUnavailable)


def test_refused_connection_is_unavailable() -> None:
    """Nobody listens on the port: ConnectionError, translated RedisUnavailable."""
    conn = RedisConnector(host=LOOPBACK, port=free_port())
    with pytest.raises(resp.ConnectionError) as info:
        open_client(conn).execute_command("PING")
    assert isinstance(translate(info.value, conn, "connecting"), RedisUnavailable)


def test_a_trickling_server_is_cut_at_the_request_deadline() -> None:
    """Issue 25 point 4: one deadline per request (socket_timeout), not per read. A server
    that answers a GET with one byte every 0.2 s (a 30-byte value: 6 s) never lets a single
    read wait 1 s, so a per-read timeout would wait it out; the request fails instead, the
    connection is closed, and the caller sees RedisUnavailable."""
    import threading

    done = threading.Event()
    with socket.create_server((LOOPBACK, 0)) as server:
        port = server.getsockname()[1]

        def trickle() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                for byte in b"$30\r\n" + b"x" * 30 + b"\r\n":
                    if done.wait(0.2):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        conn = RedisConnector(host=LOOPBACK, port=port, socket_timeout=1.0)
        client = open_client(conn)
        try:
            with pytest.raises(resp.TimeoutError) as info:
                client.execute_command("GET", "slow")
            assert isinstance(translate(info.value, conn, "reading"), RedisUnavailable)
        finally:
            done.set()
            client.close()
            thread.join(5)


# ---------------------------------------------------------------- TLS
class TlsRedisServer(RedisServer):
    """A redis-server listening with TLS only (Debian's is built with TLS)."""

    def __init__(self, workdir: Path, certs: tuple[str, str, str]) -> None:
        super().__init__(workdir=workdir)
        self.certs = certs

    def command(self) -> list[str]:
        ca, cert, key = self.certs
        cmd = super().command()
        at = cmd.index("--port")
        cmd[at:at + 2] = ["--port", "0", "--tls-port", str(self.port)]
        return [*cmd, "--tls-cert-file", cert, "--tls-key-file", key,
                "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]

    def ready(self) -> bool:
        import ssl

        context = ssl.create_default_context(cafile=self.certs[0])
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock, \
                    context.wrap_socket(sock, server_hostname=LOOPBACK) as tls:
                tls.sendall(b"PING\r\n")
                return tls.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedisServer]:
    """Start a TLS-only redis-server with a throw-away CA."""
    directory = tmp_path_factory.mktemp("redis-tls")
    with TlsRedisServer(directory, make_certs(directory / "certs")) as server:
        yield server


def test_tls_verified_by_the_configured_ca(tls_server: TlsRedisServer) -> None:
    """ssl + ssl_ca_certs: the certificate is verified (name checked) and commands run."""
    made = client_of(tls_server.port, ssl=True, ssl_ca_certs=tls_server.certs[0])
    try:
        assert made.execute_command("SET", "t", "over tls") == "OK"
        assert made.execute_command("GET", "t") == "over tls"
    finally:
        made.close()


def test_tls_with_an_unknown_ca_is_refused(tls_server: TlsRedisServer, tmp_path: Path) -> None:
    """Another CA: the handshake fails, RedisUnavailable, nothing sent."""
    other_ca = make_certs(tmp_path / "other")[0]
    conn = RedisConnector(host=LOOPBACK, port=tls_server.port, ssl=True, ssl_ca_certs=other_ca,
                          socket_connect_timeout=2.0)
    with pytest.raises(resp.ConnectionError, match="TLS handshake") as info:
        open_client(conn).execute_command("PING")
    assert isinstance(translate(info.value, conn, "connecting"), RedisUnavailable)


def test_tls_without_verification_connects(tls_server: TlsRedisServer) -> None:
    """ssl_cert_reqs: none (warned about by risks.py) connects without a CA."""
    made = client_of(tls_server.port, ssl=True, ssl_cert_reqs="none")
    try:
        assert made.execute_command("PING") == "PONG"
    finally:
        made.close()


def test_tls_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    """The host name is checked (as redis-py's ssl_check_hostname does, on by default):
    the server's certificate names 127.0.0.1 and localhost, not ::1, so a connector to
    ::1 is refused, one line, nothing sent; with ssl_check_hostname: false it connects."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine's loopback")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not configured on this machine's loopback")
    certs = make_certs(tmp_path / "certs")

    class BothLoopbacks(TlsRedisServer):
        def command(self) -> list[str]:
            cmd = super().command()
            at = cmd.index("--bind")
            cmd[at:at + 2] = ["--bind", LOOPBACK, "::1"]
            return cmd

    with BothLoopbacks(tmp_path / "redis", certs) as server:
        conn = RedisConnector(host="::1", port=server.port, ssl=True, ssl_ca_certs=certs[0],
                              socket_connect_timeout=2.0)
        with pytest.raises(resp.ConnectionError, match="TLS handshake") as info:
            open_client(conn).execute_command("PING")
        assert isinstance(translate(info.value, conn, "connecting"), RedisUnavailable)
        unchecked = open_client(RedisConnector(host="::1", port=server.port, ssl=True,
                                               ssl_ca_certs=certs[0], ssl_check_hostname=False))
        try:
            assert unchecked.execute_command("PING") == "PONG"
        finally:
            unchecked.close()


# ---------------------------------------------------------------- what is loaded
def test_plain_redis_loads_neither_redis_py_nor_ssl(redis_server: RedisServer) -> None:
    """The cache and sink of one plain server never import redis-py (~20 MiB) or ssl."""
    code = (
        "import sys\n"
        "from vemonitor_integrations.redis.cache import RedisCache\n"
        "from vemonitor_integrations.redis.sink import RedisSink\n"
        "from vemonitor_integrations.redis.client import open_client\n"
        "from vemonitor_integrations.redis.schema import RedisConnector\n"
        f"c = open_client(RedisConnector(host='{LOOPBACK}', port={redis_server.port}))\n"
        "assert c.execute_command('PING') == 'PONG'\n"
        "print(sorted(m for m in ('redis', 'ssl') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_commands_answer_as_redis_py_did(client: resp.RespClient, raw: redis.Redis) -> None:
    """The source's commands give redis-py's (decode_responses=True) results, alone and
    in a pipeline: stream entries as (id, {field: value}), WITHSCORES as (member, float)."""
    raw.xadd("s", {"V": "12.5", "SOC": "90"}, id="1000-0")
    raw.xadd("s", {"V": "12.6"}, id="2000-0")
    raw.zadd("z", {"10": 10, "20": 20, "30": 30})
    raw.hset("h", mapping={"10": "abc", "20": "de"})
    assert client.xrange("s", min="1001", max="+", count=5) == raw.xrange("s", min="1001", count=5)
    assert client.xrevrange("s", count=1) == raw.xrevrange("s", count=1) == [("2000-0", {"V": "12.6"})]
    assert client.zrevrange("z", 0, 0) == ["30"]
    assert client.hkeys("h") == raw.hkeys("h") and client.hmget("h", ["10", "x"]) == ["abc", None]
    pipe = client.pipeline(transaction=False)
    pipe.exists("z").zrangebyscore("z", "(10", "+inf", start=0, num=1, withscores=True)
    pipe.hstrlen("h", "10").xrange("missing")
    assert pipe.execute() == [1, [("20", 20.0)], 3, []]
