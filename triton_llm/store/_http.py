"""A small thread-safe HTTP/1.1 connection pool over ``http.client`` for the S3 client.

Kept-alive connections are reused; one that the server closed while idle is replaced and the
request sent again (nothing was answered on it). File bodies go out with ``socket.sendfile``.
Response bodies are saved to files with ``splice`` on plain HTTP (socket -> pipe -> file inside
the kernel: one copy instead of two, and the caller hashes the written pages through a
read-only ``mmap``); over TLS they are read into the caller's buffer and written with ``pwrite``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import http.client
import mmap
import os
import select
import socket
import ssl
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from triton_llm.store._io import pwrite_all

# Failures that mean "the idle kept-alive connection was already closed by the server".
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_DRAIN_LIMIT = 64 * 1024
_PIPE_SIZE = 1 << 20  # the default /proc/sys/fs/pipe-max-size
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# splice into a file is refused by some filesystems: fall back to read + pwrite
_NO_FILE_SPLICE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV)

OnData = Callable[[int, memoryview], None]


class FileWriteError(Exception):
    """Writing the destination file failed (``error``: a full disk, a quota...): no network problem."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise FileWriteError(e) from e


class _Window:
    """Read-only views of a file's just-written bytes through a sliding ``mmap`` window.

    At most :attr:`SIZE` bytes of each stream are mapped at a time (they are page cache
    either way; the window keeps them from piling up in the process's RSS).
    """

    SIZE = 8 << 20

    def __init__(self, fd: int, *, end: int) -> None:
        self._fd, self._end = fd, end
        self._map: mmap.mmap | None = None
        self._mem = memoryview(b"")
        self._start = 0

    def view(self, pos: int, n: int) -> memoryview:
        """The ``n`` bytes at file position ``pos`` (release the view after use)."""
        if self._map is None or pos < self._start or pos + n > self._start + len(self._map):
            self.close()
            start = pos - pos % mmap.ALLOCATIONGRANULARITY
            size = min(max(self.SIZE, pos + n - start), self._end - start)
            with _writing():  # the file is already ftruncate()d to its full size
                self._map = mmap.mmap(self._fd, size, prot=mmap.PROT_READ, offset=start)
            self._mem, self._start = memoryview(self._map), start
        return self._mem[pos - self._start : pos - self._start + n]

    def close(self) -> None:
        """Unmap the current window."""
        if self._map is not None:
            self._mem.release()
            self._map.close()
            self._map = None


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

    def save(self, fd: int, *, offset: int, length: int, buf: memoryview, on_data: OnData) -> int:
        """Write the next ``length`` body bytes into ``fd`` at ``offset``; ``on_data(pos, view)`` sees
        each written piece. Returns the bytes written: fewer if the connection closed early.

        ``fd`` must be open for reading and writing, its file at least ``offset + length`` bytes long
        (written pages are hashed through ``mmap``).

        Raises:
            FileWriteError: writing ``fd`` failed (a full disk...).
            OSError / http.client.HTTPException: the connection failed.
        """
        done = 0
        if self._can_splice(length):
            done = self._splice(fd, offset, length, buf, on_data)
        while done < length:
            view = buf[: min(len(buf), length - done)]
            n = self._resp.readinto(view)
            if n == 0:
                break
            with _writing():
                pwrite_all(fd, view[:n], offset + done)
            on_data(done, view[:n])
            done += n
        return done

    def _can_splice(self, length: int) -> bool:
        # Plain TCP only (TLS bytes need decrypting in user space), and a body of known length.
        return (
            hasattr(os, "splice")
            and length > 0
            and self._pool.scheme == "http"
            and self._resp.fp is not None
            and not self._resp.chunked
            and self._resp.length is not None
            and not self._resp.getheader("content-encoding")
        )

    def _splice(self, fd: int, offset: int, length: int, buf: memoryview, on_data: OnData) -> int:
        """Move body bytes socket -> pipe -> file until ``length``, EOF or a filesystem that refuses."""
        resp = self._resp
        assert resp.length is not None and resp.fp is not None
        sock = resp.fp.fileno()  # also open when http.client already let go of a closing connection
        length = min(length, resp.length)
        done = 0
        # Body bytes http.client already buffered while parsing the headers come first.
        head = resp.fp.peek(1)[:length]
        if head:
            data = resp.fp.read(len(head))
            with _writing():
                pwrite_all(fd, data, offset)
            on_data(0, memoryview(data))
            done = len(data)
            self._consumed(done)
        if done == length:
            return done
        spliced_from = done
        window = _Window(fd, end=offset + length)
        pipe_r = pipe_w = -1
        try:
            pipe_r, pipe_w = os.pipe()
            with contextlib.suppress(OSError):
                fcntl.fcntl(pipe_w, _F_SETPIPE_SZ, _PIPE_SIZE)
            while done < length:
                n = self._splice_in(sock, pipe_w, min(_PIPE_SIZE, length - done))
                if n == 0:
                    break  # the server closed the connection
                try:
                    moved = 0
                    while moved < n:
                        moved += os.splice(pipe_r, fd, n - moved, offset_dst=offset + done + moved)
                except OSError as e:
                    if e.errno not in _NO_FILE_SPLICE or moved:
                        raise FileWriteError(e) from e
                    # this filesystem takes no splice: write what the pipe holds, then read normally
                    while n:
                        got = os.readv(pipe_r, [buf[: min(len(buf), n)]])
                        with _writing():
                            pwrite_all(fd, buf[:got], offset + done)
                        on_data(done, buf[:got])
                        done, n = done + got, n - got
                    break
                piece = window.view(offset + done, n)
                try:
                    on_data(done, piece)
                finally:
                    piece.release()
                done += n
        finally:
            window.close()
            for end in (pipe_r, pipe_w):
                if end >= 0:
                    os.close(end)
            self._consumed(done - spliced_from)
        return done

    def _splice_in(self, sock: int, pipe_w: int, n: int) -> int:
        """Move up to ``n`` bytes from the socket into the pipe, waiting up to the read timeout."""
        while True:
            try:
                return os.splice(sock, pipe_w, n)
            except BlockingIOError:  # the socket has a timeout, so it is non-blocking
                timeout = self._pool.read_timeout
                if not select.select([sock], [], [], timeout)[0]:
                    raise TimeoutError(f"no data for {timeout} s") from None

    def _consumed(self, n: int) -> None:
        """Account for ``n`` body bytes taken past http.client's own reads."""
        self._resp.length = (self._resp.length or 0) - n
        if self._resp.length == 0:
            self._resp.read()  # marks the body complete, so the connection can be reused

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
        else:  # the response too: it holds the socket when http.client already let go of it
            self._resp.close()
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
        self._connect_timeout, self.read_timeout = connect_timeout, read_timeout
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
        conn.sock.settimeout(self.read_timeout)
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
