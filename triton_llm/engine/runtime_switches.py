"""Build features that need a runtime switch: one table, used by the build and by the render.

TensorRT-LLM 1.2 can use KV-cache reuse and chunked context only if the engine was built for
them, and it says so quietly: without paged context FMHA (or with context logits) it turns
reuse off with a warning, and chunked context without paged context FMHA fails the model
load. The facts, with their sources, are the ``build_runtime_pairs`` topic of
``triton_llm/repository/tensorrtllm_backend_1_2.json``; a test checks this table against them.

:func:`recipe_features` and :func:`engine_features` give the same feature mapping for a
recipe (checked by ``engine build``) and for an engine's ``config.json`` (checked by
``repo render``); :func:`switch_problems` and :func:`runtime_switches` then apply one rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from triton_llm.engine.recipe import Recipe, Serving


@dataclass(frozen=True)
class SwitchNeed:
    """A runtime switch that only works if an engine feature has ``engine_value_needed``."""

    runtime_parameter: str
    serving_field: str
    build_field: str
    feature: str
    engine_value_needed: bool
    if_violated: str


NEEDS: tuple[SwitchNeed, ...] = (
    SwitchNeed(
        "enable_kv_cache_reuse",
        "serving.enable_kv_cache_reuse",
        "build.features.use_paged_context_fmha",
        "use_paged_context_fmha",
        True,
        "TensorRT-LLM would silently turn KV-cache reuse off",
    ),
    SwitchNeed(
        "enable_kv_cache_reuse",
        "serving.enable_kv_cache_reuse",
        "build.features.gather_context_logits",
        "gather_context_logits",
        False,
        "TensorRT-LLM would silently turn KV-cache reuse off",
    ),
    SwitchNeed(
        "enable_chunked_context",
        "serving.enable_chunked_context",
        "build.features.use_paged_context_fmha",
        "use_paged_context_fmha",
        True,
        "the tensorrt_llm model would fail to load",
    ),
)

# Where trtllm-build 1.2 writes each feature in the engine's config.json, and its default.
ENGINE_CONFIG_PATHS: dict[str, tuple[str, ...]] = {
    "use_paged_context_fmha": ("build_config", "plugin_config", "use_paged_context_fmha"),
    "paged_kv_cache": ("build_config", "plugin_config", "paged_kv_cache"),
    "kv_cache_type": ("build_config", "kv_cache_type"),
    "gather_context_logits": ("build_config", "gather_context_logits"),
    "max_beam_width": ("build_config", "max_beam_width"),
    "remove_input_padding": ("build_config", "plugin_config", "remove_input_padding"),
}
ENGINE_CONFIG_DEFAULTS: dict[str, Any] = {
    "use_paged_context_fmha": True,
    "kv_cache_type": "PAGED",
    "gather_context_logits": False,
    "max_beam_width": 1,
    "remove_input_padding": True,
}
FEATURES = ("use_paged_context_fmha", "paged_kv_cache", "gather_context_logits", "remove_input_padding")


def _lookup(config: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = config
    for part in path:
        if not isinstance(node, Mapping) or node.get(part) is None:
            return None
        node = node[part]
    return node


def engine_features(engine_config: Mapping[str, Any]) -> dict[str, Any]:
    """The build features of a ``trtllm-build`` config.json (missing keys take its defaults)."""
    found = {name: _lookup(engine_config, path) for name, path in ENGINE_CONFIG_PATHS.items()}
    values: dict[str, Any] = {
        name: ENGINE_CONFIG_DEFAULTS.get(name) if v is None else v for name, v in found.items()
    }
    if found["paged_kv_cache"] is None:  # trtllm-build keeps both; kv_cache_type is the newer one
        values["paged_kv_cache"] = str(values["kv_cache_type"]).upper() == "PAGED"
    features: dict[str, Any] = {name: bool(values[name]) for name in FEATURES}
    features["max_beam_width"] = int(values["max_beam_width"])
    return features


def recipe_features(recipe: Recipe) -> dict[str, Any]:
    """The same mapping for the engine a recipe builds."""
    f = recipe.build.features
    return {
        "use_paged_context_fmha": f.use_paged_context_fmha,
        "paged_kv_cache": f.paged_kv_cache,
        "gather_context_logits": f.gather_context_logits,
        "remove_input_padding": f.remove_input_padding,
        "max_beam_width": recipe.build.max_beam_width,
    }


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def switch_problems(features: Mapping[str, Any], serving: Serving) -> list[tuple[SwitchNeed, str]]:
    """Each switch the serving settings turn on explicitly that the engine cannot honour.

    Returns:
        (need, message) pairs; the message names the serving field and the build field.
    """
    problems: list[tuple[SwitchNeed, str]] = []
    for need in NEEDS:
        asked = getattr(serving, need.serving_field.removeprefix("serving."))
        have = features[need.feature]
        if asked is True and have != need.engine_value_needed:
            problems.append(
                (
                    need,
                    f"{need.serving_field}=true needs an engine built with {need.build_field}="
                    f"{_show(need.engine_value_needed)} (it has {need.feature}={_show(have)}): "
                    f"{need.if_violated}; set {need.serving_field}=false, or build with "
                    f"{need.build_field}={_show(need.engine_value_needed)}",
                )
            )
    return problems


def runtime_switches(features: Mapping[str, Any], serving: Serving) -> dict[str, bool]:
    """The value of each runtime switch: the serving setting, or (null) what the engine supports.

    Call :func:`switch_problems` first: an explicit ``true`` the engine cannot honour is an
    error there, and rendered here as what the engine can do (``false``).
    """
    values: dict[str, bool] = {}
    for need in NEEDS:
        able = features[need.feature] == need.engine_value_needed
        asked = getattr(serving, need.serving_field.removeprefix("serving."))
        on = able and asked is not False
        values[need.runtime_parameter] = values.get(need.runtime_parameter, True) and on
    return values


def inflight_batching_problems(features: Mapping[str, Any]) -> list[str]:
    """Engine features without which TensorRT-LLM's inflight batching cannot load the engine."""
    problems = []
    if not features["paged_kv_cache"]:
        problems.append("a paged KV cache (build.features.paged_kv_cache / kv_cache_type PAGED)")
    if not features["remove_input_padding"]:
        problems.append("packed input (build.features.remove_input_padding)")
    return problems
