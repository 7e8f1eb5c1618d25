"""Plan-time validation: every bad recipe is rejected before any download, naming field, value and rule."""

from __future__ import annotations

import pytest

from triton_llm.engine.backends.cpu import CpuBackend
from triton_llm.engine.backends.trtllm import TrtllmBackend
from triton_llm.engine.fetch import builtin_gguf, known_model_info
from triton_llm.engine.model_info import ModelInfo, gguf_model_info
from triton_llm.engine.recipe import load_recipe
from triton_llm.engine.validate import validate
from triton_llm.errors import RecipeErrors


@pytest.fixture(scope="module")
def smollm2() -> ModelInfo:
    return gguf_model_info(builtin_gguf("smollm2-135m-instruct"))


def llama(size: str) -> ModelInfo:
    info = known_model_info(f"meta-llama/Llama-3.1-{size}-Instruct")
    assert info is not None
    return info


def test_default_model_facts_come_from_the_gguf(smollm2: ModelInfo) -> None:
    assert (smollm2.num_attention_heads, smollm2.num_key_value_heads, smollm2.num_hidden_layers) == (9, 3, 30)


def test_shipped_recipes_validate_for_their_backends(smollm2: ModelInfo) -> None:
    assert validate(load_recipe("smollm2-135m"), smollm2, CpuBackend()) == [None]
    assert validate(load_recipe("smollm2-135m", overrides=["parallelism.tp=3"]), smollm2, CpuBackend()) == [
        None
    ]
    targets = validate(load_recipe("llama-3.1-70b-instruct"), llama("70B"), TrtllmBackend())
    assert [t.name for t in targets if t] == ["H100-SXM"]
    targets = validate(load_recipe("llama-3.1-8b-instruct-awq"), llama("8B"), TrtllmBackend())
    assert [t.name for t in targets if t] == ["L40S", "A10G"]


BAD = [
    # (recipe, overrides, backend, model, field, fragments)
    (
        "smollm2-135m",
        ["parallelism.tp=2"],
        "cpu",
        "smol",
        "parallelism.tp",
        ["tp=2", "9 attention heads", "rule"],
    ),
    ("smollm2-135m", ["parallelism.tp=2"], "cpu", "smol", "parallelism.tp", ["3 KV heads"]),
    (
        "llama-3.1-8b-instruct",
        ["parallelism.tp=12"],
        "trtllm",
        "8B",
        "parallelism.tp",
        ["tp=12", "32 attention heads", "8 KV heads"],
    ),
    ("smollm2-135m", ["parallelism.pp=31"], "cpu", "smol", "parallelism.pp", ["pp=31", "30 layers"]),
    (
        "smollm2-135m",
        ["build.max_seq_len=9000"],
        "cpu",
        "smol",
        "build.max_seq_len",
        ["9000", "8192 positions"],
    ),
    (
        "llama-3.1-8b-instruct",
        ["target.gpus={A100-80GB}"],
        "trtllm",
        "8B",
        "quantization.format",
        ["fp8", "SM >= 89", "A100"],
    ),
    (
        "llama-3.1-8b-instruct",
        ["quantization.format=nvfp4", "quantization.kv_cache_dtype=auto"],
        "trtllm",
        "8B",
        "quantization.format",
        ["nvfp4", "SM >= 100"],
    ),
    (
        "smollm2-135m",
        ["quantization.format=fp8"],
        "cpu",
        "smol",
        "quantization.format",
        ["fp8", "cpu backend"],
    ),
    ("smollm2-135m", ["quantization.format=int4_awq"], "cpu", "smol", "quantization.format", ["int4_awq"]),
    (
        "llama-3.1-8b-instruct",
        ["target.gpus={H100}"],
        "trtllm",
        "8B",
        "target.gpus[0]",
        ["unknown GPU 'H100'", "H100-SXM"],
    ),
    ("llama-3.1-8b-instruct", ["target.gpus={}"], "trtllm", "8B", "target.gpus", ["target GPU"]),
    (
        "smollm2-135m",
        ["build.max_num_tokens=100", "build.features.use_paged_context_fmha=false"],
        "cpu",
        "smol",
        "build.max_num_tokens",
        ["max_input_len", "chunked context"],
    ),
    (
        "smollm2-135m",
        ["build.max_num_tokens=100", "serving.enable_chunked_context=false"],
        "cpu",
        "smol",
        "build.max_num_tokens",
        ["max_input_len", "serving.enable_chunked_context"],
    ),
    (
        "llama-3.1-8b-instruct",
        ["serving.enable_kv_cache_reuse=true", "build.features.use_paged_context_fmha=false"],
        "trtllm",
        "8B",
        "serving.enable_kv_cache_reuse",
        ["build.features.use_paged_context_fmha=true", "silently turn KV-cache reuse off"],
    ),
    (
        "smollm2-135m",
        ["serving.enable_kv_cache_reuse=true", "build.features.gather_context_logits=true"],
        "cpu",
        "smol",
        "serving.enable_kv_cache_reuse",
        ["build.features.gather_context_logits=false"],
    ),
    (
        "smollm2-135m",
        ["serving.enable_chunked_context=true", "build.features.use_paged_context_fmha=false"],
        "cpu",
        "smol",
        "serving.enable_chunked_context",
        ["build.features.use_paged_context_fmha=true", "fail to load"],
    ),
]


