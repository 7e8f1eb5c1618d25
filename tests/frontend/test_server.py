"""The frontend's listening socket: connections accepted on it send small writes at once.

A streamed answer is many small writes (the headers, then one SSE event per token). With
Nagle's algorithm on, a write waits for the ACK of the previous one, and on a kept-alive
connection the client delays that ACK by 40 ms: every response after the first on a
connection got its first token 40-47 ms late. asyncio turns Nagle off (TCP_NODELAY) only
for sockets whose protocol is TCP, so the socket we hand to uvicorn must say so.
"""

from __future__ import annotations

import asyncio
import socket

from triton_llm.frontend.server import bind


def test_connections_accepted_on_the_frontend_socket_have_nodelay() -> None:
    async def accepted_nodelay() -> int:
        listener = bind("127.0.0.1", 0)
        port = listener.getsockname()[1]
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Capture(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Capture, sock=listener)  # as uvicorn does
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(accepted_nodelay()) != 0
