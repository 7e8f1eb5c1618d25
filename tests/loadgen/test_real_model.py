"""``triton-llm bench`` on the demo deployment: synthetic prompts of exact length, the real ensemble."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from triton_llm.bench.prompts import parse_length, synthetic_prompts, synthetic_text, word_tokens
from triton_llm.cli import main

NEVER = 49151  # a SmolLM2 token id greedy decoding never reaches: every request makes max tokens


@pytest.fixture(scope="module")
def tokenizer(cpu_engine: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(cpu_engine.tokenizer_dir))


def test_synthetic_prompts_have_exact_token_counts(tokenizer: Any) -> None:
    rng = random.Random(5)
    words = word_tokens(tokenizer)
    for n in (1, 2, 7, 128, 500):
        text = synthetic_text(tokenizer, words, n, rng)
        assert len(tokenizer.encode(text, add_special_tokens=False)) == n
    prompts = synthetic_prompts(
        tokenizer,
        count=30,
        input_len=parse_length("uniform:20,40", flag="--input-tokens"),
        output_len=parse_length("normal:16,4", flag="--max-tokens"),
        seed=1,
    )
    assert all(len(tokenizer.encode(p.text, add_special_tokens=False)) == p.input_tokens for p in prompts)
    assert len({p.input_tokens for p in prompts}) > 5 and len({p.text for p in prompts}) == 30
    assert all(20 <= p.input_tokens <= 40 and p.max_tokens >= 1 for p in prompts)


def test_sweep_of_the_ensemble(triton_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The tokenizer comes from the server's preprocessing model; --end-id fixes the output length."""
    code = main(
        ["bench", "--url", triton_server.grpc_url, "--concurrency", "1,2", "--requests", "3",
         "--input-tokens", "24", "--max-tokens", "6", "--end-id", str(NEVER), "--num-prompts", "4",
         "--metrics-url", f"http://127.0.0.1:{triton_server.server.metrics_port}/metrics",
         "--out", str(tmp_path), "--slo", "ttft_p99=30s"]
    )  # fmt: skip
    assert code == 0
    run = json.loads((tmp_path / "bench.json").read_text())
    assert run["settings"]["tokenizer"] == str(triton_server.engine.tokenizer_dir)
    assert run["settings"]["model"] == "ensemble"
    for step in run["steps"]:
        assert step["summary"]["completed"] == 3
        assert all(r["input_tokens"] == 24 and r["output_tokens"] == 6 for r in step["requests"])
        models = step["summary"]["server"]["models"]
        assert models["ensemble"]["requests"] == 3 and models["tensorrt_llm"]["requests"] == 3
    out = capsys.readouterr().out
    assert "highest load that meets it: c=2" in out
