"""A small thread-safe HTTP/1.1 connection pool over ``http.client`` for the S3 client.

Kept-alive connections are reused; one that the server closed while idle is replaced and the
request sent again (nothing was answered on it). File bodies go out with ``socket.sendfile``
(zero-copy on plain HTTP), response bodies are read straight into the caller's buffer.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

# Failures that mean "the idle kept-alive connection was already closed by the server".
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_DRAIN_LIMIT = 64 * 1024


@dataclass(frozen=True)
class FileBody:
    """A request body read from ``path[offset:offset + length]``."""

    path: Path
    offset: int
    length: int


Body = bytes | FileBody | None


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy (``http://host:port``); HTTPS targets are tunnelled with CONNECT."""

    host: str
    port: int


class Response:
    """One response; read the body with :meth:`readinto`/:meth:`read`, then :meth:`release` it."""

    def __init__(
        self, pool: ConnectionPool, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse
    ):
        self._pool, self._conn, self._resp = pool, conn, resp
        self.status = resp.status
        self.headers = resp.headers

    def header(self, name: str) -> str | None:
        """A response header (case-insensitive), or ``None``."""
        return self._resp.getheader(name)

    def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` body bytes into ``view``; 0 at the end of the body."""
        return self._resp.readinto(view)

    def read(self, limit: int | None = None) -> bytes:
        """The rest of the body (at most ``limit`` bytes)."""
        return self._resp.read(limit)

    def release(self) -> None:
        """Return the connection to the pool if the body was read to its end, else close it."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        left = self._resp.length
        if not self._resp.isclosed() and left is not None and left <= _DRAIN_LIMIT:
            # finish a short unread rest (HEAD, error bodies) to keep the connection
            with contextlib.suppress(OSError, http.client.HTTPException):
                self._resp.read()
        if self._resp.isclosed() and not self._resp.will_close:
            self._pool._put(conn)
        else:
            conn.close()


class ConnectionPool:
    """Connections to one ``scheme://host:port`` (through ``proxy`` if given)."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        proxy: Proxy | None,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int,
    ) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self._ssl, self._proxy = ssl_context, proxy
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        # Idle sockets close with the pool, not at garbage collection (no ResourceWarning).
        weakref.finalize(self, _close_all, self._idle)

    def _new(self) -> http.client.HTTPConnection:
        host, port = (self._proxy.host, self._proxy.port) if self._proxy else (self.host, self.port)
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout, context=self._ssl)
            if self._proxy:
                conn.set_tunnel(self.host, self.port)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _get(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _put(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            _close_all(self._idle)

    def request(
        self, method: str, path_and_query: str, headers: dict[str, str], body: Body = None
    ) -> Response:
        """Send one request and return its response (status and headers read, body not yet).

        Raises:
            OSError / http.client.HTTPException: the request could not be sent or answered.
        """
        while True:
            conn, reused = self._get()
            try:
                resp = self._send(conn, method, path_and_query, headers, body)
            except _STALE:
                conn.close()
                if reused:
                    continue  # the server dropped the idle connection: send it on a fresh one
                raise
            except BaseException:
                conn.close()
                raise
            return Response(self, conn, resp)

    def _send(
        self, conn: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str], body: Body
    ) -> http.client.HTTPResponse:
        if self._proxy and self.scheme == "http":
            target = f"http://{self.host}:{self.port}{target}"  # absolute form through a plain proxy
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if isinstance(body, FileBody):
            conn.putheader("content-length", str(body.length))
            conn.endheaders()
            assert conn.sock is not None
            with open(body.path, "rb") as f:
                sent = conn.sock.sendfile(f, body.offset, body.length) if body.length else 0
            if sent != body.length:
                raise OSError(f"{body.path} ended {body.length - sent} bytes early while uploading")
        else:
            data = body or b""
            if data or method in ("PUT", "POST"):
                conn.putheader("content-length", str(len(data)))
            conn.endheaders(data or None)
        return conn.getresponse()


def _close_all(conns: list[http.client.HTTPConnection]) -> None:
    while conns:
        conns.pop().close()
