"""Hugging Face Llama folder -> TensorRT-LLM checkpoint (``config.json`` + ``rank{i}.safetensors``).

Tensor names and tensor-parallel sharding follow TensorRT-LLM 1.2's Llama converter
(``tensorrt_llm/models/llama/convert.py``):

- ``transformer.vocab_embedding.weight``: full table on every rank (no parallel embedding).
- ``transformer.layers.{l}.attention.qkv.weight``: per rank ``cat(q_r, k_r, v_r)`` rows
  (column-parallel); with ``tp > num_key_value_heads`` each KV head is replicated
  ``tp / num_key_value_heads`` times first, as TensorRT-LLM's ``dup_kv_weight`` does.
- ``.attention.dense.weight``: row-parallel (split on the input dim).
- ``.mlp.fc.weight`` = HF ``gate_proj`` (goes through SiLU), ``.mlp.gate.weight`` = HF
  ``up_proj`` (the multiplier), both column-parallel; ``.mlp.proj.weight`` = ``down_proj``,
  row-parallel.
- ``lm_head.weight``: vocab-parallel, vocab padded with zero rows to a multiple of tp.

Weight-only quantization (``W8A16`` / ``W4A16``): each linear weight of a layer is stored
transposed, ``[in, out]``, as int8, with symmetric per-output-channel scales in
``<name>.per_channel_scale`` (shape ``[out]``, the model dtype): ``w ≈ q * scale``. int4
packs two values per int8 byte along the last axis (``[in, out / 2]``; even column in the
low nibble, odd column in the high nibble). Names, shapes and dtypes match TensorRT-LLM;
the byte order does not: TensorRT-LLM's ``symmetric_quantize_last_axis_of_batched_matrix``
additionally permutes/interleaves rows for its CUDA GEMM kernels ("preprocessed"), so these
rank files are for the CPU runtime; a GPU build must convert with TensorRT-LLM.

Memory: one rank is built at a time from tensors read one by one (``safe_open``), so the
peak is about one rank's shard plus one source tensor. Output bytes are deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from triton_llm._progress import progress
from triton_llm.engine.model_info import ModelInfo, tensor_parallel_problems
from triton_llm.errors import BuildError, NotFoundError, RecipeError, RecipeErrors

CONVERTER_VERSION = "1"
QUANT_ALGOS = {"none": None, "int8_wo": "W8A16", "int4_wo": "W4A16"}
_LINEARS = ("attention.qkv", "attention.dense", "mlp.fc", "mlp.gate", "mlp.proj")


def pad_vocab_size(vocab_size: int, tp: int) -> int:
    """Vocab size rounded up to a multiple of ``tp`` (TensorRT-LLM's ``pad_vocab_size``)."""
    return -(-vocab_size // tp) * tp


def checkpoint_config(
    hf_config: dict[str, Any], *, dtype: str, quant_format: str, tp: int, pp: int = 1
) -> dict[str, Any]:
    """The TensorRT-LLM ``PretrainedConfig`` mapping for a Hugging Face Llama config.

    Raises:
        RecipeError: unsupported quantization format.
    """
    if quant_format not in QUANT_ALGOS:
        raise RecipeError(
            f"quantization.format={quant_format!r}: the cpu backend supports {sorted(QUANT_ALGOS)}",
            field="quantization.format",
            value=quant_format,
        )
    heads = int(hf_config["num_attention_heads"])
    hidden = int(hf_config["hidden_size"])
    # transformers >= 5 nests rope settings in "rope_parameters"; older configs use rope_theta/rope_scaling.
    rope = dict(hf_config.get("rope_parameters") or {})
    rope_theta = float(hf_config.get("rope_theta") or rope.pop("rope_theta", 10000.0))
    rope_scaling = hf_config.get("rope_scaling")
    if rope_scaling is None and rope.get("rope_type", "default") != "default":
        rope_scaling = {("type" if k == "rope_type" else k): v for k, v in rope.items()}
    archs = hf_config.get("architectures") or ["LlamaForCausalLM"]
    return {
        "architecture": str(archs[0]),
        "dtype": dtype,
        "logits_dtype": "float32",
        "vocab_size": int(hf_config["vocab_size"]),
        "hidden_size": hidden,
        "num_hidden_layers": int(hf_config["num_hidden_layers"]),
        "num_attention_heads": heads,
        "num_key_value_heads": int(hf_config.get("num_key_value_heads") or heads),
        "head_size": int(hf_config.get("head_dim") or hidden // heads),
        "intermediate_size": int(hf_config["intermediate_size"]),
        "max_position_embeddings": int(hf_config["max_position_embeddings"]),
        "hidden_act": str(hf_config.get("hidden_act", "silu")),
        "norm_epsilon": float(hf_config.get("rms_norm_eps", 1e-6)),
        "position_embedding_type": "rope_gpt_neox",
        "rotary_base": rope_theta,
        "rotary_scaling": rope_scaling,
        "attn_bias": bool(hf_config.get("attention_bias", False)),
        "mlp_bias": bool(hf_config.get("mlp_bias", False)),
        "tie_word_embeddings": bool(hf_config.get("tie_word_embeddings", False)),
        "use_parallel_embedding": False,
        "embedding_sharding_dim": 0,
        "mapping": {"world_size": tp * pp, "tp_size": tp, "pp_size": pp, "cp_size": 1},
        "quantization": {"quant_algo": QUANT_ALGOS[quant_format], "kv_cache_quant_algo": None},
        "converter": {"name": "triton_llm.cpu", "version": CONVERTER_VERSION},
    }


class _HfTensors:
    """Reads tensors one at a time from a Hugging Face folder's safetensors files."""

    def __init__(self, model_dir: Path, stack: ExitStack) -> None:
        from safetensors import safe_open

        files = sorted(model_dir.glob("*.safetensors"))
        if not files:
            raise NotFoundError(
                f"{model_dir} has no *.safetensors weights",
                path=str(model_dir),
                hint="the cpu backend reads safetensors checkpoints only",
            )
        self._where: dict[str, Any] = {}
        for f in files:
            handle = stack.enter_context(safe_open(str(f), framework="pt"))
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                self._where[key] = handle

    def has(self, name: str) -> bool:
        return name in self._where

    def get(self, name: str) -> Any:
        if name not in self._where:
            raise BuildError(f"checkpoint tensor {name!r} is missing", field=name)
        return self._where[name].get_tensor(name).float()


def _split(t: Any, tp: int, rank: int, dim: int) -> Any:
    if t.shape[dim] % tp:
        raise BuildError(f"cannot split a dim of {t.shape[dim]} into {tp} equal tensor-parallel parts")
    size = t.shape[dim] // tp
    return t.narrow(dim, rank * size, size).contiguous()


def _dup_kv(w: Any, kv_heads: int, tp: int, head_size: int) -> Any:
    """Replicate each KV head ``tp // kv_heads`` times (rows grouped per head)."""
    reps = tp // kv_heads
    w = w.reshape(kv_heads, head_size, -1)
    return w.repeat_interleave(reps, dim=0).reshape(kv_heads * reps * head_size, -1)


def quantize_weight_only(weight: Any, *, bits: int) -> tuple[Any, Any]:
    """Symmetric per-output-channel quantization of a ``[out, in]`` weight.

    Returns:
        ``(q, scale)``: ``q`` int8 ``[in, out]`` (int4: ``[in, out / 2]`` packed), ``scale`` ``[out]``.
    """
    import torch

    qmax = 127.0 if bits == 8 else 7.0
    w = weight.float().t().contiguous()  # [in, out]
    amax = w.abs().amax(dim=0)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    q = torch.round(w / scale).clamp(-qmax - 1, qmax).to(torch.int8)
    if bits == 4:
        if q.shape[1] % 2:
            raise BuildError(f"int4 packing needs an even output dim, got {q.shape[1]}")
        lo = q[:, 0::2].to(torch.uint8) & 0x0F
        hi = (q[:, 1::2].to(torch.uint8) & 0x0F) << 4
        q = (lo | hi).view(torch.int8).contiguous()
    return q, scale


def _rank_tensors(src: _HfTensors, cfg: dict[str, Any], tp: int, rank: int) -> Iterator[tuple[str, Any]]:
    """Yield (name, float tensor) for one rank, in a fixed order."""
    import torch

    kv_heads, hs = cfg["num_key_value_heads"], cfg["head_size"]
    embed = src.get("model.embed_tokens.weight")
    yield "transformer.vocab_embedding.weight", embed
    for layer in range(cfg["num_hidden_layers"]):
        hf = f"model.layers.{layer}."
        out = f"transformer.layers.{layer}."
        yield out + "input_layernorm.weight", src.get(hf + "input_layernorm.weight")
        q = src.get(hf + "self_attn.q_proj.weight")
        k = src.get(hf + "self_attn.k_proj.weight")
        v = src.get(hf + "self_attn.v_proj.weight")
        if kv_heads < tp:
            k, v = _dup_kv(k, kv_heads, tp, hs), _dup_kv(v, kv_heads, tp, hs)
        qkv = torch.cat([_split(q, tp, rank, 0), _split(k, tp, rank, 0), _split(v, tp, rank, 0)])
        del q, k, v
        yield out + "attention.qkv.weight", qkv
        yield out + "attention.dense.weight", _split(src.get(hf + "self_attn.o_proj.weight"), tp, rank, 1)
        yield out + "post_layernorm.weight", src.get(hf + "post_attention_layernorm.weight")
        yield out + "mlp.fc.weight", _split(src.get(hf + "mlp.gate_proj.weight"), tp, rank, 0)
        yield out + "mlp.gate.weight", _split(src.get(hf + "mlp.up_proj.weight"), tp, rank, 0)
        yield out + "mlp.proj.weight", _split(src.get(hf + "mlp.down_proj.weight"), tp, rank, 1)
    yield "transformer.ln_f.weight", src.get("model.norm.weight")
    head = src.get("lm_head.weight") if src.has("lm_head.weight") else embed.clone()
    padded = pad_vocab_size(cfg["vocab_size"], tp)
    if padded != head.shape[0]:
        head = torch.nn.functional.pad(head, (0, 0, 0, padded - head.shape[0]))
    yield "lm_head.weight", _split(head, tp, rank, 0)


def _check_features(cfg: dict[str, Any], hf_config: dict[str, Any], *, source: str) -> None:
    """Reject model features this converter would otherwise drop silently.

    Raises:
        BuildError: biases, a non-SiLU activation, or sliding-window attention.
    """
    problems = []
    if cfg["attn_bias"] or cfg["mlp_bias"]:
        problems.append("attention_bias/mlp_bias (linear biases are not converted)")
    if cfg["hidden_act"] != "silu":
        problems.append(f"hidden_act={cfg['hidden_act']!r} (only silu)")
    window = hf_config.get("sliding_window")
    if window is not None and int(window) < cfg["max_position_embeddings"]:
        problems.append(f"sliding_window={window} (the CPU runtime attends to the full context)")
    if problems:
        raise BuildError(
            f"{source}: the cpu backend cannot convert this model: {'; '.join(problems)}",
            path=source,
            hint="use the trtllm backend on a GPU",
        )


def convert_checkpoint(
    *,
    model_dir: str,
    out_dir: str,
    dtype: str,
    quant_format: str = "none",
    tp: int = 1,
    pp: int = 1,
) -> None:
    """Convert a Hugging Face Llama folder into a TensorRT-LLM checkpoint in ``out_dir``.

    Args:
        model_dir: Hugging Face folder (config.json + *.safetensors).
        out_dir: destination; gets config.json and rank{i}.safetensors.
        dtype: float32 | bfloat16 | float16 for unquantized tensors and scales.
        quant_format: none | int8_wo | int4_wo.
        tp: tensor-parallel size; pp: pipeline-parallel size (must be 1 here).

    Raises:
        RecipeError: unsupported format, dtype, pp or head split.
        NotFoundError / BuildError: missing config or tensors.
    """
    import torch
    from safetensors.torch import save_file

    src_dir, dst = Path(model_dir), Path(out_dir)
    hf_config_path = src_dir / "config.json"
    if not hf_config_path.is_file():
        raise NotFoundError(f"{src_dir} has no config.json", path=str(hf_config_path))
    hf_config = json.loads(hf_config_path.read_text())
    cfg = checkpoint_config(hf_config, dtype=dtype, quant_format=quant_format, tp=tp)
    _check_features(cfg, hf_config, source=str(hf_config_path))
    if pp != 1:
        raise RecipeError(
            f"parallelism.pp={pp}: the cpu backend supports pp=1 only", field="parallelism.pp", value=pp
        )
    split_problems = tensor_parallel_problems(
        ModelInfo.from_hf_config(hf_config, source=str(hf_config_path)), tp
    )
    if split_problems:
        raise RecipeErrors(split_problems)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    bits = {"W8A16": 8, "W4A16": 4}.get(cfg["quantization"]["quant_algo"] or "")
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    n_tensors = 3 + 7 * cfg["num_hidden_layers"]
    with ExitStack() as stack:
        src = _HfTensors(src_dir, stack)
        for rank in range(tp):
            tensors: dict[str, Any] = {}
            with progress(f"convert rank {rank}/{tp}", total=n_tensors, unit="tensors") as bar:
                for name, t in _rank_tensors(src, cfg, tp, rank):
                    base = name.removesuffix(".weight")
                    if bits and base.split(".", 3)[-1] in _LINEARS and base.startswith("transformer.layers."):
                        q, scale = quantize_weight_only(t, bits=bits)
                        tensors[name] = q
                        tensors[base + ".per_channel_scale"] = scale.to(torch_dtype).contiguous()
                    else:
                        tensors[name] = t.to(torch_dtype).contiguous()
                    bar.update(1)
            tmp = dst / f"rank{rank}.safetensors.incomplete"
            save_file(tensors, str(tmp), metadata={"format": "pt"})
            tmp.replace(dst / f"rank{rank}.safetensors")
            del tensors


def write_engine_config(
    *,
    checkpoint_dir: str,
    out_dir: str,
    build_config: dict[str, Any],
    checkpoint_key: str,
    runtime: dict[str, Any],
) -> None:
    """Write the cpu engine's ``config.json`` (no weights: the runtime reads the checkpoint).

    Raises:
        NotFoundError: the checkpoint has no config.json.
    """
    cfg_path = Path(checkpoint_dir) / "config.json"
    if not cfg_path.is_file():
        raise NotFoundError(
            f"{checkpoint_dir} is not a converted checkpoint (no config.json)", path=str(cfg_path)
        )
    engine = {
        "version": CONVERTER_VERSION,
        "backend": "cpu",
        "checkpoint_key": checkpoint_key,
        "pretrained_config": json.loads(cfg_path.read_text()),
        "build_config": build_config,
        "runtime": runtime,
    }
    dst = Path(out_dir)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.json").write_text(json.dumps(engine, indent=2, sort_keys=True) + "\n")
