"""The trtllm backend against TensorRT-LLM 1.2.1's accepted flags, choices and rules.

Every planned command is re-parsed with parsers built from ``trtllm_1_2_1.json`` (the
flags, types and choices of 1.2.1's trtllm-build, quantize.py and convert_checkpoint.py),
and the parsed values are compared with the recipe field they come from.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from triton_llm.engine.backends.base import Action, Call, Command, run_actions
from triton_llm.engine.backends.trtllm import (
    CONVERT_SCRIPT,
    EXAMPLES_ENV,
    QUANTIZE_SCRIPT,
    TrtllmBackend,
)
from triton_llm.engine.backends.trtllm_facts import TOOLS, load_facts, parse_argv
from triton_llm.engine.backends.trtllm_rules import NO_GPU_MESSAGE
from triton_llm.engine.backends.trtllm_verify import verify_checkpoint
from triton_llm.engine.gpus import GPU_SKUS, gpu_sku
from triton_llm.engine.model_info import ModelInfo
from triton_llm.engine.recipe import Features, Plugins, QuantFormat, Recipe, list_recipes, load_recipe
from triton_llm.errors import BuildError

# Public Llama 3.1 config.json values (meta-llama/Llama-3.1-8B-Instruct and -70B-Instruct).
LLAMA_31 = {
    "8b": {"heads": 32, "layers": 32, "hidden": 4096, "intermediate": 14336},
    "70b": {"heads": 64, "layers": 80, "hidden": 8192, "intermediate": 28672},
}


def llama31(size: str) -> ModelInfo:
    c = LLAMA_31[size]
    return ModelInfo.from_hf_config(
        {
            "architectures": ["LlamaForCausalLM"],
            "num_attention_heads": c["heads"],
            "num_key_value_heads": 8,
            "num_hidden_layers": c["layers"],
            "hidden_size": c["hidden"],
            "intermediate_size": c["intermediate"],
            "vocab_size": 128256,
            "max_position_embeddings": 131072,
        }
    )


MODEL_DIR, CKPT_DIR, ENGINE_DIR = Path("/models/hf"), Path("/work/ckpt"), Path("/work/engine")
QFORMAT = {  # recipe format -> quantize.py --qformat (1.2.1 spelling)
    "none": "full_prec",
    "fp8": "fp8",
    "int8_sq": "int8_sq",
    "int4_awq": "int4_awq",
    "w4a8_awq": "w4a8_awq",
    "int8_wo": "int8_wo",
    "int4_wo": "int4_wo",
    "nvfp4": "nvfp4",
}
ON_OFF = {True: "enable", False: "disable"}


def _tool(action: Action) -> tuple[str, list[str]]:
    assert isinstance(action, Command)
    argv = list(action.argv)
    if argv[0] == "trtllm-build":
        return "trtllm-build", argv[1:]
    script = argv[1]
    if script.endswith(QUANTIZE_SCRIPT):
        return "quantize.py", argv[2:]
    assert script.endswith(CONVERT_SCRIPT), argv
    return "convert_checkpoint.py", argv[2:]


def _plan(recipe: Recipe) -> tuple[list[Action], list[Action]]:
    backend = TrtllmBackend(environ={})
    ck = backend.plan_checkpoint(recipe, model_dir=MODEL_DIR, out_dir=CKPT_DIR)
    eng = backend.plan_engine(
        recipe, checkpoint_dir=CKPT_DIR, out_dir=ENGINE_DIR, gpu=gpu_sku("H100-SXM"), checkpoint_key="k" * 64
    )
    return ck, eng


def _assert_checkpoint_mapping(recipe: Recipe, action: Action) -> None:
    tool, args = _tool(action)
    parsed = parse_argv(tool, args)
    q, par = recipe.quantization, recipe.parallelism
    assert parsed["model_dir"] == str(MODEL_DIR)
    assert parsed["output_dir"] == str(CKPT_DIR)
    assert parsed["dtype"] == recipe.dtype
    assert (parsed["tp_size"], parsed["pp_size"]) == (par.tp, par.pp)
    modelopt = q.format not in ("none", "int8_wo", "int4_wo") or q.kv_cache_dtype != "auto"
    assert tool == ("quantize.py" if modelopt else "convert_checkpoint.py")
    if modelopt:
        cal = q.calibration
        assert parsed["qformat"] == QFORMAT[q.format]
        assert parsed["calib_dataset"] == cal.dataset
        assert parsed["calib_size"] == cal.size
        assert parsed["batch_size"] == cal.batch_size
        assert parsed["calib_max_seq_length"] == cal.max_seq_len
        assert parsed["kv_cache_dtype"] == (None if q.kv_cache_dtype == "auto" else q.kv_cache_dtype)
        if q.format in ("int4_awq", "w4a8_awq"):
            assert "--awq_block_size" in args and parsed["awq_block_size"] == q.group_size
        else:
            assert "--awq_block_size" not in args
    else:
        weight_only = q.format in ("int8_wo", "int4_wo")
        assert parsed["use_weight_only"] is weight_only
        if weight_only:
            assert parsed["weight_only_precision"] == q.format.removesuffix("_wo")


def _assert_engine_mapping(recipe: Recipe, action: Action) -> None:
    tool, args = _tool(action)
    assert tool == "trtllm-build"
    parsed = parse_argv(tool, args)
    b = recipe.build
    f, p = b.features, b.plugins
    assert parsed["checkpoint_dir"] == str(CKPT_DIR) and parsed["output_dir"] == str(ENGINE_DIR)
    for field in ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens", "max_beam_width"):
        assert parsed[field] == getattr(b, field), field
    assert parsed["kv_cache_type"] == ("paged" if f.paged_kv_cache else "continuous")
    assert parsed["tokens_per_block"] == f.tokens_per_block
    for field in ("gpt_attention_plugin", "gemm_plugin", "nccl_plugin"):
        assert parsed[field] == getattr(p, field), field
    for field in (
        "context_fmha",
        "use_paged_context_fmha",
        "remove_input_padding",
        "use_fused_mlp",
        "multiple_profiles",
        "reduce_fusion",
    ):
        assert parsed[field] == ON_OFF[getattr(f, field)], field
    assert parsed["gather_context_logits"] is f.gather_context_logits
    assert parsed["workers"] == recipe.parallelism.world_size
    assert "--paged_kv_cache" not in args  # deprecated in 1.2.1
    assert "--opt_num_tokens" not in args  # trtllm-build refuses it with multiple_profiles


def _check_plan(recipe: Recipe) -> None:
    ck, eng = _plan(recipe)
    assert [type(a) for a in ck] == [Call, Command, Call]
    _assert_checkpoint_mapping(recipe, ck[1])
    assert len(eng) == 1
    _assert_engine_mapping(recipe, eng[0])
    for action in (*ck, *eng):
        assert action.render()  # --dry-run prints every step


@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_every_shipped_recipe_plans_valid_1_2_1_commands(name: str) -> None:
    _check_plan(load_recipe(name))


def _literal_values(model: type, field: str) -> tuple[str, ...]:
    return typing.get_args(model.model_fields[field].annotation)


Q, CAL, F, BLD = "quantization", "quantization.calibration", "build.features", "build"


def _edits() -> list[list[str]]:
    edits = [[f"{Q}.format={fmt}"] for fmt in typing.get_args(QuantFormat)]
    for fmt in ("none", "int8_wo", "int4_wo", "fp8", "int4_awq"):
        edits += [[f"{Q}.format={fmt}", f"{Q}.kv_cache_dtype={kv}"] for kv in ("auto", "fp8", "int8")]
    edits += [[f"{Q}.format={fmt}", f"{Q}.group_size=64"] for fmt in ("int4_awq", "w4a8_awq")]
    edits.append(
        [f"{CAL}.dataset=/data/calib", f"{CAL}.size=64", f"{CAL}.batch_size=4", f"{CAL}.max_seq_len=1024"]
    )
    edits += [[f"parallelism.tp={tp}", f"parallelism.pp={pp}"] for tp, pp in ((2, 1), (4, 2), (8, 1), (1, 4))]
    edits += [[f"dtype={d}"] for d in ("float16", "bfloat16", "float32")]
    for field in Plugins.model_fields:
        for value in _literal_values(Plugins, field):
            fmt = value if value in ("fp8", "nvfp4") else "fp8"  # fp8/nvfp4 GEMM need that checkpoint
            edits.append([f"build.plugins.{field}={value}", f"{Q}.format={fmt}"])
    for field, default in Features().model_dump().items():
        if isinstance(default, bool):
            edits.append([f"{F}.{field}={str(not default).lower()}"])
    edits += [[f"{F}.tokens_per_block=64"], [f"{F}.tokens_per_block=128", f"{F}.paged_kv_cache=false"]]
    edits.append(
        [
            f"{BLD}.max_batch_size=256",
            f"{BLD}.max_input_len=100",
            f"{BLD}.max_seq_len=4096",
            f"{BLD}.max_num_tokens=2048",
            f"{BLD}.max_beam_width=4",
        ]
    )
    return edits


EDITS = _edits()


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: ",".join(e))
def test_recipe_edits_map_to_accepted_flags(edit: list[str]) -> None:
    _check_plan(load_recipe("llama-3.1-8b-instruct", overrides=edit))


# --- the 1.2.1 parsers themselves reject what 1.2.1 rejects ----------------------------------


BUILD_OK = ["--checkpoint_dir", "c", "--output_dir", "o"]
QUANT_OK = ["--model_dir", "m", "--output_dir", "o"]


@pytest.mark.parametrize(
    ("tool", "args", "needle"),
    [
        ("trtllm-build", [*BUILD_OK, "--auto_parallel", "2"], "--auto_parallel"),  # removed before 1.2
        ("trtllm-build", [*BUILD_OK, "--gemm_plugin", "int8"], "int8"),
        ("trtllm-build", [*BUILD_OK, "--max_batch_size", "eight"], "eight"),
        ("trtllm-build", [*BUILD_OK, "--context_fmha", "on"], "on"),
        ("trtllm-build", [*BUILD_OK, "--kv_cache_type", "blocked"], "blocked"),
        ("trtllm-build", ["--output_dir", "o"], "--checkpoint_dir"),
        ("quantize.py", [*QUANT_OK, "--qformat", "fp4"], "fp4"),
        ("quantize.py", [*QUANT_OK, "--qformat", "fp8", "--kv_cache_dtype", "fp16"], "fp16"),
        ("convert_checkpoint.py", [*QUANT_OK, "--weight_only_precision", "int2"], "int2"),
        ("convert_checkpoint.py", [*QUANT_OK, "--qformat", "fp8"], "--qformat"),
    ],
)
def test_parsers_reject_what_1_2_1_rejects(tool: str, args: list[str], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_argv(tool, args)


def test_kv_cache_type_is_case_insensitive_like_kvcachetype_from_string() -> None:
    parsed = parse_argv(
        "trtllm-build", ["--checkpoint_dir", "c", "--output_dir", "o", "--kv_cache_type", "PAGED"]
    )
    assert parsed["kv_cache_type"] == "paged"


def test_facts_name_their_sources() -> None:
    facts = load_facts()
    assert facts["tensorrt_llm_version"] == "1.2.1"
    for group in (
        "trtllm-build",
        "plugins",
        "quantize.py",
        "convert_checkpoint.py",
        "checkpoint_config",
        "toolchain",
    ):
        src = facts["source"][group]
        assert src["repo"] and src["path"], group
    assert set(facts["tools"]) == set(TOOLS)
    for tool in TOOLS:
        for flag, spec in facts["tools"][tool]["flags"].items():
            assert flag.startswith("-")
            assert "alias_of" in spec or spec["type"] in ("str", "int", "float", "store_true"), (tool, flag)


# --- check() rules ------------------------------------------------------------------------------


def _errors(recipe: Recipe, gpu: str | None, size: str = "8b") -> list:
    return TrtllmBackend(environ={}).check(recipe, llama31(size), [] if gpu is None else [gpu_sku(gpu)])


def _recipe(*overrides: str) -> Recipe:
    return load_recipe("llama-3.1-8b-instruct", overrides=list(overrides))


def test_shipped_gpu_recipes_pass_on_their_targets() -> None:
    for name, size in (
        ("llama-3.1-8b-instruct", "8b"),
        ("llama-3.1-8b-instruct-awq", "8b"),
        ("llama-3.1-70b-instruct", "70b"),
    ):
        recipe = load_recipe(name)
        for gpu in recipe.target.gpus:
            assert _errors(recipe, gpu, size) == [], (name, gpu)


def test_no_target_gpu_is_an_error() -> None:
    errors = _errors(_recipe(), None)
    assert [str(e) for e in errors] == [NO_GPU_MESSAGE]
    assert errors[0].field == "target.gpus"


KV_AUTO = "quantization.kv_cache_dtype=auto"


@pytest.mark.parametrize(
    ("overrides", "bad_gpu", "good_gpu", "field", "min_sm"),
    [
        (["quantization.format=fp8", KV_AUTO], "A100-80GB", "L4", "quantization.format", 89),
        (
            ["quantization.format=int4_awq", "quantization.kv_cache_dtype=fp8"],
            "A10G",
            "L40S",
            f"{Q}.kv_cache_dtype",
            89,
        ),
        (["quantization.format=nvfp4", KV_AUTO], "H100-SXM", "B200", "quantization.format", 100),
        (["quantization.format=w4a8_awq", KV_AUTO], "A100-40GB", "L40S", "quantization.format", 89),
        (["quantization.format=int8_sq", KV_AUTO, "dtype=float16"], "T4", "A10G", "quantization.format", 80),
        (
            ["quantization.format=int4_awq", KV_AUTO, "dtype=float16"],
            "V100",
            "A100-40GB",
            "quantization.format",
            80,
        ),
        (["quantization.format=none", KV_AUTO, "dtype=bfloat16"], "T4", "A10G", "dtype", 80),
    ],
)
def test_sm_rules(overrides: list[str], bad_gpu: str, good_gpu: str, field: str, min_sm: int) -> None:
    recipe = _recipe(*overrides)
    errors = [e for e in _errors(recipe, bad_gpu) if e.field == field]
    assert len(errors) == 1, [str(e) for e in _errors(recipe, bad_gpu)]
    msg = str(errors[0])
    value = errors[0].value
    assert f"{field}={value!r}" in msg and f"SM >= {min_sm}" in msg and f"SM{GPU_SKUS[bad_gpu].sm}" in msg
    assert _errors(recipe, good_gpu) == []


def test_gpus_outside_the_support_matrix_are_named() -> None:
    errors = _errors(
        _recipe("quantization.format=none", "quantization.kv_cache_dtype=auto", "dtype=float16"), "V100"
    )
    assert [e.field for e in errors] == ["target.gpus", "dtype"]  # the matrix starts at SM80 for FP16 too
    assert "SM70" in str(errors[0]) and "support matrix" in str(errors[0])


@pytest.mark.parametrize(("gemm", "fmt"), [("fp8", "int4_awq"), ("nvfp4", "fp8"), ("fp8", "none")])
def test_gemm_plugin_precision_needs_a_matching_checkpoint(gemm: str, fmt: str) -> None:
    errors = _errors(_recipe(f"build.plugins.gemm_plugin={gemm}", f"quantization.format={fmt}"), "B200")
    assert [e.field for e in errors] == ["build.plugins.gemm_plugin"]
    assert f"gemm_plugin={gemm!r}" in str(errors[0]) and fmt in str(errors[0])


def test_plugin_values_1_2_1_does_not_accept_are_errors() -> None:
    recipe = _recipe()
    drifted = Plugins.model_construct(gpt_attention_plugin="int8", gemm_plugin="auto", nccl_plugin="float64")
    recipe = recipe.model_copy(update={"build": recipe.build.model_copy(update={"plugins": drifted})})
    errors = _errors(recipe, "H100-SXM")
    assert {e.field: e.value for e in errors} == {
        "build.plugins.gpt_attention_plugin": "int8",
        "build.plugins.nccl_plugin": "float64",
    }
    assert all("1.2.1" in str(e) and "accepts" in str(e) for e in errors)


def test_non_llama_architectures_are_rejected() -> None:
    model = llama31("8b")
    model = ModelInfo(**{**model.__dict__, "architecture": "GPT2LMHeadModel"})
    errors = TrtllmBackend(environ={}).check(_recipe(), model, [gpu_sku("H100-SXM")])
    assert [e.field for e in errors] == ["model"] and "GPT2LMHeadModel" in str(errors[0])


# --- toolchain and run-time behaviour -----------------------------------------------------------


def test_toolchain_versions_are_the_declared_record() -> None:
    pinned = load_facts()["toolchain"]
    versions = TrtllmBackend(environ={}).toolchain_versions()
    assert versions == {
        "tensorrt_llm": "1.2.1",
        "tensorrt": pinned["tensorrt"],
        "cuda": "13.0",
        "image": "nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3",
    }
    assert TrtllmBackend(
        environ={"CUDA_VERSION": "12.8", "TRITON_LLM_BUILDER_IMAGE": "x:1"}
    ).toolchain_versions() == (versions)


def test_missing_examples_fail_when_run_not_when_planned(tmp_path: Path) -> None:
    missing = tmp_path / "no-examples"
    backend = TrtllmBackend(environ={EXAMPLES_ENV: str(missing)})
    actions = backend.plan_checkpoint(_recipe(), model_dir=MODEL_DIR, out_dir=tmp_path / "ck")
    assert isinstance(actions[1], Command) and actions[1].argv[1] == str(missing / QUANTIZE_SCRIPT)
    with pytest.raises(BuildError, match="not found under") as info:
        run_actions(actions, environ={})
    assert EXAMPLES_ENV in str(info.value) and "/app/examples" in str(info.value)
    assert not (tmp_path / "ck").exists()


def _write_checkpoint(root: Path, config: dict, ranks: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(config))
    for r in range(ranks):
        save_file(
            {"transformer.vocab_embedding.weight": np.zeros((4, 2), np.float16)},
            root / f"rank{r}.safetensors",
        )


def _ck_config(tp: int, pp: int, algo: str | None, kv: str | None) -> dict:
    return {
        "architecture": "LlamaForCausalLM", "dtype": "float16", "vocab_size": 4, "hidden_size": 2,
        "num_hidden_layers": 1, "num_attention_heads": 1, "num_key_value_heads": 1,
        "mapping": {"world_size": tp * pp, "tp_size": tp, "pp_size": pp},
        "quantization": {"quant_algo": algo, "kv_cache_quant_algo": kv},
    }  # fmt: skip


def test_verify_checkpoint_accepts_the_planned_layout(tmp_path: Path) -> None:
    recipe = _recipe(
        "quantization.format=int4_wo", "quantization.kv_cache_dtype=auto", "dtype=float16", "parallelism.tp=2"
    )
    verify = TrtllmBackend(environ={}).plan_checkpoint(recipe, model_dir=MODEL_DIR, out_dir=tmp_path / "ck")[
        -1
    ]
    _write_checkpoint(tmp_path / "ck", _ck_config(2, 1, "W4A16", None), ranks=2)
    run_actions([verify], environ={})  # no error


@pytest.mark.parametrize(
    ("config", "ranks", "needle"),
    [
        (_ck_config(2, 1, "W4A16", None), 1, "rank1.safetensors"),
        (_ck_config(1, 1, "W4A16", None), 2, "mapping.tp_size is 1"),
        (_ck_config(2, 1, "W8A16", None), 2, "expected 'W4A16'"),
        (_ck_config(2, 1, "W4A16", "FP8"), 2, "kv_cache_quant_algo"),
    ],
)
def test_verify_checkpoint_names_each_mismatch(tmp_path: Path, config: dict, ranks: int, needle: str) -> None:
    _write_checkpoint(tmp_path / "ck", config, ranks)
    with pytest.raises(BuildError, match=needle):
        verify_checkpoint(
            checkpoint_dir=str(tmp_path / "ck"),
            tp=2,
            pp=1,
            dtype="float16",
            quant_algo="W4A16",
            kv_cache_dtype="auto",
        )


def test_verify_checkpoint_modelopt_algo_must_be_a_1_2_1_quant_algo(tmp_path: Path) -> None:
    _write_checkpoint(tmp_path / "ck", _ck_config(1, 1, "FP9", "FP8"), 1)
    with pytest.raises(BuildError, match=r"not a TensorRT-LLM 1\.2\.1 QuantAlgo"):
        verify_checkpoint(
            checkpoint_dir=str(tmp_path / "ck"),
            tp=1,
            pp=1,
            dtype="float16",
            quant_algo="any",
            kv_cache_dtype="fp8",
        )


def test_cli_dry_run_prints_the_exact_commands_and_stable_keys(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cli = Path(sys.executable).parent / "triton-llm"
    argv = [str(cli), "engine", "build", "smollm2-135m", "--backend", "trtllm", "--dry-run"]
    argv += ["--set", "target.gpus[0]=L4", "--set", "quantization.format=int8_wo"]
    outs = []
    for examples in ("/app/examples", str(tmp_path / "elsewhere")):
        env = {**os.environ, EXAMPLES_ENV: examples}
        env.pop("TRITON_LLM_PROGRESS", None)  # load_settings rejects it today (reported to the lead)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        assert f"{examples}/{CONVERT_SCRIPT}" in proc.stdout
        outs.append(proc.stdout)
    out = outs[0]
    assert "--use_weight_only --weight_only_precision int8" in out
    assert "trtllm-build --checkpoint_dir" in out and "--kv_cache_type paged" in out
    keys = [[line.split("key ")[1] for line in o.splitlines() if " key " in line] for o in outs]
    assert len(keys[0]) == 3 and keys[0] == keys[1]  # the examples path is not part of any key
