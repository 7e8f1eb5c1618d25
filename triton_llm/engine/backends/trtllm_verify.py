"""Run-time check of a TensorRT-LLM checkpoint written by quantize.py or convert_checkpoint.py.

The last step of a ``trtllm`` checkpoint plan: ``config.json`` must carry the keys 1.2.1
writes (``architecture``, ``dtype``, shapes, ``mapping``, ``quantization``), the mapping must
match the recipe's tp/pp, the quantization must match the requested format and KV cache,
and there must be one ``rank{i}.safetensors`` per rank. A checkpoint that is off fails the
build here instead of producing a wrong engine later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from triton_llm.engine.backends.trtllm_facts import load_facts
from triton_llm.errors import BuildError

KV_QUANT_ALGO = {"auto": None, "fp8": "FP8", "int8": "INT8"}


def checkpoint_problems(
    config: dict[str, Any],
    *,
    rank_files: set[str],
    tp: int,
    pp: int,
    dtype: str,
    quant_algo: str | None,
    kv_cache_dtype: str,
) -> list[str]:
    """What is wrong with a checkpoint's ``config.json`` and rank files (empty if nothing).

    ``quant_algo`` is the exact expected value, or ``"any"`` for "some 1.2.1 QuantAlgo".
    """
    facts = load_facts()["checkpoint_config"]
    problems = [f"config.json has no {k!r}" for k in facts["keys"] if k in _MANDATORY and k not in config]
    mapping = config.get("mapping") or {}
    for key, want in (("tp_size", tp), ("pp_size", pp)):
        if mapping.get(key, 1) != want:
            problems.append(f"mapping.{key} is {mapping.get(key, 1)}, the recipe asks for {want}")
    if config.get("dtype") not in (None, dtype):
        problems.append(f"dtype is {config.get('dtype')!r}, the recipe asks for {dtype!r}")
    quant = config.get("quantization") or {}
    algo = quant.get("quant_algo")
    if quant_algo == "any":
        if algo not in facts["quant_algo"]:
            problems.append(f"quantization.quant_algo is {algo!r}, not a TensorRT-LLM 1.2.1 QuantAlgo")
    elif algo != quant_algo:
        problems.append(f"quantization.quant_algo is {algo!r}, expected {quant_algo!r}")
    kv = quant.get("kv_cache_quant_algo")
    if kv != KV_QUANT_ALGO[kv_cache_dtype]:
        problems.append(
            f"quantization.kv_cache_quant_algo is {kv!r}, expected {KV_QUANT_ALGO[kv_cache_dtype]!r}"
        )
    wanted = {facts["rank_file"].format(rank=r) for r in range(tp * pp)}
    missing = sorted(wanted - rank_files)
    if missing:
        problems.append(f"missing rank weight file(s): {', '.join(missing)}")
    return problems


_MANDATORY = (
    "architecture",
    "dtype",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
)


def verify_checkpoint(
    *,
    checkpoint_dir: str,
    tp: int,
    pp: int,
    dtype: str,
    quant_algo: str | None,
    kv_cache_dtype: str,
) -> None:
    """Check a checkpoint directory (see :func:`checkpoint_problems`).

    Raises:
        BuildError: no config.json, or any problem; lists them all.
    """
    root = Path(checkpoint_dir)
    path = root / "config.json"
    if not path.is_file():
        raise BuildError(f"TensorRT-LLM checkpoint {root} has no config.json", path=str(path))
    config = json.loads(path.read_text())
    rank_files = {p.name for p in root.glob("rank*.safetensors")}
    problems = checkpoint_problems(
        config,
        rank_files=rank_files,
        tp=tp,
        pp=pp,
        dtype=dtype,
        quant_algo=quant_algo,
        kv_cache_dtype=kv_cache_dtype,
    )
    if problems:
        raise BuildError(
            f"TensorRT-LLM checkpoint {root} does not match the recipe: " + "; ".join(problems),
            path=str(root),
        )
