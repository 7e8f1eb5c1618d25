"""Triton killed (SIGKILL) mid-stream, under every kind of client.

What must hold: every client streaming at the moment of the kill gets an error, before its
own timeout and well before it (the broken connection is noticed, not waited out); nothing
hangs (every client thread returns, the python-backend stubs exit by themselves, and the
OpenAI frontend keeps answering, with 503 on /health); nothing is left after stop().

Clients: ``triton_llm.client`` gRPC streams to the ensemble, plain ``generate_stream`` SSE
connections to the ensemble, and OpenAI chat streams through the frontend ``serve`` runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from triton_llm.launch.tritonserver import free_port, shm_leftovers

TIMEOUT = 20.0  # every client's own timeout (s)
NOTICE = 5.0  # a client must notice the kill within this (s), well before its timeout
PROMPT = "Write a long story about a lighthouse keeper."
MAX_TOKENS = 400
NEVER = 49151  # an end_id SmolLM2 never samples: only the kill ends these streams


class Outcome:
    """What one client saw: when its first piece and its end arrived, and the error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.first = threading.Event()
        self.ended_at: float | None = None
        self.error: str | None = None
        self.completed = False

    def end(self, error: str | None) -> None:
        self.error, self.ended_at = error, time.monotonic()


def _grpc_client(url: str, out: Outcome) -> None:
    from triton_llm.client import GenerateParams, LLMClient
    from triton_llm.errors import TritonLLMError

    params = GenerateParams(max_tokens=MAX_TOKENS, end_id=NEVER)
    try:
        with LLMClient(url, timeout=TIMEOUT) as client:
            for chunk in client.stream(PROMPT, params):
                if chunk.text:
                    out.first.set()
        out.completed = True
        out.end(None)
    except TritonLLMError as e:
        out.end(f"{type(e).__name__}: {e}")


def _sse_lines(sock: socket.socket, out: Outcome, request: bytes, done_marker: bytes) -> None:
    sock.settimeout(TIMEOUT)
    sock.sendall(request)
    received = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            if b"data:" in received and b'"text_output":""' not in received:
                out.first.set()
            if done_marker in received:
                break
    except TimeoutError:
        out.end("timeout")
        return
    except OSError as e:
        out.end(f"{type(e).__name__}: {e}")
        return
    events = [line for line in received.split(b"\n") if line.startswith(b"data:")]
    if done_marker in received and not any(b'"error"' in e for e in events):
        out.completed = True
        out.end(None)
    elif any(b'"error"' in e for e in events):
        out.end(events[-1].decode(errors="replace"))
    else:
        out.end("connection closed before the stream ended")


def _http_client(http_url: str, out: Outcome) -> None:
    host, port = http_url.rsplit(":", 1)
    fields = {"text_input": PROMPT, "max_tokens": MAX_TOKENS, "stream": True, "end_id": NEVER}
    body = json.dumps(fields).encode()
    request = (
        f"POST /v2/models/ensemble/generate_stream HTTP/1.1\r\nHost: {http_url}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        # Triton closes the connection after the last event of a generate_stream
        _sse_lines(sock, out, request, done_marker=b"\x00never\x00")


def _openai_client(port: int, out: Outcome) -> None:
    body = json.dumps(
        {
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS,
            "stream": True,
        }
    ).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        _sse_lines(sock, out, request, done_marker=b"data: [DONE]")


@pytest.fixture
def own_server(cpu_engine: Any, tmp_path: Path) -> Iterator[Any]:
    """A Triton of its own (this test kills it) serving the default model, plus the frontend."""
    from triton_llm.frontend import FrontendConfig, frontend_process
    from triton_llm.launch.tritonserver import TritonServer
    from triton_llm.repository import render_engine

    repo = render_engine(cpu_engine, tmp_path / "model_repository")
    server = TritonServer(repo, environ=os.environ, log_path=tmp_path / "tritonserver.log")
    config = FrontendConfig(
        triton_url=server.grpc_url, model_name="smollm2-135m", port=free_port(), timeout=TIMEOUT
    )
    server.start()
    try:
        server.wait_ready(timeout=float(os.environ.get("TRITON_LLM_TEST_READY_TIMEOUT", "300")))
        with frontend_process(config):
            yield server, config.port
    finally:
        server.stop()
        assert shm_leftovers(server.shm_prefix) == []


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


def test_every_client_errors_before_its_timeout_and_nothing_hangs(own_server: Any) -> None:
    server, frontend_port = own_server
    outcomes = [Outcome("grpc") for _ in range(4)] + [Outcome("http") for _ in range(2)]
    outcomes += [Outcome("openai") for _ in range(2)]
    targets = {
        "grpc": lambda o: _grpc_client(server.grpc_url, o),
        "http": lambda o: _http_client(server.http_url, o),
        "openai": lambda o: _openai_client(frontend_port, o),
    }
    threads = [threading.Thread(target=targets[o.kind], args=(o,), daemon=True) for o in outcomes]
    for t in threads:
        t.start()
    for o in outcomes:
        assert o.first.wait(120), f"{o.kind}: no text before the kill ({o.error})"
    pgid = server.proc.pid
    killed_at = time.monotonic()
    os.kill(server.proc.pid, signal.SIGKILL)
    # reaped as `triton-llm serve` (its parent) does: a stub sees its parent gone only once the
    # parent is no zombie (it polls kill(ppid, 0) every 300 ms, python_backend pb_stub.cc main)
    server.proc.wait(timeout=10)
    for t in threads:
        t.join(TIMEOUT + 5)
    hung = [o.kind for o, t in zip(outcomes, threads, strict=True) if t.is_alive()]
    assert not hung, f"clients still waiting {TIMEOUT + 5:.0f}s after the kill: {hung}"
    report = {f"{o.kind}{i}": (round(o.ended_at - killed_at, 2) if o.ended_at else None, o.error)
              for i, o in enumerate(outcomes)}  # fmt: skip
    assert all(not o.completed and o.error for o in outcomes), report
    assert all(o.ended_at is not None and o.ended_at - killed_at < NOTICE for o in outcomes), report
    assert all("timeout" not in (o.error or "").lower() for o in outcomes), report

    # nothing hangs on the server side: the python-backend stubs leave with their parent
    deadline = time.monotonic() + 10
    while (left := _group_pids(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"processes of the killed server still running after 10 s: {left}"
    # the frontend stays up and says Triton is gone
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{frontend_port}/health", timeout=10)
    err.value.close()
    assert err.value.code == 503
