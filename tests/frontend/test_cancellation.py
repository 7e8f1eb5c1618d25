"""Client disconnects reach the runtime (its slots free up), and the in-flight bound answers 429."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from urllib.parse import urlsplit

import openai
import pytest

from tests.frontend.conftest import MODEL, start_frontend

ENDLESS = {"model": MODEL, "prompt": "1, 2, 3,", "max_tokens": 2000}  # greedy counting: no end_id soon


def post_and_leave(url: str, body: dict) -> http.client.HTTPConnection:
    """Send a non-streamed request and return without reading the answer (close() disconnects)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    return conn


async def short_requests(url: str, count: int) -> list[int]:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120) as c:
        done = await asyncio.gather(
            *(c.completions.create(model=MODEL, prompt="Hello", max_tokens=4) for _ in range(count))
        )
    return [d.usage.completion_tokens for d in done]


def test_client_disconnect_frees_the_runtime_slots(frontend, cpu_engine):
    """Fill every runtime slot through the frontend, drop the clients, and the runtime serves again.

    While the slots are full a new request cannot start (checked), and the dropped requests would
    generate for minutes; only a cancellation that reaches the runtime lets 8 short requests finish.
    """
    slots = cpu_engine.engine_config["build_config"]["max_batch_size"]
    with frontend.openai() as c:
        streams = [c.completions.create(**ENDLESS, stream=True) for _ in range(slots // 2)]
        for s in streams:
            assert next(iter(s)).choices[0].text is not None  # generating
        whole = [post_and_leave(frontend.url, ENDLESS) for _ in range(slots - slots // 2)]
        time.sleep(3)  # the non-streamed ones take the remaining slots
        with frontend.openai(timeout=4) as probe, pytest.raises(openai.APITimeoutError):
            probe.completions.create(model=MODEL, prompt="Hello", max_tokens=4)  # every slot is busy
        for s in streams:
            s.close()
        for conn in whole:
            conn.close()
    start = time.monotonic()
    assert asyncio.run(short_requests(frontend.url, slots)) == [4] * slots
    assert time.monotonic() - start < 30, "the runtime kept generating for the disconnected clients"


def test_the_inflight_bound_answers_429_and_recovers(triton_server, tmp_path):
    with start_frontend(triton_server.grpc_url, tmp_path, "--max-inflight", "1") as fe, fe.openai() as c:
        stream = c.completions.create(**{**ENDLESS, "max_tokens": 300}, stream=True)
        next(iter(stream))
        with pytest.raises(openai.RateLimitError) as info:
            c.completions.create(model=MODEL, prompt="Hi", max_tokens=2)
        assert info.value.response.headers["retry-after"] == "1"
        assert info.value.body["code"] == "rate_limit_exceeded" and "--max-inflight" in info.value.message
        stream.close()
        deadline = time.monotonic() + 15
        while True:  # the slot returns once the dropped stream's cancellation has been sent
            try:
                done = c.completions.create(model=MODEL, prompt="Hi", max_tokens=2)
                break
            except openai.RateLimitError:
                assert time.monotonic() < deadline, "the in-flight slot never came back"
                time.sleep(0.1)
        assert done.usage.completion_tokens == 2
