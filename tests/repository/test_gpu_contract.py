"""The GPU ``tensorrt_llm`` config against the 1.2.x C++ backend's parameter contract.

Every expectation comes from ``triton_llm/repository/tensorrtllm_backend_1_2.json`` (the
facts read from the backend's sources): the keys it reads with no fallback, the type each
key is parsed as, the values it accepts, and which build features need a runtime switch.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import math
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from triton_llm.engine.recipe import Serving
from triton_llm.errors import ConfigError, IncompatibleError
from triton_llm.repository import plan_parameters, render_files, render_repository

ENGINE = Path("/engines/0123456789ab")
FACTS: dict[str, Any] = json.loads(
    importlib.resources.files("triton_llm.repository").joinpath("tensorrtllm_backend_1_2.json").read_text()
)
PARAMETERS: dict[str, dict[str, Any]] = FACTS["construction"]["parameters"]
CONVERSIONS = FACTS["construction"]["get_parameter"]["conversions"]


def trtllm_build_config(**build: Any) -> dict[str, Any]:
    """A config.json as ``trtllm-build`` 1.2 writes it (no ``backend`` key), with overrides."""
    config: dict[str, Any] = {
        "version": "1.2.1",
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "dtype": "bfloat16",
            "mapping": {"world_size": 2, "tp_size": 2, "pp_size": 1},
        },
        "build_config": {
            "max_batch_size": 64,
            "max_input_len": 1536,
            "max_seq_len": 2048,
            "max_beam_width": 1,
            "max_num_tokens": 8192,
            "kv_cache_type": "PAGED",
            "gather_context_logits": False,
            "plugin_config": {
                "use_paged_context_fmha": True,
                "paged_kv_cache": True,
                "context_fmha": True,
                "remove_input_padding": True,
                "tokens_per_block": 32,
            },
        },
    }
    for path, value in build.items():
        set_path(config, FACTS["engine_config"]["paths"][path], value)
    return config


def set_path(config: dict[str, Any], path: list[str], value: Any) -> None:
    node = config
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def gpu_config(engine_config: dict[str, Any] | None = None, serving: Serving | None = None) -> Any:
    params = plan_parameters(
        engine_config or trtllm_build_config(),
        serving=serving or Serving(),
        engine_dir=ENGINE,
        tokenizer_dir=ENGINE / "tokenizer",
    )
    text = render_files(params, cpu=False)["tensorrt_llm/config.pbtxt"].decode()
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def rendered_parameters(config: Any) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


def test_facts_list_the_known_mandatory_keys_with_their_source() -> None:
    required = {k for k, v in PARAMETERS.items() if v["required"]}
    assert {"gpt_model_type", "gpt_model_path", "tokenizer_dir"} <= required
    assert {"xgrammar_tokenizer_info_path", "guided_decoding_backend"} <= required
    for key, fact in PARAMETERS.items():
        assert fact["file"] in FACTS["source"]["files"], key
        assert isinstance(fact["line"], int) and fact["function"], key
        assert fact["type"] in (*CONVERSIONS, "string"), key


def test_gpu_render_has_every_mandatory_key() -> None:
    rendered = rendered_parameters(gpu_config())
    missing = [k for k, v in PARAMETERS.items() if v["required"] and k not in rendered]
    assert not missing, f"the 1.2 backend cannot construct the model without {missing}"
    when = {k: v["required_when"] for k, v in PARAMETERS.items() if "required_when" in v}
    for key, condition in when.items():
        if all(rendered.get(ck) == cv for ck, cv in condition.items()):
            assert key in rendered, f"{key} is required when {condition}"


def test_gpu_render_has_only_keys_the_backend_reads_each_with_a_value_it_parses() -> None:
    rendered = rendered_parameters(gpu_config())
    unknown = sorted(set(rendered) - set(PARAMETERS))
    assert not unknown, f"keys the tensorrtllm backend never reads: {unknown}"
    bools = CONVERSIONS["bool"]["true"] + CONVERSIONS["bool"]["false"]
    for key, value in rendered.items():
        kind = PARAMETERS[key]["type"]
        assert "${" not in value, key
        if kind == "float":
            assert math.isfinite(float(value)), key
        elif kind in FACTS["construction"]["get_parameter"]["numeric_types"]:
            assert int(value) >= 0 and str(int(value)) == value, key
        elif kind == "bool":
            assert value in bools, key
        accepted = FACTS["conditional"].get(key, {}).get("accepted")
        if accepted is not None:
            assert value in accepted, key


def test_guided_decoding_is_off_with_the_backends_own_empty_values() -> None:
    rendered = rendered_parameters(gpu_config())
    assert rendered["guided_decoding_backend"] == "" and rendered["xgrammar_tokenizer_info_path"] == ""
    assert rendered["tokenizer_dir"] == str(ENGINE / "tokenizer")
    assert rendered["gpt_model_type"] == "inflight_fused_batching"
    assert rendered["gpt_model_path"] == str(ENGINE)


def test_cancellation_and_stats_periods_come_from_serving() -> None:
    serving = Serving(cancellation_check_period_ms=20, stats_check_period_ms=250)
    rendered = rendered_parameters(gpu_config(serving=serving))
    assert rendered["cancellation_check_period_ms"] == "20"
    assert rendered["stats_check_period_ms"] == "250"


def test_no_placeholder_survives_in_any_gpu_file() -> None:
    params = plan_parameters(
        trtllm_build_config(), serving=Serving(), engine_dir=ENGINE, tokenizer_dir=ENGINE / "tokenizer"
    )
    for rel, data in render_files(params, cpu=False).items():
        assert b"${" not in data, rel


def test_gpt_model_path_is_the_existing_engine_dir(tmp_path: Path) -> None:
    engine = tmp_path / "engine"
    (engine / "tokenizer").mkdir(parents=True)
    (engine / "config.json").write_text(json.dumps(trtllm_build_config()))
    out = render_repository(engine, serving=Serving(), out=tmp_path / "repo")
    config = text_format.Parse(
        (out / "tensorrt_llm" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    path = Path(config.parameters["gpt_model_path"].string_value)
    assert path.is_dir() and (path / "config.json").is_file()


PAIRS = [p for p in FACTS["build_runtime_pairs"]["pairs"] if not p.get("copy")]
COPIES = [p for p in FACTS["build_runtime_pairs"]["pairs"] if p.get("copy")]


def _pair_id(pair: dict[str, Any]) -> str:
    return f"{pair['engine_config']}->{pair['runtime_parameter']}"


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_runtime_switch_follows_the_engine_build_feature(pair: dict[str, Any]) -> None:
    needed = pair["engine_value_needed"]
    able = rendered_parameters(gpu_config(trtllm_build_config(**{pair["engine_config"]: needed})))
    unable = rendered_parameters(gpu_config(trtllm_build_config(**{pair["engine_config"]: not needed})))
    assert able[pair["runtime_parameter"]] == "true"
    assert unable[pair["runtime_parameter"]] == "false"


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_asking_for_a_switch_the_engine_cannot_honour_is_an_error(pair: dict[str, Any]) -> None:
    field = pair["serving_field"].removeprefix("serving.")
    unable = trtllm_build_config(**{pair["engine_config"]: not pair["engine_value_needed"]})
    with pytest.raises(ConfigError) as caught:
        gpu_config(unable, Serving(**{field: True}))
    assert pair["serving_field"] in str(caught.value) and pair["engine_config"] in str(caught.value)
    off = rendered_parameters(gpu_config(unable, Serving(**{field: False})))
    assert off[pair["runtime_parameter"]] == "false"


@pytest.mark.parametrize("pair", COPIES, ids=_pair_id)
def test_runtime_value_is_copied_from_the_engine(pair: dict[str, Any]) -> None:
    rendered = rendered_parameters(gpu_config(trtllm_build_config(**{pair["engine_config"]: 4})))
    assert rendered[pair["runtime_parameter"]] == "4"


def test_kv_cache_type_continuous_cannot_serve_inflight_batching() -> None:
    config = trtllm_build_config(kv_cache_type="CONTINUOUS", paged_kv_cache=False)
    with pytest.raises(IncompatibleError, match="paged KV cache"):
        gpu_config(config)


def test_engine_config_keys_default_like_trtllm_build() -> None:
    config = copy.deepcopy(trtllm_build_config())
    for key in ("kv_cache_type", "gather_context_logits"):
        del config["build_config"][key]
    del config["build_config"]["plugin_config"]["use_paged_context_fmha"]
    del config["build_config"]["plugin_config"]["paged_kv_cache"]
    rendered = rendered_parameters(gpu_config(config))
    assert rendered["enable_kv_cache_reuse"] == "true" and rendered["enable_chunked_context"] == "true"