@pytest.mark.parametrize(("name", "overrides", "backend", "model", "field", "fragments"), BAD)
def test_bad_recipe_is_rejected_with_its_reason(
    smollm2: ModelInfo,
    name: str,
    overrides: list[str],
    backend: str,
    model: str,
    field: str,
    fragments: list[str],
) -> None:
    info = smollm2 if model == "smol" else llama(model)
    be = CpuBackend() if backend == "cpu" else TrtllmBackend()
    with pytest.raises(RecipeErrors) as caught:
        validate(load_recipe(name, overrides=overrides), info, be)
    matching = [e for e in caught.value.errors if e.field == field]
    assert matching, f"no error for {field}: {caught.value}"
    text = " ".join(str(e) for e in matching)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


def test_all_problems_are_reported_together(smollm2: ModelInfo) -> None:
    recipe = load_recipe(
        "smollm2-135m",
        overrides=[
            "parallelism.tp=2",
            "parallelism.pp=40",
            "build.max_seq_len=9000",
            "quantization.format=fp8",
        ],
    )
    with pytest.raises(RecipeErrors) as caught:
        validate(recipe, smollm2, CpuBackend())
    fields = {e.field for e in caught.value.errors}
    assert {"parallelism.tp", "parallelism.pp", "build.max_seq_len", "quantization.format"} <= fields


def test_prompt_longer_than_max_num_tokens_is_fine_with_chunked_context(smollm2: ModelInfo) -> None:
    recipe = load_recipe("smollm2-135m", overrides=["build.max_num_tokens=100"])
    assert recipe.build.features.use_paged_context_fmha and recipe.serving.enable_chunked_context is None
    validate(recipe, smollm2, CpuBackend())


def test_switch_off_without_the_build_feature_is_fine(smollm2: ModelInfo) -> None:
    recipe = load_recipe(
        "smollm2-135m",
        overrides=["serving.enable_kv_cache_reuse=false", "build.features.use_paged_context_fmha=false"],
    )
    validate(recipe, smollm2, CpuBackend())


def test_engine_build_refuses_kv_cache_reuse_without_paged_context_fmha(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from triton_llm.cli import main

    code = main(
        [
            "engine", "build", "llama-3.1-8b-instruct", "--backend", "trtllm", "--dry-run",
            "--set", "serving.enable_kv_cache_reuse=true",
            "--set", "build.features.use_paged_context_fmha=false",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "serving.enable_kv_cache_reuse" in err and "build.features.use_paged_context_fmha" in err


def test_each_problem_is_stated_once_without_a_dedupe(smollm2: ModelInfo) -> None:
    """tp divisibility has one owner (every backend and the converter call it), and a backend's
    GPU-independent rules are checked once however many GPUs a recipe targets."""
    with pytest.raises(RecipeErrors) as caught:
        validate(load_recipe("smollm2-135m", overrides=["parallelism.tp=9"]), smollm2, CpuBackend())
    assert [str(e) for e in caught.value.errors if e.field == "parallelism.tp"] == [
        "parallelism.tp=9: must divide the model's MLP width (rule: tp divides intermediate_size=1536; "
        "valid tp: [1, 2, 3, 4, 6, 8])"
    ]
    gpt2 = ModelInfo("GPT2LMHeadModel", 32, 8, 32, 4096, 14336, 128256, 8192, 128)
    with pytest.raises(RecipeErrors) as caught:
        validate(load_recipe("llama-3.1-8b-instruct-awq"), gpt2, TrtllmBackend(environ={}))
    fields = [e.field for e in caught.value.errors]
    assert fields.count("model") == 1, caught.value
