"""Cache keys: which recipe edits change the checkpoint key, the engine key, or neither."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_llm.engine.backends.base import BuildBackend
from triton_llm.engine.backends.cpu import CpuBackend
from triton_llm.engine.backends.trtllm import TrtllmBackend
from triton_llm.engine.fetch import ResolvedSource, known_model_info
from triton_llm.engine.fingerprint import canonical_json, fingerprint
from triton_llm.engine.plan import BuildPlan, plan_build
from triton_llm.engine.recipe import load_recipe


def source(commit: str = "0" * 40) -> ResolvedSource:
    info = known_model_info("meta-llama/Llama-3.1-8B-Instruct")
    assert info is not None
    return ResolvedSource(
        kind="hf",
        identity={"hf": "meta-llama/Llama-3.1-8B-Instruct", "commit": commit, "allow_patterns": ["*.json"]},
        model_info=info,
        location="meta-llama/Llama-3.1-8B-Instruct",
    )


def plan(recipe: str, overrides: list[str], backend: BuildBackend, *, commit: str = "0" * 40) -> BuildPlan:
    return plan_build(
        load_recipe(recipe, overrides=overrides),
        source=source(commit),
        backend=backend,
        model_dir=Path("/models/x"),
        work_dir=Path("/work"),
    )


def test_fingerprint_is_canonical() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})


# (edit, changes checkpoint key, changes engine key)
TRTLLM_EDITS = [
    ("serving.kv_cache_free_gpu_mem_fraction=0.5", False, False),
    ("serving.preprocessing_instances=4", False, False),
    ("serving.chat_template=false", False, False),
    ("serving.max_queue_delay_microseconds=100", False, False),
    ("description=renamed", False, False),
    ("name=other-name", False, False),
    ("quantization.group_size=64", False, False),  # fp8 has no groups
    ("build.max_batch_size=32", False, True),
    ("build.max_seq_len=12288", False, True),
    ("build.max_num_tokens=8192", False, True),
    ("build.plugins.gemm_plugin=disable", False, True),
    ("build.features.multiple_profiles=true", False, True),
    ("target.gpus={H200}", False, True),
    ("quantization.calibration.size=256", True, True),
    ("quantization.kv_cache_dtype=auto", True, True),
    ("quantization.format=int8_sq", True, True),
    ("dtype=float16", True, True),
    ("parallelism.tp=2", True, True),
    ("parallelism.pp=2", True, True),
]


@pytest.mark.parametrize(("edit", "ck_changes", "engine_changes"), TRTLLM_EDITS)
def test_trtllm_key_changes(edit: str, ck_changes: bool, engine_changes: bool) -> None:
    base = plan("llama-3.1-8b-instruct", [], TrtllmBackend())
    edited = plan("llama-3.1-8b-instruct", [edit], TrtllmBackend())
    assert (edited.checkpoint.key != base.checkpoint.key) is ck_changes
    assert (edited.engines[0].key != base.engines[0].key) is engine_changes


def test_h100_and_h200_share_sm90_but_not_engine_keys() -> None:
    p = plan("llama-3.1-8b-instruct", ["target.gpus={H100-SXM,H200}"], TrtllmBackend())
    assert [e.gpu.sm for e in p.engines if e.gpu] == [90, 90]
    assert p.engines[0].key != p.engines[1].key
    assert p.engines[0].inputs["checkpoint"] == p.engines[1].inputs["checkpoint"] == p.checkpoint.key


def test_source_commit_changes_every_key() -> None:
    a = plan("llama-3.1-8b-instruct", [], TrtllmBackend(), commit="a" * 40)
    b = plan("llama-3.1-8b-instruct", [], TrtllmBackend(), commit="b" * 40)
    assert a.checkpoint.key != b.checkpoint.key
    assert a.engines[0].key != b.engines[0].key


def test_toolchain_versions_are_in_both_keys() -> None:
    p = plan("llama-3.1-8b-instruct", [], TrtllmBackend())
    for stage in (p.checkpoint, p.engines[0]):
        toolchain = stage.inputs["toolchain"]
        assert toolchain["tensorrt_llm"] == "1.2.1"
        assert "tensorrt" in toolchain and "cuda" in toolchain
    assert p.engines[0].inputs["gpu"] == {"sku": "H100-SXM", "sm": 90}
    assert "gpu" not in p.checkpoint.inputs


CPU_EDITS = [
    ("serving.threads=2", False, False),
    ("quantization.calibration.size=8", False, False),  # no calibration for weight-only/none
    ("target.gpus={L4}", False, True),
    ("build.max_batch_size=4", False, True),
    ("quantization.format=int8_wo", True, True),
    ("parallelism.tp=2", True, True),
]


@pytest.mark.parametrize(("edit", "ck_changes", "engine_changes"), CPU_EDITS)
def test_cpu_key_changes(edit: str, ck_changes: bool, engine_changes: bool) -> None:
    common = ["model.hf=meta-llama/Llama-3.1-8B-Instruct", "model.offline_fallback=null", "dtype=float32"]
    base = plan("smollm2-135m", common, CpuBackend())
    edited = plan("smollm2-135m", [*common, edit], CpuBackend())
    assert (edited.checkpoint.key != base.checkpoint.key) is ck_changes
    assert (edited.engines[0].key != base.engines[0].key) is engine_changes


def test_cpu_and_trtllm_keys_differ_for_the_same_recipe() -> None:
    common = ["quantization.format=none", "quantization.kv_cache_dtype=auto"]
    cpu = plan("llama-3.1-8b-instruct", [*common, "target.gpus={}"], CpuBackend())
    gpu = plan("llama-3.1-8b-instruct", common, TrtllmBackend())
    assert cpu.checkpoint.key != gpu.checkpoint.key
