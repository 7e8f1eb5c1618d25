"""Session-wide model fixtures for the runtime tests (the model loads once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime._models import converted_dir, hf_model_dir

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain gravity to a child in two sentences.",
    "List three prime numbers and say why they are prime.",
    "Hello! Who are you?",
    "Give me a recipe for pancakes.",
]
THREADS = 1  # the CI box has 2 cores shared with other tests; one intra-op thread avoids OpenMP stalls


@pytest.fixture(scope="session")
def model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="session")
def hf_dir(model_base: Path) -> Path:
    return hf_model_dir(model_base)


@pytest.fixture(scope="session")
def ckpt_f32(model_base: Path) -> Path:
    return converted_dir(model_base)


@pytest.fixture(scope="session")
def prompt_ids(hf_dir: Path) -> list[list[int]]:
    """The prompts with the tokenizer's chat template applied."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    out = []
    for p in PROMPTS:
        enc = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True)
        ids = enc["input_ids"] if hasattr(enc, "keys") else enc
        out.append([int(t) for t in ids])
    return out


@pytest.fixture(scope="session")
def generator(ckpt_f32: Path) -> Iterator[object]:
    """One float32 tp=1 generator shared by the runtime tests (each test leaves it idle)."""
    from triton_llm.runtime import Generator

    gen = Generator(ckpt_f32, max_batch_size=4, max_input_len=256, max_seq_len=384, threads=THREADS)
    yield gen
    gen.close()


@pytest.fixture
def idle_generator(generator: object) -> Iterator[object]:
    """The shared generator, checked idle before and after the test."""
    assert not generator.has_work()  # type: ignore[attr-defined]
    yield generator
    while generator.has_work():  # type: ignore[attr-defined]
        generator.step()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def solo_outputs(generator: object, prompt_ids: list[list[int]]) -> dict[int, list[int]]:
    """Greedy 24-token output of each prompt generated alone (the reference for batching tests)."""
    from triton_llm.runtime import GenerationRequest, generate

    return {
        i: generate(generator, [GenerationRequest(f"solo{i}", ids, 24)])[f"solo{i}"]  # type: ignore[arg-type]
        for i, ids in enumerate(prompt_ids[:3])
    }
