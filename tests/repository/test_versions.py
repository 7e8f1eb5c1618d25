"""The versioned repository layout: pure plans and the files they write (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.repository.test_render import CHECKPOINT, ENGINE, engine_config
from triton_llm.engine.recipe import Serving
from triton_llm.errors import IncompatibleError
from triton_llm.repository import _pb
from triton_llm.repository.render import plan_parameters, render_files
from triton_llm.repository.versions import (
    ROUTER_MODELS,
    STATE_FILE,
    VERSIONED_MODELS,
    add_version,
    drop_version,
    parse_parameters,
    plan_configs,
    read_state,
    write_configs,
)


def files_for(key: str, *, batch: int = 8, seq: int = 2048, backend: str | None = "cpu") -> dict[str, bytes]:
    config = engine_config(backend, batch=batch)
    config["build_config"]["max_seq_len"] = seq
    params = plan_parameters(
        config,
        serving=Serving(),
        engine_dir=ENGINE / key,
        tokenizer_dir=ENGINE / key / "tokenizer",
        checkpoint_dir=CHECKPOINT if backend == "cpu" else None,
        engine_key=key,
    )
    return render_files(params, cpu=backend == "cpu")


def parsed(data: bytes) -> model_config_pb2.ModelConfig:
    return text_format.Parse(data.decode(), model_config_pb2.ModelConfig())


def test_first_engine_is_version_1_serving_with_routers(tmp_path: Path) -> None:
    state, record = add_version(tmp_path, files_for("a" * 64), engine_key="a" * 64)
    assert (record.version, state.serving, state.loaded, state.history) == (1, 1, [1], [1])
    for model in VERSIONED_MODELS:
        version_file = json.loads((tmp_path / model / "1" / "version.json").read_text())
        assert version_file["engine_key"] == "a" * 64
        config = parsed((tmp_path / model / "config.pbtxt").read_bytes())
        assert list(config.version_policy.specific.versions) == [1]
    assert (tmp_path / "tensorrt_llm" / "1" / "model.py").is_file()
    ensemble = parsed((tmp_path / "ensemble" / "config.pbtxt").read_bytes())
    assert {s.model_version for s in ensemble.ensemble_scheduling.step} == {1}
    bls = parsed((tmp_path / "tensorrt_llm_bls" / "config.pbtxt").read_bytes())
    assert bls.parameters["tensorrt_llm_model_version"].string_value == "1"
    assert bls.parameters["engine_key"].string_value == "a" * 64
    assert (tmp_path / "tensorrt_llm_bls" / "1" / "model.py").is_file()
    assert read_state(tmp_path) == state


def test_next_version_changes_no_loaded_config_until_it_is_loaded(tmp_path: Path) -> None:
    add_version(tmp_path, files_for("a" * 64), engine_key="a" * 64)
    before = {m: (tmp_path / m / "config.pbtxt").read_bytes() for m in (*VERSIONED_MODELS, *ROUTER_MODELS)}
    state, record = add_version(tmp_path, files_for("b" * 64, seq=1792), engine_key="b" * 64)
    assert record.version == 2 and state.serving == 1
    assert {m: (tmp_path / m / "config.pbtxt").read_bytes() for m in before} == before
    # version 2's own parameters (its limits, its key) live next to it, for the python models to overlay
    llm2 = json.loads((tmp_path / "tensorrt_llm" / "2" / "version.json").read_text())["parameters"]
    assert llm2["max_seq_len"] == "1792"
    post2 = json.loads((tmp_path / "postprocessing" / "2" / "version.json").read_text())["parameters"]
    assert post2["engine_key"] == "b" * 64 and post2["tensorrt_llm_model_version"] == "2"


def test_loading_two_versions_changes_only_the_version_policy(tmp_path: Path) -> None:
    add_version(tmp_path, files_for("a" * 64), engine_key="a" * 64)
    state, _ = add_version(tmp_path, files_for("b" * 64, seq=1792), engine_key="b" * 64)
    one = {m: parsed((tmp_path / m / "config.pbtxt").read_bytes()) for m in VERSIONED_MODELS}
    state.loaded = [1, 2]
    assert sorted(write_configs(tmp_path, state)) == sorted(VERSIONED_MODELS)
    for model in VERSIONED_MODELS:
        both = parsed((tmp_path / model / "config.pbtxt").read_bytes())
        assert list(both.version_policy.specific.versions) == [1, 2]
        both.ClearField("version_policy")
        one[model].ClearField("version_policy")
        assert both == one[model], f"{model}: Triton would reload version 1"
    state.serving = 2
    assert sorted(write_configs(tmp_path, state)) == sorted(ROUTER_MODELS)
    ensemble = parsed((tmp_path / "ensemble" / "config.pbtxt").read_bytes())
    assert {s.model_version for s in ensemble.ensemble_scheduling.step} == {2}
    # unloading version 1 later leaves the shared parameters alone as well (version 1's forever)
    state.loaded = [2]
    configs = plan_configs(state)
    llm = parsed(configs["tensorrt_llm/config.pbtxt"])
    assert llm.parameters["max_seq_len"].string_value == "2048"


def test_python_models_read_their_version_parameters(tmp_path: Path) -> None:
    add_version(tmp_path, files_for("a" * 64), engine_key="a" * 64)
    add_version(tmp_path, files_for("b" * 64, seq=1792), engine_key="b" * 64)
    config = parsed((tmp_path / "tensorrt_llm" / "config.pbtxt").read_bytes())
    from google.protobuf.json_format import MessageToJson

    args = {
        "model_config": MessageToJson(config, preserving_proto_field_name=True),
        "model_repository": str(tmp_path / "tensorrt_llm"),
    }
    assert _pb.model_parameters({**args, "model_version": "1"})["max_seq_len"] == "2048"
    assert _pb.model_parameters({**args, "model_version": "2"})["max_seq_len"] == "1792"
    assert _pb.model_parameters({"model_config": args["model_config"]})["max_seq_len"] == "2048"


@pytest.mark.parametrize(
    ("changed", "words"),
    [
        ({"batch": 4}, "differs beyond its parameters"),
        ({"backend": None}, "replica level"),
    ],
)
def test_an_engine_that_cannot_share_the_configs_is_refused(
    tmp_path: Path, changed: dict, words: str
) -> None:
    add_version(tmp_path, files_for("a" * 64), engine_key="a" * 64)
    with pytest.raises(IncompatibleError, match=words):
        add_version(tmp_path, files_for("c" * 64, **changed), engine_key="c" * 64)
    state = read_state(tmp_path)
    assert state is not None and sorted(state.versions) == [1]
    assert not (tmp_path / "tensorrt_llm" / "2").exists()


def test_a_refused_version_is_forgotten(tmp_path: Path) -> None:
    add_version(tmp_path, files_for("a" * 64), engine_key="a" * 64)
    state, _ = add_version(tmp_path, files_for("b" * 64), engine_key="b" * 64)
    drop_version(tmp_path, state, 2)
    assert sorted(read_state(tmp_path).versions) == [1]  # type: ignore[union-attr]
    assert not any((tmp_path / m / "2").exists() for m in VERSIONED_MODELS)
    assert json.loads((tmp_path / STATE_FILE).read_text())["serving"] == 1


def test_parse_parameters_reads_what_render_writes() -> None:
    text = files_for("a" * 64)["tensorrt_llm/config.pbtxt"].decode()
    params = parse_parameters(text)
    assert params["checkpoint_dir"] == str(CHECKPOINT) and params["max_seq_len"] == "2048"
    assert parse_parameters('parameters { key: "p", value: { string_value: "a\\"b\\\\c" } }') == {
        "p": 'a"b\\c'
    }
