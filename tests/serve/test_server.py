"""The rendered repository on a real Triton: exact streaming, bad input, clients/ examples."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triton_llm.client import GenerateParams, LLMClient
from triton_llm.errors import ClientError, RequestRejectedError, ServerUnavailableError

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMPTS = [
    "Say hi in Chinese and add an emoji.",
    "Reply with three emojis.",
    "Write a haiku about rain.",
]


@pytest.fixture(scope="module")
def client(triton_server):
    with LLMClient(triton_server.grpc_url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def answers(client):
    """Non-streamed ensemble answers (greedy), the reference every streamed variant must equal."""
    return {p: client.generate(p, GenerateParams(max_tokens=40), stream=False).text for p in PROMPTS}


def test_answers_exercise_spaces_newlines_emoji_and_cjk(answers):
    text = "".join(answers.values())
    assert " " in text and "\n" in text
    assert any(ord(ch) > 0xFFFF for ch in text), f"no 4-byte character (emoji) in {text!r}"
    assert any(0x4E00 <= ord(ch) <= 0x9FFF for ch in text), f"no CJK character in {text!r}"


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_streamed_pieces_concatenate_to_the_non_streamed_text(triton_server, answers, model):
    with LLMClient(triton_server.grpc_url, model=model, timeout=120) as c:
        for prompt, expected in answers.items():
            done = c.generate(prompt, GenerateParams(max_tokens=40))
            assert done.text == expected, (model, prompt, done.pieces)
            assert len([p for p in done.pieces if p]) > 5, "the answer was not streamed piece by piece"
            assert 0 < done.tokens <= 40
            if model == "tensorrt_llm_bls":
                assert c.generate(prompt, GenerateParams(max_tokens=40), stream=False).text == expected


def test_concurrent_streams_keep_their_own_text(triton_server, answers):
    import asyncio

    from triton_llm.client import AsyncLLMClient

    async def run():
        async with AsyncLLMClient(triton_server.grpc_url, timeout=120) as c:
            return await asyncio.gather(*(c.generate(p, GenerateParams(max_tokens=40)) for p in PROMPTS))

    results = asyncio.run(run())
    assert [r.text for r in results] == [answers[p] for p in PROMPTS]
    assert all(r.ttft is not None and r.tpot is not None for r in results)


BAD = [
    ("", {}, "text_input is empty"),
    ("hi", {"max_tokens": 0}, "max_tokens must be at least 1"),
    ("hi", {"max_tokens": -5}, "max_tokens must be at least 1"),
    ("hi", {"max_tokens": 5000}, "above the engine limit"),
    ("word " * 3000, {}, "above the engine's max_input_len"),
    ("hi", {"temperature": -1.0}, "temperature must be >= 0"),
    ("hi", {"temperature": float("nan")}, "temperature must be >= 0"),
    ("hi", {"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ("hi", {"top_k": -2}, "top_k must be >= 0"),
    ("hi", {"end_id": 10**6}, "end_id 1000000 is outside the vocabulary"),
]


@pytest.mark.parametrize(("prompt", "params", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_input_is_rejected_and_the_server_stays_healthy(client, triton_server, prompt, params, message):
    with pytest.raises(RequestRejectedError, match=message):
        client.generate(prompt, GenerateParams(**{"max_tokens": 8, **params}))
    assert triton_server.server.is_ready()
    assert client.generate("Hi", GenerateParams(max_tokens=4)).tokens == 4


def test_sampling_with_a_seed_is_reproducible(client):
    params = GenerateParams(max_tokens=16, temperature=0.9, top_k=40, top_p=0.95, seed=1234)
    assert client.generate("Name a color.", params).text == client.generate("Name a color.", params).text


def test_unary_infer_on_the_decoupled_model_says_to_stream(client):
    with pytest.raises(ClientError, match="decoupled"):
        client.infer("Hi", GenerateParams(max_tokens=4))


def test_unknown_model_and_stopped_server_are_unavailable(triton_server):
    with LLMClient(triton_server.grpc_url, model="no_such_model") as c, pytest.raises(ServerUnavailableError):
        c.generate("Hi", GenerateParams(max_tokens=2))
    from triton_llm.launch.tritonserver import free_port

    with (
        LLMClient(f"127.0.0.1:{free_port()}") as c,
        pytest.raises(ServerUnavailableError, match="cannot reach"),
    ):
        c.generate("Hi", GenerateParams(max_tokens=2))


def wait_for_log(server, needle: str, count: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = server.log_path.read_text(errors="replace").count(needle)
        if seen >= count:
            return seen
        time.sleep(0.2)
    return server.log_path.read_text(errors="replace").count(needle)


NEEDLE = "cancelled by the client"
# end_id that SmolLM2 never generates, so only cancellation can end these requests early
LONG = GenerateParams(max_tokens=1500, end_id=49151)


def log_count(server) -> int:
    return server.log_path.read_text(errors="replace").count(NEEDLE)


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_leaving_the_stream_cancels_the_request_on_the_server(triton_server, model):
    before = log_count(triton_server.server)
    with LLMClient(triton_server.grpc_url, model=model, timeout=120) as c:
        for n, _chunk in enumerate(c.stream("Count from 1 to 1000.", LONG), 1):
            if n == 4:
                break
        assert wait_for_log(triton_server.server, NEEDLE, before + 1) >= before + 1
        start = time.monotonic()
        assert c.generate("Hi", GenerateParams(max_tokens=4)).tokens == 4
        assert time.monotonic() - start < 10


def test_cancelling_the_asyncio_task_cancels_the_request(triton_server):
    import asyncio

    from triton_llm.client import AsyncLLMClient

    before = log_count(triton_server.server)

    async def run():
        async with AsyncLLMClient(triton_server.grpc_url) as c:
            got = asyncio.Event()

            async def consume():
                async for chunk in c.stream("Count from 1 to 1000.", LONG):
                    if chunk.text:
                        got.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(got.wait(), 60)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    assert wait_for_log(triton_server.server, NEEDLE, before + 1) >= before + 1


def test_clients_python_example(triton_server, answers):
    prompt = PROMPTS[0]
    out = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "clients/stream_grpc.py"),
            prompt,
            "--url",
            triton_server.grpc_url,
            "--max-tokens",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout == answers[prompt] + "\n"


def test_clients_curl_example(triton_server, answers):
    prompt = PROMPTS[0]
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "clients/generate_stream.sh"), triton_server.http_url, prompt, "40"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    events = [
        json.loads(line[len("data:") :]) for line in out.stdout.splitlines() if line.startswith("data:")
    ]
    assert len(events) > 5
    assert "".join(e["text_output"] for e in events) == answers[prompt]


def test_stream_cli_prints_text_then_timings(triton_server, answers):
    prompt = PROMPTS[2]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "triton_llm.cli",
            "stream",
            prompt,
            "--url",
            triton_server.grpc_url,
            "--max-tokens",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout == answers[prompt] + "\n"
    assert "TTFT" in out.stderr and "TPOT" in out.stderr and "40 tokens" in out.stderr


def test_stream_cli_bad_input_exits_2_with_one_line(triton_server):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "triton_llm.cli",
            "stream",
            "hi",
            "--url",
            triton_server.grpc_url,
            "--max-tokens",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: request rejected") and "max_tokens must be at least 1" in out.stderr
