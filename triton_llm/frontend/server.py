"""Run the frontend under uvicorn (asyncio loop, one process, no thread per request)."""

from __future__ import annotations

import importlib.util
import signal
import socket
from typing import Any

from triton_llm.errors import ServeError
from triton_llm.frontend.config import FrontendConfig


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one).

    Its protocol is set to TCP explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    on accepted sockets that say so, and with Nagle on, every streamed answer after the first on
    a kept-alive connection waited 40 ms (the client's delayed ACK) before its first token.

    Raises:
        ServeError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port}: {e.strerror}", hint="choose another --port"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_frontend(config: FrontendConfig, *, on_ready: Any = None) -> int:
    """Serve the OpenAI API until SIGINT/SIGTERM; returns 0 after a clean stop.

    Args:
        config: validated settings.
        on_ready: called with the bound (host, port) once the server accepts connections.

    Raises:
        ServeError: the port cannot be bound.
    """
    import uvicorn

    from triton_llm.frontend.app import create_app

    sock = bind(config.host, config.port)
    address = sock.getsockname()[:2]

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and on_ready is not None:
                on_ready(address)

    server = _Server(
        uvicorn.Config(
            create_app(config),
            loop="asyncio",  # grpc.aio runs on asyncio's own loop
            http="httptools" if importlib.util.find_spec("httptools") else "h11",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler it
    # found; a no-op handler here makes that a clean exit 0, as `triton-llm serve` does.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if server.started else 1
