"""The build feature <-> runtime switch table matches the recorded 1.2 backend facts."""

from __future__ import annotations

import importlib.resources
import json

from triton_llm.engine.backends.trtllm_facts import flag_spec
from triton_llm.engine.recipe import Features, load_recipe
from triton_llm.engine.runtime_switches import (
    ENGINE_CONFIG_DEFAULTS,
    ENGINE_CONFIG_PATHS,
    NEEDS,
    engine_features,
    recipe_features,
)

FACTS = json.loads(
    importlib.resources.files("triton_llm.repository").joinpath("tensorrtllm_backend_1_2.json").read_text()
)


def test_switch_table_is_the_facts_table() -> None:
    pairs = [p for p in FACTS["build_runtime_pairs"]["pairs"] if not p.get("copy")]
    facts = {
        (
            p["runtime_parameter"],
            p["serving_field"],
            p["build_field"],
            p["engine_config"],
            p["engine_value_needed"],
        )
        for p in pairs
    }
    table = {
        (n.runtime_parameter, n.serving_field, n.build_field, n.feature, n.engine_value_needed) for n in NEEDS
    }
    assert table == facts


def test_engine_config_paths_and_defaults_are_the_facts() -> None:
    assert {k: list(v) for k, v in ENGINE_CONFIG_PATHS.items()} == FACTS["engine_config"]["paths"]
    assert FACTS["engine_config"]["defaults"] == ENGINE_CONFIG_DEFAULTS


def test_paged_context_fmha_defaults_on_as_in_trtllm_build_1_2_1() -> None:
    assert flag_spec("trtllm-build", "--use_paged_context_fmha")["default"] == "enable"
    assert Features().use_paged_context_fmha is True
    assert ENGINE_CONFIG_DEFAULTS["use_paged_context_fmha"] is True


def test_a_recipe_and_the_engine_it_builds_have_the_same_features() -> None:
    recipe = load_recipe("llama-3.1-8b-instruct", overrides=["build.features.gather_context_logits=true"])
    f = recipe.build.features
    engine_config = {
        "build_config": {
            "max_beam_width": recipe.build.max_beam_width,
            "kv_cache_type": "PAGED" if f.paged_kv_cache else "CONTINUOUS",
            "gather_context_logits": f.gather_context_logits,
            "plugin_config": {
                "use_paged_context_fmha": f.use_paged_context_fmha,
                "paged_kv_cache": f.paged_kv_cache,
                "remove_input_padding": f.remove_input_padding,
            },
        }
    }
    assert recipe_features(recipe) == engine_features(engine_config)


def test_kv_cache_type_alone_decides_paged_kv_cache() -> None:
    assert engine_features({"build_config": {"kv_cache_type": "continuous"}})["paged_kv_cache"] is False
    assert engine_features({"build_config": {"kv_cache_type": "PAGED"}})["paged_kv_cache"] is True
