"""The whole build pipeline on the cpu backend, publishing to a real S3 server (moto on 127.0.0.1)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors import safe_open

from tests.fixtures.s3 import s3_client, s3_env
from triton_llm.cli import main
from triton_llm.engine.local import ensure_local_engine, entry_dir
from triton_llm.engine.pipeline import BuildResult, build
from triton_llm.engine.recipe import load_recipe
from triton_llm.settings import Settings, load_settings

TP = 3


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[dict[str, object]]:
    """One bucket and one cache dir for the module: the default model is built once, at tp=3."""
    bucket = "pipeline-tests"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    cache = tmp_path_factory.mktemp("cache")
    yield {"store": f"s3://{bucket}/engines", "cache": cache, "endpoint": s3_endpoint}


@pytest.fixture
def settings(shared: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in s3_env(str(shared["endpoint"])).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRITON_LLM_STORE", str(shared["store"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared["cache"]))
    return load_settings({})


@pytest.fixture
def built(settings: Settings) -> BuildResult:
    return build(load_recipe("smollm2-135m", overrides=[f"parallelism.tp={TP}"]), settings=settings)


def test_full_build_publishes_a_checkpoint_that_loads_back_split_for_tp(
    built: BuildResult, settings: Settings
) -> None:
    assert [o.stage for o in built.outcomes] == ["checkpoint", "engine"]
    ck_dir = entry_dir(settings, "checkpoint", built.plan.checkpoint.key)
    from triton_llm.store import open_store, pull

    store = open_store(settings.store_uri(), settings=settings)
    assert (
        pull(store, built.plan.checkpoint.key, ck_dir, transfer=settings.transfer).manifest.stage
        == "checkpoint"
    )
    config = json.loads((ck_dir / "config.json").read_text())
    assert config["mapping"]["tp_size"] == TP
    assert (ck_dir / "tokenizer" / "tokenizer.json").is_file()
    heads, kv, head_dim, hidden, inter = 9, 3, 64, 576, 1536
    for rank in range(TP):
        with safe_open(str(ck_dir / f"rank{rank}.safetensors"), framework="pt") as f:
            qkv = f.get_slice("transformer.layers.0.attention.qkv.weight").get_shape()
            dense = f.get_slice("transformer.layers.0.attention.dense.weight").get_shape()
            fc = f.get_slice("transformer.layers.0.mlp.fc.weight").get_shape()
            proj = f.get_slice("transformer.layers.0.mlp.proj.weight").get_shape()
        assert qkv == [(heads + 2 * kv) * head_dim // TP, hidden]
        assert dense == [hidden, heads * head_dim // TP]
        assert fc == [inter // TP, hidden]
        assert proj == [hidden, inter // TP]


def test_second_build_is_a_cache_hit_with_no_stage_rerun(built: BuildResult, settings: Settings) -> None:
    work = settings.cache_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    again = build(load_recipe("smollm2-135m", overrides=[f"parallelism.tp={TP}"]), settings=settings)
    assert [o.cached for o in again.outcomes] == [True, True]
    assert again.plan.checkpoint.key == built.plan.checkpoint.key
    assert again.engine_keys == built.engine_keys
    assert not work.exists(), "a cache hit must not run any stage"


def test_engine_by_key_restores_engine_checkpoint_and_recipe(built: BuildResult, settings: Settings) -> None:
    local = ensure_local_engine(built.engine_keys[0][:12], settings=settings)
    assert local.key == built.engine_keys[0]
    assert local.backend == "cpu"
    assert local.engine_config["checkpoint_key"] == built.plan.checkpoint.key
    assert local.checkpoint_dir is not None and (local.checkpoint_dir / "rank2.safetensors").is_file()
    assert (local.tokenizer_dir / "tokenizer_config.json").is_file()
    assert local.recipe.parallelism.tp == TP
    assert not list(local.engine_dir.glob("*.safetensors")), "cpu engines hold no copy of the weights"


def test_cli_ls_show_pull(
    built: BuildResult, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = built.engine_keys[0]
    assert main(["engine", "ls"]) == 0
    out = capsys.readouterr().out
    assert key in out and built.plan.checkpoint.key in out
    assert main(["engine", "show", key[:10]]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["fingerprint_inputs"]["checkpoint"] == built.plan.checkpoint.key
    assert main(["engine", "pull", key, "--dest", str(tmp_path / "e")]) == 0
    assert (
        json.loads((tmp_path / "e" / "config.json").read_text())["checkpoint_key"]
        == built.plan.checkpoint.key
    )
    assert main(["engine", "pull", "0123456789abcdef", "--dest", str(tmp_path / "x")]) == 2
    assert "0123456789abcdef" in capsys.readouterr().err
    # An OS error (here: the destination's parent is a file) is one clear line, not a traceback.
    (tmp_path / "file").write_text("")
    assert main(["engine", "pull", key, "--dest", str(tmp_path / "file" / "e")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "file") in err and "Traceback" not in err


def test_failed_build_exits_1_and_publishes_nothing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "broken-model"
    model.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "vocab_size": 100,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
    }
    (model / "config.json").write_text(json.dumps(config))
    (model / "model.safetensors").write_bytes(b"this is not a safetensors file")
    recipe = tmp_path / "broken.yaml"
    recipe.write_text(
        f"name: broken\nmodel:\n  local: {model}\ndtype: float32\n"
        "build:\n  max_input_len: 64\n  max_seq_len: 128\n  max_num_tokens: 128\n"
    )
    assert main(["engine", "build", str(recipe)]) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "convert" in line and "SafetensorError" in line
    assert "failed after" in err
    assert main(["engine", "ls", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert all("local_files" not in m["fingerprint_inputs"].get("source", {}) for m in listed)


def test_bad_recipe_exits_2_before_any_download(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["engine", "build", "smollm2-135m", "--set", "parallelism.tp=2"]) == 2
    err = capsys.readouterr().err
    assert "parallelism.tp=2" in err and "9 attention heads" in err
    assert main(["engine", "build", "no-such-recipe"]) == 2
    assert main(["engine", "build", "smollm2-135m", "--set", "parallelism.tpp=3"]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_dry_run_prints_trtllm_commands_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["engine", "build", "llama-3.1-70b-instruct", "--backend", "trtllm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "stage checkpoint" in out and "stage engine [H100-SXM sm90]" in out
    assert "quantize.py" in out and "--qformat fp8" in out and "--tp_size 8" in out
    assert "trtllm-build" in out and "--max_batch_size 128" in out
    assert "provisional" in out  # offline: the revision is not resolved
