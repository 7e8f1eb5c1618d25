"""The clients' ``timeout`` bounds the wait for each response, not the whole stream (real Triton).

Two null decoupled models (tests/loadgen/null_llm) with known timing: ``silent`` sends its first
token after 30 s, ``steady`` one token every 0.4 s for 3.6 s.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.loadgen._null import render_null_repo
from triton_llm.client import AsyncLLMClient, GenerateParams, LLMClient
from triton_llm.errors import ClientError
from triton_llm.launch.tritonserver import TritonServer

TIMEOUT = 1.5
STEADY_TOKENS = 9


@pytest.fixture(scope="module")
def null_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    root = tmp_path_factory.mktemp("null-timeouts")
    render_null_repo(root / "repo", ttft_ms=30_000, itl_ms=10, name="silent")
    render_null_repo(root / "repo", ttft_ms=400, itl_ms=400, name="steady")
    server = TritonServer(root / "repo", environ=os.environ, log_path=root / "tritonserver.log")
    server.start()
    try:
        server.wait_ready(timeout=120)
        yield server
    finally:
        server.stop()


def _stream_async(url: str, model: str, tokens: int) -> list[Any]:
    async def run() -> list[Any]:
        async with AsyncLLMClient(url, model=model, timeout=TIMEOUT) as client:
            return [c async for c in client.stream("hi", GenerateParams(max_tokens=tokens))]

    return asyncio.run(run())


def _stream_sync(url: str, model: str, tokens: int) -> list[Any]:
    with LLMClient(url, model=model, timeout=TIMEOUT) as client:
        return list(client.stream("hi", GenerateParams(max_tokens=tokens)))


CLIENTS = pytest.mark.parametrize(
    "stream", [_stream_sync, _stream_async], ids=["LLMClient", "AsyncLLMClient"]
)


@CLIENTS
def test_a_silent_server_times_out_after_timeout_seconds(null_models: TritonServer, stream: Any) -> None:
    start = time.monotonic()
    with pytest.raises(ClientError, match=rf"no response from silent within {TIMEOUT:g}s"):
        stream(null_models.grpc_url, "silent", 4)
    assert TIMEOUT <= time.monotonic() - start < TIMEOUT + 5


@CLIENTS
def test_a_stream_longer_than_timeout_is_not_cut_while_responses_keep_coming(
    null_models: TritonServer, stream: Any
) -> None:
    start = time.monotonic()
    chunks = stream(null_models.grpc_url, "steady", STEADY_TOKENS)
    assert time.monotonic() - start > 2 * TIMEOUT  # the whole stream outlasts the timeout
    assert chunks and chunks[-1].final
    assert sum(1 for c in chunks if c.text) == STEADY_TOKENS
