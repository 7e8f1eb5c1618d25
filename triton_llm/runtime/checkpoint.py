"""Read a TensorRT-LLM checkpoint (cpu backend layout) for one tensor-parallel rank.

Weight-only tensors (int8 ``[in, out]``, int4 packed ``[in, out / 2]``, plus
``per_channel_scale``) are dequantized to float32 ``[out, in]`` at load time; every other
tensor is upcast to float32, the compute dtype of this runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm._cpu_runtime import ARCHITECTURES
from triton_llm.errors import IncompatibleError, NotFoundError


@dataclass(frozen=True)
class ModelConfig:
    """The checkpoint facts the runtime needs."""

    architecture: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_size: int
    intermediate_size: int
    max_position_embeddings: int
    norm_epsilon: float
    rotary_base: float
    rotary_scaling: dict[str, Any] | None
    tp_size: int
    pp_size: int
    quant_algo: str | None
    dtype: str

    @property
    def heads_per_rank(self) -> int:
        return self.num_heads // self.tp_size

    @property
    def kv_heads_per_rank(self) -> int:
        """KV heads held by one rank; 1 when KV heads were replicated (tp > num_kv_heads)."""
        return max(self.num_kv_heads // self.tp_size, 1)

    @property
    def padded_vocab_size(self) -> int:
        return -(-self.vocab_size // self.tp_size) * self.tp_size


def read_checkpoint_config(checkpoint_dir: Path) -> ModelConfig:
    """Parse ``config.json`` of a converted checkpoint.

    Raises:
        NotFoundError: no config.json.
        IncompatibleError: architecture, pipeline parallelism or quantization this runtime lacks.
    """
    path = Path(checkpoint_dir) / "config.json"
    if not path.is_file():
        raise NotFoundError(
            f"{checkpoint_dir} is not a TensorRT-LLM checkpoint (no config.json)", path=str(path)
        )
    raw = json.loads(path.read_text())
    if "pretrained_config" in raw:  # an engine config.json: the checkpoint config is nested
        raw = raw["pretrained_config"]
    arch = raw.get("architecture")
    if arch not in ARCHITECTURES:
        raise IncompatibleError(
            f"{path}: architecture {arch!r} is not supported by the CPU runtime "
            f"(supported: {', '.join(ARCHITECTURES)})",
            path=str(path),
            field="architecture",
            value=arch,
        )
    mapping = raw.get("mapping", {})
    quant = raw.get("quantization", {}) or {}
    cfg = ModelConfig(
        architecture=arch,
        vocab_size=int(raw["vocab_size"]),
        hidden_size=int(raw["hidden_size"]),
        num_layers=int(raw["num_hidden_layers"]),
        num_heads=int(raw["num_attention_heads"]),
        num_kv_heads=int(raw.get("num_key_value_heads") or raw["num_attention_heads"]),
        head_size=int(raw.get("head_size") or int(raw["hidden_size"]) // int(raw["num_attention_heads"])),
        intermediate_size=int(raw["intermediate_size"]),
        max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
        norm_epsilon=float(raw.get("norm_epsilon", 1e-6)),
        rotary_base=float(raw.get("rotary_base", 10000.0)),
        rotary_scaling=raw.get("rotary_scaling"),
        tp_size=int(mapping.get("tp_size", 1)),
        pp_size=int(mapping.get("pp_size", 1)),
        quant_algo=quant.get("quant_algo"),
        dtype=str(raw.get("dtype", "float32")),
    )
    if cfg.pp_size != 1:
        raise IncompatibleError(
            f"{path}: pp_size={cfg.pp_size}; the CPU runtime has no pipeline parallelism (pp must be 1)",
            path=str(path),
            field="mapping.pp_size",
            value=cfg.pp_size,
        )
    if cfg.quant_algo not in (None, "W8A16", "W4A16"):
        raise IncompatibleError(
            f"{path}: quant_algo={cfg.quant_algo!r} needs TensorRT-LLM GPU kernels; the CPU runtime reads "
            "unquantized, W8A16 and W4A16 checkpoints",
            path=str(path),
            field="quantization.quant_algo",
            value=cfg.quant_algo,
        )
    return cfg


def dequantize(q: Any, scale: Any) -> Any:
    """Float32 ``[out, in]`` weight from int8 ``[in, out]`` or packed int4 ``[in, out / 2]``."""
    import torch

    if q.shape[-1] != scale.shape[-1]:  # int4: two values per byte, low nibble first
        b = q.view(torch.uint8)
        lo = (b & 0x0F).to(torch.int8)
        hi = (b >> 4).to(torch.int8)
        lo = torch.where(lo > 7, lo - 16, lo)
        hi = torch.where(hi > 7, hi - 16, hi)
        q = torch.stack([lo, hi], dim=-1).reshape(q.shape[0], -1)
    return (q.float() * scale.float()).t().contiguous()


def load_rank_weights(checkpoint_dir: Path, rank: int) -> dict[str, Any]:
    """All tensors of ``rank{rank}.safetensors`` as float32, weight-only ones dequantized.

    Raises:
        NotFoundError: the rank file is missing.
    """
    from safetensors import safe_open

    path = Path(checkpoint_dir) / f"rank{rank}.safetensors"
    if not path.is_file():
        raise NotFoundError(f"checkpoint rank file {path} is missing", path=str(path))
    out: dict[str, Any] = {}
    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
        scales = {n for n in names if n.endswith(".per_channel_scale")}
        for name in names:
            if name in scales:
                continue
            t = f.get_tensor(name)
            base = name.removesuffix(".weight")
            if base + ".per_channel_scale" in scales:
                out[name] = dequantize(t, f.get_tensor(base + ".per_channel_scale"))
            else:
                out[name] = t.float().contiguous()
    return out
