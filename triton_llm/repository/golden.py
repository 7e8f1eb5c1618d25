"""The golden answer: what an engine generates for a fixed prompt, recorded when it is built.

A cpu engine's build ends with :func:`write_golden` (a step of the engine stage, so the file is
part of the store entry and verified by its sha256 like every other file). ``repo update``
sends the same prompt through the new version's ``preprocessing`` and ``tensorrt_llm`` and
refuses to promote it unless the generated ids are exactly these (greedy decoding is
deterministic: the runtime matches transformers token for token, tests/runtime).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN_FILE = "golden.json"
SMOKE_PROMPT = "What is the capital of France?"
SMOKE_TOKENS = 16


def golden_answer(
    checkpoint_dir: Path,
    *,
    tokenizer_dir: Path,
    chat_template: bool,
    max_input_len: int,
    max_seq_len: int,
    prompt: str = SMOKE_PROMPT,
    max_tokens: int = SMOKE_TOKENS,
) -> dict[str, Any]:
    """Greedy ids for ``prompt`` from the CPU runtime, prepared exactly as ``preprocessing`` does.

    Returns:
        ``{"prompt", "max_tokens", "chat_template", "input_ids", "output_ids"}``.
    """
    from triton_llm.repository.preprocess import Preprocessor, load_tokenizer
    from triton_llm.runtime import GenerationRequest, Generator, generate

    pre = Preprocessor(
        load_tokenizer(tokenizer_dir),
        max_input_len=max_input_len,
        max_seq_len=max_seq_len,
        chat_template=chat_template,
        add_special_tokens=True,
    )
    prepared = pre.prepare(prompt, max_tokens=max_tokens, apply_chat_template=chat_template)
    input_ids = [int(x) for x in prepared.input_ids]
    generator = Generator(
        checkpoint_dir, max_batch_size=1, max_input_len=max_input_len, max_seq_len=max_seq_len
    )
    try:
        request = GenerationRequest(
            "golden", input_ids, prepared.output_len, end_id=prepared.end_id, pad_id=prepared.pad_id
        )
        output_ids = generate(generator, [request])["golden"]
    finally:
        generator.close()
    return {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "chat_template": chat_template,
        "input_ids": input_ids,
        "output_ids": output_ids,
    }


def write_golden(
    *,
    checkpoint_dir: str,
    out_dir: str,
    chat_template: bool,
    max_input_len: int,
    max_seq_len: int,
    world_size: int,
) -> None:
    """Write ``golden.json`` into an engine directory (a build step of the cpu backend).

    A tp*pp > 1 checkpoint needs its whole MPI group to generate; its golden file records why
    there is no answer, and ``repo update`` refuses such an engine (it cannot hot-swap anyway).
    """
    path = Path(out_dir) / GOLDEN_FILE
    if world_size > 1:
        record: dict[str, Any] = {
            "prompt": SMOKE_PROMPT,
            "skipped": f"world size {world_size}: a golden answer is generated for single-rank engines only",
        }
    else:
        record = golden_answer(
            Path(checkpoint_dir),
            tokenizer_dir=Path(checkpoint_dir) / "tokenizer",
            chat_template=chat_template,
            max_input_len=max_input_len,
            max_seq_len=max_seq_len,
        )
    path.write_text(json.dumps(record, indent=1) + "\n")


def read_golden(engine_dir: Path) -> dict[str, Any] | None:
    """The engine's golden answer, or None when it has none (built before golden answers, or skipped)."""
    path = engine_dir / GOLDEN_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("output_ids") is not None else None
