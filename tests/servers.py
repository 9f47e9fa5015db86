"""Real servers for integration tests: started on a free loopback port, in a temp dir.

Generic part: :class:`ServerProcess` runs a daemon binary bound to 127.0.0.1,
waits until its port accepts connections, and stops it (terminate, then kill).
A server type only says how to build its command line and when it is ready:
see :class:`RedisServer`, :class:`MosquittoServer`, and :class:`EmoncmsContractServer`
(the emoncms stand-in of tests/integrations/emoncms run as its own process, so it can
be killed). Tests only ever talk to servers they started, on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for a server to accept connections
STOP_TIMEOUT = 5.0  # seconds for a server to exit after SIGTERM


# Ports handed out by free_port are reserved machine-wide for the life of the process that
# took them: an exclusive flock on PORT_LOCKS/<port>.lock, which the kernel drops when the
# process exits (even by SIGKILL, so nothing is left stale). Parallel test workers
# (pytest-xdist) and other test runs on the same machine therefore never pick the same
# port, even when one picked it a moment ago and its server has not bound it yet.
PORT_LOCKS = Path(tempfile.gettempdir()) / "vemonitor-test-ports"
_reserved: dict[int, int] = {}  # port -> the open lock file descriptor that holds it


def _reserve(port: int) -> bool:
    """Take the machine-wide reservation of ``port`` for this process; False when taken."""
    if port in _reserved:
        return False  # handed out already: never twice, a server may still hold it
    try:
        PORT_LOCKS.mkdir(mode=0o1777, exist_ok=True)
        fd = os.open(PORT_LOCKS / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o666)
    except OSError:
        return True  # no shared temp dir: fall back to the bind check alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _reserved[port] = fd
    return True


def _bindable(port: int) -> bool:
    """Return whether ``port`` can be bound on the loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(bus_offset: int = 0) -> int:
    """Return a loopback TCP port that is free now and reserved for this process.

    ``bus_offset`` also reserves ``port + bus_offset`` (a Redis Cluster node's bus port is
    its port + 10000): both are free, valid and reserved, or another port is chosen.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if not bus_offset:
            if _reserve(port):
                return port
            continue
        bus = port + bus_offset
        # (A port reserved without its bus port stays reserved: unused, and harmless.)
        if bus <= 65535 and _bindable(bus) and _reserve(port) and _reserve(bus):
            return port


def require_binary(name: str, candidates: tuple[str, ...] = ()) -> str:
    """Return the path of a server binary, or skip the test when it is not installed."""
    for path in (*candidates, shutil.which(name)):
        if path and Path(path).is_file():
            return str(path)
    pytest.skip(f"{name} is not installed")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Return whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class ServerProcess:
    """A daemon on a loopback port with its own temp dir; a context manager."""

    binary_name = ""
    binary_candidates: tuple[str, ...] = ()

    def __init__(self, port: int | None = None, workdir: str | Path | None = None) -> None:
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix=f"{self.binary_name}-test-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = require_binary(self.binary_name, self.binary_candidates)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "server.log"

    def command(self) -> list[str]:
        """Return the command line (subclasses)."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Return whether the server serves requests (default: its port accepts connections)."""
        return port_open(self.port)

    def start(self) -> ServerProcess:
        """Start the server and wait until it is ready."""
        if self.process is not None and self.process.poll() is None:
            return self
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=self.dir, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.binary_name} did not start on port {self.port}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop the server (idempotent); the port is free when this returns."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL the server, a crash: no clean shutdown; the port is free when this returns."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL)
        process.wait(STOP_TIMEOUT)

    def restart(self) -> ServerProcess:
        """Stop and start again on the same port."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its temp dir (if the server created it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.cleanup()


class RedisServer(ServerProcess):
    """A throw-away ``redis-server``: no persistence, optional ``--requirepass``."""

    binary_name = "redis-server"
    binary_candidates = ("/usr/bin/redis-server",)

    def __init__(self, port: int | None = None, workdir: str | Path | None = None,
                 password: str | None = None) -> None:
        super().__init__(port, workdir)
        self.password = password

    def command(self) -> list[str]:
        """Return redis-server's command line: loopback only, nothing saved."""
        cmd = [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--dir", str(self.dir),
               "--save", "", "--appendonly", "no", "--protected-mode", "yes"]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd

    def ready(self) -> bool:
        """Return whether the server answers PING (it may refuse while loading)."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        # "-NOAUTH" still means the server is up and serving (password set).
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def __enter__(self) -> RedisServer:
        self.start()
        return self


class MosquittoServer(ServerProcess):
    """A throw-away ``mosquitto``: loopback listener, no persistence, optional users and TLS.

    ``users`` (name -> password) switches anonymous access off and writes a
    ``password_file`` with ``mosquitto_passwd``; ``tls`` is (cafile, certfile,
    keyfile) for a TLS-only listener.
    """

    binary_name = "mosquitto"
    binary_candidates = ("/usr/sbin/mosquitto",)

    def __init__(self, port: int | None = None, workdir: str | Path | None = None,
                 users: dict[str, str] | None = None,
                 tls: tuple[str, str, str] | None = None) -> None:
        super().__init__(port, workdir)
        self.users = dict(users or {})
        self.tls = tls
        self.config = self.dir / "mosquitto.conf"
        self.broker_log = self.dir / "mosquitto.log"  # flushed per line, unlike stdout

    def command(self) -> list[str]:
        """Write the config (and password file) and return mosquitto's command line."""
        lines = [f"listener {self.port} {LOOPBACK}", "persistence false", "log_dest stdout",
                 f"log_dest file {self.broker_log}",
                 "log_type error", "log_type warning", "log_type notice",
                 f"allow_anonymous {'false' if self.users else 'true'}"]
        if getpass.getuser() == "root":
            lines.append("user root")  # else mosquitto drops to a user who cannot read our files
        if self.users:
            lines.append(f"password_file {self._password_file()}")
        if self.tls:
            cafile, certfile, keyfile = self.tls
            lines += [f"cafile {cafile}", f"certfile {certfile}", f"keyfile {keyfile}"]
        self.config.write_text("\n".join(lines) + "\n")
        return [self.binary, "-c", str(self.config)]

    def _password_file(self) -> Path:
        """Create the password file with ``mosquitto_passwd -b`` (first user with ``-c``)."""
        tool = require_binary("mosquitto_passwd", ("/usr/bin/mosquitto_passwd",))
        path = self.dir / "passwd"
        for index, (user, password) in enumerate(self.users.items()):
            create = ["-c"] if index == 0 else []
            subprocess.run([tool, "-b", *create, str(path), user, password], check=True,
                           capture_output=True)
        return path

    def __enter__(self) -> MosquittoServer:
        self.start()
        return self


