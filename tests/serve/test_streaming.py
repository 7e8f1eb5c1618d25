"""Streamed text equals one-shot text for every client, on the real Triton (issue 8, item 5).

Clients: plain tritonclient with no request id (ensemble), curl against ``generate_stream``
(SSE, no id), the BLS model, and triton_llm.client. The reference is the ensemble's
non-streamed answer to the same request. Two prompt sets: one kept in
``tests/serve/data/streaming_prompts.json`` (greedy), one generated at random with sampling
(seeded; the seed is printed on failure, ``TRITON_LLM_TEST_SEED`` replays it).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.serve import _clients as c
from triton_llm.client import GenerateParams, LLMClient

DATA = json.loads((Path(__file__).parent / "data" / "streaming_prompts.json").read_text())
MAX_TOKENS = int(DATA["max_tokens"])
ACCENTED = "àáâãäåçèéêëìíîïñòóôõöùúûüýÿœßÀÉÈÇÖÜ"


@dataclass(frozen=True)
class Case:
    prompt: str
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature, top_k, seed


def random_cases(seed: int, count: int) -> list[Case]:
    """Prompts mixing scripts, answered with seeded sampling (so each answer is reproducible)."""
    rng = random.Random(seed)

    def chunk() -> str:
        kind = rng.choice(["cjk", "kana", "emoji", "accented", "ascii"])
        n = rng.randint(2, 6)
        if kind == "cjk":
            return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(n))
        if kind == "kana":
            return "".join(chr(rng.randint(0x3041, 0x3096)) for _ in range(n))
        if kind == "emoji":
            return "".join(chr(rng.randint(0x1F300, 0x1F64F)) for _ in range(n))
        if kind == "accented":
            return "".join(rng.choice(ACCENTED) for _ in range(n))
        return " ".join(rng.choice(["rain", "tea", "sky", "hello", "ok"]) for _ in range(n))

    templates = [
        "Repeat exactly: {a} {b}",
        "Translate to Chinese: {a}",
        "Continue this list:\n- {a}\n- {b}\n-",
        "Write a short poem using {a} and {b}.",
    ]
    cases = []
    for _ in range(count):
        prompt = rng.choice(templates).format(a=chunk(), b=chunk())
        sampling = {
            "temperature": round(rng.uniform(0.7, 1.3), 2),
            "top_k": rng.choice([0, 40]),
            "seed": rng.randrange(2**31),
        }
        cases.append(Case(prompt, sampling))
    return cases


def _arrays(case: Case, *, stream: bool) -> dict[str, np.ndarray]:
    arrays = c.text_inputs(case.prompt, MAX_TOKENS, stream=stream, end_id=None)
    s = case.sampling
    if "temperature" in s:
        arrays["temperature"] = np.array([[s["temperature"]]], dtype=np.float32)
        arrays["top_k"] = np.array([[s["top_k"]]], dtype=np.int32)
        arrays["seed"] = np.array([[s["seed"]]], dtype=np.uint64)
    return arrays


def _json_body(case: Case) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text_input": case.prompt,
        "max_tokens": MAX_TOKENS,
        "stream": True,
        **case.sampling,
    }
    return body


def one_shot(server: Any, case: Case) -> str:
    result = c.grpc_stream(server.grpc_url, "ensemble", _arrays(case, stream=False), output="text_output")
    assert result.error is None, result.error
    return "".join(p.reshape(-1)[0].decode("utf-8") for p in result.pieces)


def plain_tritonclient(server: Any, case: Case, model: str = "ensemble") -> list[str]:
    """What a user's loop prints: each response decoded on its own, no request id."""
    result = c.grpc_stream(server.grpc_url, model, _arrays(case, stream=True), output="text_output")
    assert result.error is None, result.error
    return [p.reshape(-1)[0].decode("utf-8") for p in result.pieces]


def curl_sse(server: Any, case: Case) -> list[str]:
    out = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--fail-with-body",
            "--no-buffer",
            "-X",
            "POST",
            f"http://{server.http_url}/v2/models/ensemble/generate_stream",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(_json_body(case)),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    lines = out.stdout.decode("utf-8").splitlines()
    return [json.loads(line[len("data:") :])["text_output"] for line in lines if line.startswith("data:")]


def ours(server: Any, case: Case) -> list[str]:
    s = case.sampling
    params = GenerateParams(
        max_tokens=MAX_TOKENS, temperature=s.get("temperature"), top_k=s.get("top_k"), seed=s.get("seed")
    )
    with LLMClient(server.grpc_url, timeout=120) as client:
        return client.generate(case.prompt, params).pieces


CLIENTS = {
    "tritonclient (no request id)": plain_tritonclient,
    "curl generate_stream": curl_sse,
    "tensorrt_llm_bls": lambda server, case: plain_tritonclient(server, case, "tensorrt_llm_bls"),
    "triton_llm.client": ours,
}


def _check(server: Any, cases: list[Case], label: str) -> list[str]:
    answers = []
    failures = []
    for case in cases:
        want = one_shot(server, case)
        answers.append(want)
        for name, client in CLIENTS.items():
            pieces = client(server, case)
            if "".join(pieces) != want:
                failures.append(f"{name}: {case}\n  one-shot {want!r}\n  streamed {pieces!r}")
            elif len([p for p in pieces if p]) < 2:
                failures.append(f"{name}: {case} was not streamed piece by piece: {pieces!r}")
    assert not failures, f"{label}:\n" + "\n".join(failures)
    return answers


def _features(text: str) -> set[str]:
    found = set()
    for ch in text:
        if ch == " ":
            found.add("space")
        elif ch == "\n":
            found.add("newline")
        elif ord(ch) > 0xFFFF:
            found.add("emoji")
        elif 0x3040 <= ord(ch) <= 0x9FFF:
            found.add("cjk")
        elif unicodedata.decomposition(ch).split()[1:2] and ord(ch) < 0x250:
            found.add("accented")
    return found


def test_fixed_prompts_stream_exactly_for_every_client(triton_server: Any) -> None:
    answers = _check(triton_server, [Case(p) for p in DATA["prompts"]], "prompt set tests/serve/data")
    assert _features("".join(answers)) == {"space", "newline", "emoji", "cjk", "accented"}, answers


def test_random_prompts_stream_exactly_for_every_client(triton_server: Any) -> None:
    seed = int(os.environ.get("TRITON_LLM_TEST_SEED") or random.SystemRandom().randrange(2**32))
    cases = random_cases(seed, 5)
    _check(triton_server, cases, f"random prompts, seed {seed} (TRITON_LLM_TEST_SEED={seed} replays them)")
