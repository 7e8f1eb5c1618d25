"""``triton-llm repo render --engine-dir``: render for a local engine directory, no store involved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from triton_llm.cli import main
from triton_llm.engine.recipe import load_recipe


def trtllm_build_output(tmp_path: Path, *, world: int = 2, **plugin: Any) -> Path:
    """What ``trtllm-build --output_dir`` leaves (config.json + rank files), plus a tokenizer."""
    engine = tmp_path / "trtllm-engine"
    (engine / "tokenizer").mkdir(parents=True)
    (engine / "tokenizer" / "tokenizer.json").write_text("{}")
    config = {
        "version": "1.2.1",
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "dtype": "bfloat16",
            "mapping": {"world_size": world, "tp_size": world, "pp_size": 1},
        },
        "build_config": {
            "max_batch_size": 16,
            "max_input_len": 1024,
            "max_seq_len": 2048,
            "max_beam_width": 1,
            "max_num_tokens": 8192,
            "kv_cache_type": "PAGED",
            "gather_context_logits": False,
            "plugin_config": {"use_paged_context_fmha": True, "paged_kv_cache": True, **plugin},
        },
    }
    (engine / "config.json").write_text(json.dumps(config))
    for rank in range(world):
        (engine / f"rank{rank}.engine").write_bytes(b"engine")
    return engine


def cpu_engine(tmp_path: Path) -> Path:
    engine = tmp_path / "cpu-engine"
    (engine / "tokenizer").mkdir(parents=True)
    (engine / "tokenizer" / "tokenizer_config.json").write_text("{}")
    config = {
        "backend": "cpu",
        "checkpoint_key": "ba9876543210" * 4,
        "pretrained_config": {"architecture": "LlamaForCausalLM", "mapping": {"world_size": 1}},
        "build_config": {"max_batch_size": 8, "max_input_len": 1024, "max_seq_len": 2048},
    }
    (engine / "config.json").write_text(json.dumps(config))
    return engine


def render(*args: str) -> int:
    return main(["repo", "render", *args])


def parse(out: Path, model: str) -> Any:
    text = (out / model / "config.pbtxt").read_text()
    assert "${" not in text
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def params(config: Any) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


def test_renders_a_trtllm_build_output_dir_for_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = trtllm_build_output(tmp_path)
    out = tmp_path / "repo"
    assert render("--engine-dir", str(engine), "--out", str(out)) == 0
    assert str(out) in capsys.readouterr().out
    llm = parse(out, "tensorrt_llm")
    assert llm.backend == "tensorrtllm" and llm.max_batch_size == 16
    p = params(llm)
    assert p["gpt_model_path"] == str(engine.resolve())
    assert p["tokenizer_dir"] == str((engine / "tokenizer").resolve())
    assert p["enable_kv_cache_reuse"] == "true" and p["enable_chunked_context"] == "true"
    assert params(parse(out, "preprocessing"))["tokenizer_dir"] == p["tokenizer_dir"]
    assert not (out / "tensorrt_llm" / "1" / "model.py").exists()


def test_tokenizer_dir_flag(tmp_path: Path) -> None:
    engine = trtllm_build_output(tmp_path)
    tokenizer = tmp_path / "hf-model"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.model").write_bytes(b"sp")
    out = tmp_path / "repo"
    assert render("--engine-dir", str(engine), "--tokenizer-dir", str(tokenizer), "--out", str(out)) == 0
    assert params(parse(out, "postprocessing"))["tokenizer_dir"] == str(tokenizer.resolve())
    assert params(parse(out, "tensorrt_llm"))["tokenizer_dir"] == str(tokenizer.resolve())


def test_serving_overrides_use_the_recipe_set_syntax(tmp_path: Path) -> None:
    engine = trtllm_build_output(tmp_path)
    out = tmp_path / "repo"
    code = render(
        "--engine-dir", str(engine), "--out", str(out),
        "--set", "serving.kv_cache_free_gpu_mem_fraction=0.5",
        "--set", "serving.enable_kv_cache_reuse=false",
        "--set", "serving.chat_template=false",
    )  # fmt: skip
    assert code == 0
    p = params(parse(out, "tensorrt_llm"))
    assert p["kv_cache_free_gpu_mem_fraction"] == "0.5" and p["enable_kv_cache_reuse"] == "false"
    assert params(parse(out, "preprocessing"))["chat_template"] == "false"


def test_an_engines_recipe_json_is_the_serving_base(tmp_path: Path) -> None:
    engine = trtllm_build_output(tmp_path)
    recipe = load_recipe("smollm2-135m", overrides=["serving.preprocessing_instances=3"])
    (engine / "recipe.json").write_text(json.dumps(recipe.model_dump(mode="json")))
    out = tmp_path / "repo"
    assert render("--engine-dir", str(engine), "--out", str(out), "--set", "serving.chat_template=false") == 0
    pre = parse(out, "preprocessing")
    assert pre.instance_group[0].count == 3 and params(pre)["chat_template"] == "false"


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("serving.kv_cache_free_gpu_mem_fraction=2", ["serving.kv_cache_free_gpu_mem_fraction", "1"]),
        ("serving.bogus=1", ["serving.bogus", "unknown key"]),
        ("build.max_batch_size=4", ["build.max_batch_size", "serving."]),
        ("serving", ["serving"]),
    ],
)
def test_bad_override_is_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, fragments: list[str]
) -> None:
    engine = trtllm_build_output(tmp_path)
    assert render("--engine-dir", str(engine), "--out", str(tmp_path / "o"), "--set", override) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "o").exists()


def test_switch_the_engine_cannot_honour_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = trtllm_build_output(tmp_path, use_paged_context_fmha=False)
    code = render(
        "--engine-dir",
        str(engine),
        "--out",
        str(tmp_path / "o"),
        "--set",
        "serving.enable_chunked_context=true",
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "serving.enable_chunked_context" in err and "use_paged_context_fmha" in err


def test_dir_without_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert render("--engine-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "o")) == 2
    assert "config.json" in capsys.readouterr().err
    assert render("--engine-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "o")) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, "Hugging Face"),
        (
            {"architecture": "LlamaForCausalLM", "mapping": {"world_size": 1}, "dtype": "float16"},
            "trtllm-build",
        ),
        ([1, 2], "not a TensorRT-LLM engine config"),
        ("{not json", "not valid JSON"),
    ],
)
def test_config_json_that_is_not_an_engine_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: Any, fragment: str
) -> None:
    engine = tmp_path / "e"
    (engine / "tokenizer").mkdir(parents=True)
    (engine / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    assert render("--engine-dir", str(engine), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "not a TensorRT-LLM engine config" in err and fragment in err


def test_missing_rank_engine_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = trtllm_build_output(tmp_path, world=2)
    (engine / "rank1.engine").unlink()
    assert render("--engine-dir", str(engine), "--out", str(tmp_path / "o")) == 2
    assert "rank1.engine" in capsys.readouterr().err


def test_missing_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = trtllm_build_output(tmp_path)
    (engine / "tokenizer" / "tokenizer.json").unlink()
    (engine / "tokenizer").rmdir()
    assert render("--engine-dir", str(engine), "--out", str(tmp_path / "o")) == 2
    assert "--tokenizer-dir" in capsys.readouterr().err
    empty = tmp_path / "empty-tokenizer"
    empty.mkdir()
    assert (
        render("--engine-dir", str(engine), "--tokenizer-dir", str(empty), "--out", str(tmp_path / "o")) == 2
    )
    assert "no tokenizer" in capsys.readouterr().err


def test_cpu_engine_dir_needs_its_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = cpu_engine(tmp_path)
    assert render("--engine-dir", str(engine), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "--checkpoint-dir" in err and "ba9876543210" in err
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    assert (
        render("--engine-dir", str(engine), "--checkpoint-dir", str(checkpoint), "--out", str(tmp_path / "o"))
        == 2
    )
    assert "config.json" in capsys.readouterr().err
    (checkpoint / "config.json").write_text("{}")
    out = tmp_path / "repo"
    assert render("--engine-dir", str(engine), "--checkpoint-dir", str(checkpoint), "--out", str(out)) == 0
    llm = parse(out, "tensorrt_llm")
    assert llm.backend == "python" and (out / "tensorrt_llm" / "1" / "model.py").is_file()
    assert params(llm)["checkpoint_dir"] == str(checkpoint.resolve())


def test_checkpoint_dir_is_only_for_cpu_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = trtllm_build_output(tmp_path)
    code = render(
        "--engine-dir", str(engine), "--checkpoint-dir", str(tmp_path), "--out", str(tmp_path / "o")
    )
    assert code == 2 and "--checkpoint-dir" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["smollm2-135m", "--engine-dir", "ENGINE"],
        [],
        ["--engine-dir", "ENGINE", "--backend", "cpu"],
        ["smollm2-135m", "--tokenizer-dir", "ENGINE"],
    ],
)
def test_engine_dir_excludes_recipe_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    engine = trtllm_build_output(tmp_path)
    args = [str(engine) if a == "ENGINE" else a for a in args]
    assert render(*args, "--out", str(tmp_path / "o")) == 2
    assert "--engine-dir" in capsys.readouterr().err


def test_existing_output_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = trtllm_build_output(tmp_path)
    out = tmp_path / "repo"
    assert render("--engine-dir", str(engine), "--out", str(out)) == 0
    assert render("--engine-dir", str(engine), "--out", str(out)) == 2
    assert "--force" in capsys.readouterr().err
    assert render("--engine-dir", str(engine), "--out", str(out), "--force") == 0