CONTRACT_SERVER = Path(__file__).parent / "integrations" / "emoncms" / "contract_server.py"


class EmoncmsContractServer(ServerProcess):
    """tests/integrations/emoncms/contract_server.py as a process, keeping what it stored.

    Every point it acknowledges is in ``journal`` (appended before the answer), read back
    when it starts again, so a SIGKILL (:meth:`kill`) loses nothing it said ``ok`` to.
    ``slow`` answers each request that many seconds after storing it, so a kill can land
    between the two (the client must then send the batch again). ``strip_authorization``
    drops the Authorization header as a web server without EmonCms's SetEnvIf line does.
    """

    binary_name = "python3"
    binary_candidates = (sys.executable,)

    def __init__(self, port: int | None = None, workdir: str | Path | None = None,
                 apikey: str = "0123456789abcdef0123456789abcdef", slow: float = 0.0,
                 strip_authorization: bool = False) -> None:
        super().__init__(port, workdir)
        self.apikey = apikey
        self.slow = slow
        self.strip_authorization = strip_authorization  # a web server dropping the header
        self.journal = self.dir / "points.jsonl"

    @property
    def url(self) -> str:
        """Return the base URL (an emoncms connector's ``addr``)."""
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        """Return the contract server's command line (stdlib only: runs from its path)."""
        cmd = [self.binary, str(CONTRACT_SERVER), "--port", str(self.port), "--apikey",
               self.apikey, "--journal", str(self.journal)]
        if self.slow:
            cmd += ["--slow", str(self.slow)]
        if self.strip_authorization:
            cmd.append("--strip-authorization")
        return cmd

    def __enter__(self) -> EmoncmsContractServer:
        self.start()
        return self
