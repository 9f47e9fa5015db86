"""An overall deadline per HTTP request, not per read (issue 25, point 4).

``requests``' timeout bounds each socket read, so a server that trickles its answer
(a byte every few seconds) holds a request, and the engine's output or input with
it, for ever. Here the session's adapter remembers the sockets it opened; a timer
started with each request shuts them down when the request's deadline passes, and
the blocked read ends at once. The caller then reports an outage (the outbox
retries with backoff) instead of hanging.

urllib3 has no such deadline: its ``Timeout(total=)`` also applies per read.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose open sockets can all be cut from another thread."""

    def __init__(self, **kwargs: Any) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Make the pools open connections that report their socket here."""
        super().init_poolmanager(*args, **kwargs)
        track = self._track

        class Connection(HTTPConnection):
            def connect(self) -> None:
                super().connect()
                track(self.sock)

        class SecureConnection(HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                track(self.sock)

        class Pool(HTTPConnectionPool):
            ConnectionCls = Connection

        class SecurePool(HTTPSConnectionPool):
            ConnectionCls = SecureConnection

        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}

    def _track(self, sock: socket.socket | None) -> None:
        if sock is not None:
            with self._lock:
                self._sockets.add(sock)

    def cut(self) -> None:
        """Shut down every socket this adapter opened (a blocked read returns at once)."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)


class Deadline:
    """Whether the last request under :func:`overall` was cut at its deadline."""

    expired = False


@contextlib.contextmanager
def overall(session: requests.Session, seconds: float) -> Iterator[Deadline]:
    """Give the requests made inside the block ``seconds`` in all; cut them after that."""
    state = Deadline()
    adapters = [a for a in session.adapters.values() if isinstance(a, DeadlineAdapter)]

    def expire() -> None:
        state.expired = True
        for adapter in adapters:
            adapter.cut()

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()
