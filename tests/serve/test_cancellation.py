"""Cancellation from any client frees the runtime's slot, on the real Triton (issue 14).

40 plain clients start 200-token streams and abandon them at random moments (starts spread
over 16 s, lifetimes up to 2.5 s): tritonclient gRPC streams with
``stop_stream(cancel_requests=True)`` and SSE clients that drop their ``generate_stream``
connection; none sends a request id or TensorRT-LLM's ``stop`` input.
Through the ensemble, the BLS and the ``tensorrt_llm`` model itself: within 2 s the runtime
reports no active request (``nv_trt_llm_request_metrics{request_type="active"}`` scraped from
Triton's /metrics), the cancellations are counted, and the next request's TTFT is within 2x
the unloaded TTFT. The starts are spread so that requests arrive slower than this CPU can
prefill them: through the ensemble, a request still queued in ``tensorrt_llm`` when its
client leaves is stopped only after its first token (Triton 2.51 tells the ensemble's steps
nothing earlier; model_repository/README.md), so every abandoned request costs one prefill.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from typing import Any

import pytest

from tests.serve import _clients as c

STREAMS = 40
MAX_TOKENS = 200
MAX_DELAY = 2.5  # seconds before a client gives up (a 200-token request takes far longer here)
SPREAD = 16.0  # clients start within this many seconds: fewer per second than the CPU can prefill
PROMPT = "Count from 1 to 1000, one number per line."
MODELS = ["ensemble", "tensorrt_llm_bls", "tensorrt_llm"]


@pytest.fixture(scope="module")
def prompt_ids(triton_server: Any) -> list[int]:
    from triton_llm.repository.preprocess import load_tokenizer

    return list(load_tokenizer(str(triton_server.engine.tokenizer_dir)).encode(PROMPT))


def _arrays(model: str, ids: list[int], max_tokens: int) -> dict[str, Any]:
    if model == "tensorrt_llm":
        return c.token_inputs(ids, max_tokens)
    return c.text_inputs(PROMPT, max_tokens)


def _output(model: str) -> str:
    return "output_ids" if model == "tensorrt_llm" else "text_output"


def _http_body(model: str, ids: list[int]) -> dict[str, Any]:
    if model == "tensorrt_llm":
        return {
            "input_ids": ids,
            "input_lengths": [len(ids)],
            "request_output_len": [MAX_TOKENS],
            "streaming": True,
            "end_id": [c.NEVER],
        }
    return {"text_input": PROMPT, "max_tokens": MAX_TOKENS, "stream": True, "end_id": c.NEVER}


def _check_freed(server: Any, model: str, ids: list[int], abandon: Any, seed: int) -> None:
    metrics = f"127.0.0.1:{server.server.metrics_port}"
    short = _arrays(model, ids, 8)
    unloaded = statistics.median(
        c.ttft(server.grpc_url, model, short, output=_output(model)) for _ in range(3)
    )
    before = c.cancelled_requests(metrics)
    abandoned = abandon()
    assert len(abandoned) == STREAMS
    idle, waited = c.wait_idle(metrics, timeout=2.0)
    counted = c.cancelled_requests(metrics) - before
    start = time.monotonic()
    try:
        after = c.ttft(server.grpc_url, model, short, output=_output(model), timeout=60)
    except Exception as e:  # a leak queues the next request behind every abandoned one
        after = time.monotonic() - start
        pytest.fail(f"seed {seed}: next request got no token within {after:.0f}s ({e}); active={idle}")
    streamed = sum(1 for a in abandoned if a.responses > 0)
    report = (
        f"seed {seed}: active={idle} after {waited:.2f}s, cancellations counted {counted:.0f} "
        f"({streamed} streams had responses), TTFT unloaded {unloaded * 1000:.0f} ms, "
        f"next {after * 1000:.0f} ms"
    )
    print(report)
    assert idle == 0, report
    assert streamed <= counted <= STREAMS, report
    assert after <= 2 * unloaded, report


def _seed() -> int:
    return int(os.environ.get("TRITON_LLM_TEST_SEED") or random.SystemRandom().randrange(2**32))


@pytest.mark.parametrize("model", MODELS)
def test_grpc_cancel_requests_frees_the_slot(triton_server: Any, prompt_ids: list[int], model: str) -> None:
    seed = _seed()
    rng = random.Random(seed)
    arrays = _arrays(model, prompt_ids, MAX_TOKENS)
    _check_freed(
        triton_server,
        model,
        prompt_ids,
        lambda: c.cancel_grpc_streams(
            triton_server.grpc_url, model, arrays, count=STREAMS, rng=rng, max_delay=MAX_DELAY, spread=SPREAD
        ),
        seed,
    )


@pytest.mark.parametrize("model", MODELS)
def test_dropped_sse_connection_frees_the_slot(triton_server: Any, prompt_ids: list[int], model: str) -> None:
    seed = _seed()
    rng = random.Random(seed)
    body = _http_body(model, prompt_ids)
    _check_freed(
        triton_server,
        model,
        prompt_ids,
        lambda: c.drop_http_streams(
            triton_server.http_url, model, body, count=STREAMS, rng=rng, max_delay=MAX_DELAY, spread=SPREAD
        ),
        seed,
    )
