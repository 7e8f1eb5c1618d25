"""The cpu build backend: capability checks, pure plans, and the real conversion of the default model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tests.runtime._models import converted_dir, hf_model_dir
from triton_llm.engine.backends.base import Call, run_actions
from triton_llm.engine.backends.cpu import CpuBackend, write_golden
from triton_llm.engine.backends.cpu_convert import (
    convert_checkpoint,
    quantize_weight_only,
    write_engine_config,
)
from triton_llm.engine.model_info import ModelInfo, model_info_from_dir
from triton_llm.engine.recipe import load_recipe, recipe_from_mapping
from triton_llm.engine.steps import copy_tokenizer
from triton_llm.runtime.checkpoint import dequantize, load_rank_weights, read_checkpoint_config

CONFIG_KEYS = {
    "architecture", "dtype", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_size", "intermediate_size", "max_position_embeddings", "hidden_act",
    "norm_epsilon", "position_embedding_type", "rotary_base", "rotary_scaling", "mapping", "quantization",
}  # fmt: skip
SMOL = ModelInfo("LlamaForCausalLM", 9, 3, 30, 576, 1536, 49152, 8192, 64)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp()


def _recipe(**over: object):
    data = {"name": "t", "model": {"builtin": "smollm2-135m-instruct"}, "dtype": "float32"}
    for key, value in over.items():
        node = data
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})  # type: ignore[assignment]
        node[leaf] = value  # type: ignore[index]
    return recipe_from_mapping(data)


def test_toolchain_versions_are_only_output_relevant() -> None:
    versions = CpuBackend().toolchain_versions()
    assert set(versions) == {"cpu_backend", "torch"}
    assert versions["torch"] == torch.__version__.split("+")[0]


def test_default_recipes_pass_the_checks() -> None:
    for name in ("smollm2-135m", "smollm2-135m-int8wo"):
        assert CpuBackend().check(load_recipe(name), SMOL, []) == []
    assert CpuBackend().check(_recipe(parallelism__tp=3, quantization__format="int4_wo"), SMOL, []) == []


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        (
            {"quantization__format": "fp8"},
            "quantization.format",
            ["'fp8'", "trtllm", "none, int8_wo, int4_wo"],
        ),
        ({"quantization__format": "int4_awq"}, "quantization.format", ["'int4_awq'", "trtllm"]),
        ({"quantization__kv_cache_dtype": "fp8"}, "quantization.kv_cache_dtype", ["'fp8'", "trtllm"]),
        ({"parallelism__pp": 2}, "parallelism.pp", ["pp=2", "pipeline"]),
        ({"build__max_beam_width": 4}, "build.max_beam_width", ["beam"]),
    ],
)
def test_check_rejects_with_the_field_value_and_rule(over, field, words) -> None:
    problems = CpuBackend().check(_recipe(**over), SMOL, [])
    assert [p.field for p in problems] == [field]
    for w in words:
        assert w in str(problems[0])


def test_check_rejects_other_architectures() -> None:
    info = ModelInfo("GPT2LMHeadModel", 12, 12, 12, 768, 3072, 50257, 1024, 64)
    (problem,) = CpuBackend().check(_recipe(), info, [])
    assert "GPT2LMHeadModel" in str(problem) and "Llama" in str(problem)


def test_plans_are_pure_json_and_importable(tmp_path: Path) -> None:
    recipe = _recipe(parallelism__tp=3, quantization__format="int8_wo")
    backend = CpuBackend()
    ck = backend.plan_checkpoint(recipe, model_dir=tmp_path / "hf", out_dir=tmp_path / "ckpt")
    en = backend.plan_engine(
        recipe, checkpoint_dir=tmp_path / "ckpt", out_dir=tmp_path / "eng", gpu=None, checkpoint_key="k1"
    )
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "eng").exists()
    assert [a.func for a in ck] == [convert_checkpoint]
    assert [a.func for a in en] == [write_engine_config, write_golden]
    for action in [*ck, *en]:
        assert isinstance(action, Call)
        json.dumps(dict(action.kwargs))
    assert ck[0].kwargs["tp"] == 3 and ck[0].kwargs["quant_format"] == "int8_wo"
    assert en[0].kwargs["checkpoint_key"] == "k1"


def _names_and_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    with safe_open(str(path), framework="pt") as f:
        return {n: (tuple(f.get_slice(n).get_shape()), f.get_tensor(n).dtype) for n in f.keys()}  # noqa: SIM118


@pytest.mark.parametrize("tp", [1, 3])
def test_conversion_layout_matches_tensorrt_llm(base: Path, tp: int) -> None:
    ckpt = converted_dir(base, tp=tp)
    cfg = json.loads((ckpt / "config.json").read_text())
    assert set(cfg) >= CONFIG_KEYS
    assert cfg["mapping"] == {"world_size": tp, "tp_size": tp, "pp_size": 1, "cp_size": 1}
    assert cfg["quantization"] == {"quant_algo": None, "kv_cache_quant_algo": None}
    assert cfg["position_embedding_type"] == "rope_gpt_neox" and cfg["head_size"] == 64
    assert sorted(p.name for p in ckpt.glob("rank*.safetensors")) == [
        f"rank{r}.safetensors" for r in range(tp)
    ]
    h, inter, v, d = 576, 1536, 49152, 64
    qkv_rows = (9 + 3 + 3) * d // tp
    expected = {
        "transformer.vocab_embedding.weight": (v, h),
        "transformer.ln_f.weight": (h,),
        "lm_head.weight": (v // tp, h),
    }
    for layer in range(30):
        p = f"transformer.layers.{layer}."
        expected |= {
            p + "input_layernorm.weight": (h,),
            p + "attention.qkv.weight": (qkv_rows, h),
            p + "attention.dense.weight": (h, h // tp),
            p + "post_layernorm.weight": (h,),
            p + "mlp.fc.weight": (inter // tp, h),
            p + "mlp.gate.weight": (inter // tp, h),
            p + "mlp.proj.weight": (h, inter // tp),
        }
    for r in range(tp):
        found = _names_and_shapes(ckpt / f"rank{r}.safetensors")
        assert {n: s for n, (s, _) in found.items()} == expected
        assert {dt for _, dt in found.values()} == {torch.float32}


def test_tp3_shards_reassemble_the_hf_weights(base: Path) -> None:
    """q/k/v, gate_proj -> mlp.fc, up_proj -> mlp.gate and the row-parallel splits, per TensorRT-LLM."""
    hf = hf_model_dir(base)
    with safe_open(str(hf / "model.safetensors"), framework="pt") as f:
        src = {n: f.get_tensor(n) for n in f.keys() if n.startswith("model.layers.7.")}  # noqa: SIM118
    ranks = [load_rank_weights(converted_dir(base, tp=3), r) for r in range(3)]
    p, q = "transformer.layers.7.", "model.layers.7."
    qkv = [w[p + "attention.qkv.weight"] for w in ranks]
    assert torch.equal(torch.cat([t[:192] for t in qkv]), src[q + "self_attn.q_proj.weight"])
    assert torch.equal(torch.cat([t[192:256] for t in qkv]), src[q + "self_attn.k_proj.weight"])
    assert torch.equal(torch.cat([t[256:] for t in qkv]), src[q + "self_attn.v_proj.weight"])
    assert torch.equal(torch.cat([w[p + "mlp.fc.weight"] for w in ranks]), src[q + "mlp.gate_proj.weight"])
    assert torch.equal(torch.cat([w[p + "mlp.gate.weight"] for w in ranks]), src[q + "mlp.up_proj.weight"])
    cat1 = torch.cat([w[p + "mlp.proj.weight"] for w in ranks], dim=1)
    assert torch.equal(cat1, src[q + "mlp.down_proj.weight"])
    dense = torch.cat([w[p + "attention.dense.weight"] for w in ranks], dim=1)
    assert torch.equal(dense, src[q + "self_attn.o_proj.weight"])


@pytest.mark.parametrize(("quant", "algo", "bits"), [("int8_wo", "W8A16", 8), ("int4_wo", "W4A16", 4)])
def test_weight_only_layout_and_round_trip(base: Path, quant: str, algo: str, bits: int) -> None:
    ckpt = converted_dir(base, quant=quant)
    assert read_checkpoint_config(ckpt).quant_algo == algo
    found = _names_and_shapes(ckpt / "rank0.safetensors")
    w, s = "transformer.layers.0.mlp.fc.weight", "transformer.layers.0.mlp.fc.per_channel_scale"
    packed = 1536 if bits == 8 else 768
    assert found[w] == ((576, packed), torch.int8)
    assert found[s] == ((1536,), torch.float32)
    assert found["lm_head.weight"][1] == torch.float32  # lm_head and embedding stay unquantized
    weight = torch.randn(96, 40) * torch.linspace(0.1, 3, 96)[:, None]
    q, scale = quantize_weight_only(weight, bits=bits)
    back = dequantize(q, scale)
    assert back.shape == weight.shape
    assert bool(((back - weight).abs() <= scale[:, None] / 2 + 1e-6).all())


def test_conversion_is_deterministic(base: Path, tmp_path: Path) -> None:
    from triton_llm.engine.backends.cpu_convert import convert_checkpoint

    a = converted_dir(base, quant="int8_wo", tp=3)
    convert_checkpoint(model_dir=str(hf_model_dir(base)), out_dir=str(tmp_path), dtype="float32",
                       quant_format="int8_wo", tp=3)  # fmt: skip
    for name in ["config.json", "rank0.safetensors", "rank2.safetensors"]:
        assert (
            hashlib.sha256((a / name).read_bytes()).digest()
            == hashlib.sha256((tmp_path / name).read_bytes()).digest()
        )


def test_run_plans_end_to_end_bf16(base: Path, tmp_path: Path) -> None:
    """plan_checkpoint + plan_engine executed by run_actions: bf16 rank file, engine config, loadable."""
    hf = hf_model_dir(base)
    recipe = _recipe(
        dtype="bfloat16", build__max_batch_size=2, build__max_input_len=64, build__max_seq_len=128
    )
    assert CpuBackend().check(recipe, model_info_from_dir(hf), []) == []
    backend = CpuBackend()
    run_actions(backend.plan_checkpoint(recipe, model_dir=hf, out_dir=tmp_path / "ckpt"), environ={})
    copy_tokenizer(hf, tmp_path / "ckpt" / "tokenizer")  # the pipeline's step between the two stages
    run_actions(
        backend.plan_engine(
            recipe, checkpoint_dir=tmp_path / "ckpt", out_dir=tmp_path / "eng", gpu=None, checkpoint_key="abc"
        ),
        environ={},
    )
    assert _names_and_shapes(tmp_path / "ckpt" / "rank0.safetensors")["lm_head.weight"][1] == torch.bfloat16
    engine = json.loads((tmp_path / "eng" / "config.json").read_text())
    assert engine["backend"] == "cpu" and engine["checkpoint_key"] == "abc"
    assert engine["pretrained_config"]["dtype"] == "bfloat16"
    assert engine["build_config"]["max_batch_size"] == 2 and engine["build_config"]["max_seq_len"] == 128
    assert not list((tmp_path / "eng").glob("*.safetensors"))
    # the engine stage records the golden answer `repo update` gates on: greedy ids of the fixed prompt
    golden = json.loads((tmp_path / "eng" / "golden.json").read_text())
    assert golden["prompt"] and golden["chat_template"] is True and len(golden["input_ids"]) > 5
    assert 0 < len(golden["output_ids"]) <= golden["max_tokens"]
    assert read_checkpoint_config(tmp_path / "eng").num_layers == 30
    # the bf16 checkpoint serves: same next token as float32, logits within 10% of their range
    from triton_llm.runtime import Generator

    prompt = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 2, 198, 1, 4093, 198, 19556, 17]
    logits = [
        Generator(ckpt, max_batch_size=1, max_input_len=64, max_seq_len=128, threads=1).prompt_logits(prompt)
        for ckpt in (tmp_path / "ckpt", converted_dir(base))
    ]
    assert int(logits[0].argmax()) == int(logits[1].argmax())
    assert float((logits[0] - logits[1]).abs().max() / logits[1].abs().max()) <= 0.10


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"attention_bias": True}, ["attention_bias"]),
        ({"hidden_act": "gelu"}, ["hidden_act='gelu'"]),
        ({"sliding_window": 4096, "max_position_embeddings": 32768}, ["sliding_window=4096"]),
    ],
)
def test_conversion_refuses_features_it_would_drop(tmp_path: Path, change: dict, words: list[str]) -> None:
    from triton_llm.engine.backends.cpu_convert import convert_checkpoint
    from triton_llm.errors import BuildError

    cfg = {
        "architectures": ["MistralForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 16,
        "max_position_embeddings": 256, **change,
    }  # fmt: skip
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BuildError, match="cannot convert") as info:
        convert_checkpoint(model_dir=str(tmp_path / "hf"), out_dir=str(tmp_path / "out"), dtype="float32")
    for w in words:
        assert w in str(info.value)
    assert not (tmp_path / "out").exists()
