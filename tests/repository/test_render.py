"""Rendering: golden config.pbtxt files, protobuf validity, determinism and loud errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from triton_llm.engine.recipe import Serving
from triton_llm.errors import ConfigError, IncompatibleError
from triton_llm.repository import MODELS, fill_template, plan_parameters, render_files, render_repository
from triton_llm.repository.metrics import cancellation_facts

GOLDEN = Path(__file__).parent / "golden"
ENGINE = Path("/engines/0123456789ab")
CHECKPOINT = Path("/checkpoints/ba9876543210")


def engine_config(backend: str | None, *, batch: int = 8, world: int = 1) -> dict:
    config = {
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "mapping": {"world_size": world, "tp_size": world},
        },
        "build_config": {
            "max_batch_size": batch,
            "max_input_len": 1536,
            "max_seq_len": 2048,
            "max_beam_width": 1,
        },
    }
    if backend:
        config["backend"] = backend
    return config


CASES = {
    "cpu": (engine_config("cpu"), Serving(), CHECKPOINT),
    "gpu": (
        engine_config(None, batch=64, world=2),
        Serving(
            kv_cache_free_gpu_mem_fraction=0.85, preprocessing_instances=4, chat_template=False, threads=4
        ),
        None,
    ),
}


def rendered(case: str) -> dict[str, bytes]:
    config, serving, checkpoint = CASES[case]
    params = plan_parameters(
        config,
        serving=serving,
        engine_dir=ENGINE,
        tokenizer_dir=ENGINE / "tokenizer",
        checkpoint_dir=checkpoint,
    )
    return render_files(params, cpu=config.get("backend") == "cpu")


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_configs(case):
    files = {k: v for k, v in rendered(case).items() if k.endswith("config.pbtxt")}
    golden = GOLDEN / case
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for rel, data in files.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_bytes(data)
    expected = {str(p.relative_to(golden)): p.read_bytes() for p in sorted(golden.rglob("config.pbtxt"))}
    assert files == expected, "rendered configs changed; rerun with UPDATE_GOLDEN=1 and review the diff"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_config_parses_into_triton_model_config(case):
    for rel, data in rendered(case).items():
        if not rel.endswith("config.pbtxt"):
            continue
        text = data.decode()
        assert "${" not in text, rel
        config = text_format.Parse(text, model_config_pb2.ModelConfig())
        assert config.name == rel.split("/")[0]


def parse(case: str, model: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(rendered(case)[f"{model}/config.pbtxt"].decode(), model_config_pb2.ModelConfig())


def test_cpu_and_gpu_differ_only_where_they_must():
    cpu, gpu = parse("cpu", "tensorrt_llm"), parse("gpu", "tensorrt_llm")
    assert (cpu.backend, gpu.backend) == ("python", "tensorrtllm")
    assert "tensorrt_llm/1/model.py" in rendered("cpu") and "tensorrt_llm/1/model.py" not in rendered("gpu")
    assert gpu.max_batch_size == 64 and gpu.model_transaction_policy.decoupled
    assert gpu.parameters["kv_cache_free_gpu_mem_fraction"].string_value == "0.85"
    assert gpu.parameters["gpt_model_path"].string_value == str(ENGINE)
    assert cpu.parameters["checkpoint_dir"].string_value == str(CHECKPOINT)
    assert cpu.parameters["world_size"].string_value == "1"
    # Each backend gets only the keys it reads: no CPU runtime keys on GPU and vice versa.
    assert not {"checkpoint_dir", "cpu_threads", "world_size"} & set(gpu.parameters)
    assert not {"gpt_model_path", "gpt_model_type", "tokenizer_dir"} & set(cpu.parameters)
    assert parse("gpu", "preprocessing").instance_group[0].count == 4
    assert parse("gpu", "preprocessing").parameters["chat_template"].string_value == "false"
    assert parse("cpu", "preprocessing").parameters["chat_template"].string_value == "true"


def test_tensor_names_match_the_inflight_batcher_llm_contract():
    """The names, dtypes and shapes clients and the TensorRT-LLM backend rely on."""
    ens = parse("cpu", "ensemble")
    inputs = {i.name: (model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in ens.input}
    assert inputs["text_input"] == ("TYPE_STRING", [1])
    assert inputs["max_tokens"] == ("TYPE_INT32", [1])
    assert inputs["stream"] == ("TYPE_BOOL", [1])
    assert inputs["temperature"] == ("TYPE_FP32", [1]) and inputs["top_p"] == ("TYPE_FP32", [1])
    assert inputs["top_k"] == ("TYPE_INT32", [1]) and inputs["seed"] == ("TYPE_UINT64", [1])
    assert inputs["stop_words"] == ("TYPE_STRING", [-1]) and inputs["bad_words"] == ("TYPE_STRING", [-1])
    assert {"end_id", "pad_id", "exclude_input_in_output", "beam_width"} <= set(inputs)
    # engine_key is a triton-llm addition: the engine that served each response (versioned repositories)
    assert [(o.name, list(o.dims)) for o in ens.output] == [
        ("text_output", [-1]),
        ("num_output_tokens", [1]),
        ("engine_key", [1]),
    ]
    llm = parse("cpu", "tensorrt_llm")
    llm_in = {i.name: (model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in llm.input}
    assert llm_in["input_ids"] == ("TYPE_INT32", [-1])
    assert llm_in["input_lengths"] == ("TYPE_INT32", [1])
    assert llm_in["request_output_len"] == ("TYPE_INT32", [1])
    assert llm_in["streaming"] == ("TYPE_BOOL", [1])
    assert llm_in["stop_words_list"] == ("TYPE_INT32", [2, -1])
    assert {"end_id", "pad_id", "temperature", "runtime_top_k", "runtime_top_p", "seed"} <= set(llm_in)
    outputs = {o.name: list(o.dims) for o in llm.output}
    assert outputs["output_ids"] == [-1, -1] and outputs["sequence_length"] == [-1]
    steps = [s.model_name for s in ens.ensemble_scheduling.step]
    assert steps == ["preprocessing", "tensorrt_llm", "postprocessing"]
    bls = parse("cpu", "tensorrt_llm_bls")
    assert {i.name for i in bls.input} == set(inputs)
    assert bls.model_transaction_policy.decoupled


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_ensemble_wires_the_stream_key_and_postprocessing_sees_cancelled_requests(backend):
    """TensorRT-LLM 1.2's return_perf_metrics -> arrival_time_ns reaches postprocessing (the stream
    key), and postprocessing has no batcher that would drop the requests Triton creates cancelled."""
    llm = parse(backend, "tensorrt_llm")
    llm_in = {i.name: (model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in llm.input}
    assert llm_in["stop"] == ("TYPE_BOOL", [1]) and llm_in["return_perf_metrics"] == ("TYPE_BOOL", [1])
    # the 1.2 backend writes every perf output once return_perf_metrics is set, and fails the
    # request when the config lacks one (facts: tensorrtllm_backend_1_2.perf_outputs)
    perf = cancellation_facts()["tensorrtllm_backend_1_2"]["perf_outputs"]
    declared = {o.name: (model_config_pb2.DataType.Name(o.data_type), list(o.dims)) for o in llm.output}
    assert {name: declared.get(name) for name in perf} == {name: (t, [1]) for name, t in perf.items()}
    steps = {s.model_name: s for s in parse(backend, "ensemble").ensemble_scheduling.step}
    assert steps["preprocessing"].output_map["OUT_RETURN_PERF_METRICS"] == "_RETURN_PERF_METRICS"
    assert steps["tensorrt_llm"].input_map["return_perf_metrics"] == "_RETURN_PERF_METRICS"
    assert steps["tensorrt_llm"].output_map["arrival_time_ns"] == "_ARRIVAL_TIME_NS"
    assert steps["postprocessing"].input_map["ARRIVAL_TIME_NS"] == "_ARRIVAL_TIME_NS"
    post = parse(backend, "postprocessing")
    assert not post.HasField("dynamic_batching")
    assert [i.optional for i in post.input if i.name == "ARRIVAL_TIME_NS"] == [True]
    assert post.parameters["tensorrt_llm_model_name"].string_value == "tensorrt_llm"


def write_engine(tmp_path: Path, config: dict) -> Path:
    engine = tmp_path / "engine"
    (engine / "tokenizer").mkdir(parents=True)
    (engine / "config.json").write_text(json.dumps(config))
    return engine


def test_render_twice_gives_identical_bytes(tmp_path):
    engine = write_engine(tmp_path, engine_config("cpu"))
    outs = []
    for name in ("a", "b"):
        out = render_repository(
            engine, serving=Serving(), out=tmp_path / name, checkpoint_dir=tmp_path / "ckpt"
        )
        outs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outs[0] == outs[1] and "ensemble/config.pbtxt" in outs[0]
    assert str((engine / "tokenizer").resolve()) in outs[0]["preprocessing/config.pbtxt"].decode()


def test_render_refuses_a_non_empty_output_dir_unless_forced(tmp_path):
    engine = write_engine(tmp_path, engine_config("cpu"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        render_repository(engine, serving=Serving(), out=out, checkpoint_dir=tmp_path)
    render_repository(engine, serving=Serving(), out=out, checkpoint_dir=tmp_path, overwrite=True)
    assert not (out / "stale.txt").exists() and sorted(p.name for p in out.iterdir()) == sorted(MODELS)


def test_unfilled_placeholder_names_file_and_placeholder():
    with pytest.raises(ConfigError, match=r"x\.pbtxt: no value for placeholder\(s\) \$\{max_batch\}"):
        fill_template("max_batch_size: ${max_batch}", {}, source="x.pbtxt")


def test_unknown_template_parameter_is_an_error():
    with pytest.raises(ConfigError, match=r"x\.pbtxt: unknown template parameter\(s\) typo_param"):
        fill_template("a: ${a}", {"a": "1", "typo_param": "2"}, source="x.pbtxt")


def test_cpu_engine_without_checkpoint_is_incompatible():
    with pytest.raises(IncompatibleError, match="needs its checkpoint_dir"):
        plan_parameters(engine_config("cpu"), serving=Serving(), engine_dir=ENGINE, tokenizer_dir=ENGINE)


def test_engine_config_without_limits_is_incompatible():
    with pytest.raises(IncompatibleError, match=r"build_config\.max_batch_size"):
        plan_parameters({"pretrained_config": {}}, serving=Serving(), engine_dir=ENGINE, tokenizer_dir=ENGINE)


def test_several_postprocessing_instances_would_break_exact_streaming():
    with pytest.raises(ConfigError, match="postprocessing_instances must be 1"):
        plan_parameters(
            engine_config(None),
            serving=Serving(postprocessing_instances=2),
            engine_dir=ENGINE,
            tokenizer_dir=ENGINE,
        )
