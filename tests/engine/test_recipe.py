"""The recipe schema, --set overrides and settings resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_llm.engine.recipe import (
    apply_overrides,
    list_recipes,
    load_recipe,
    parse_set_value,
    recipe_from_mapping,
)
from triton_llm.errors import ConfigError, NotFoundError, RecipeError, RecipeErrors
from triton_llm.settings import load_settings

SHIPPED = [
    "smollm2-135m",
    "smollm2-135m-int8wo",
    "llama-3.1-8b-instruct",
    "llama-3.1-70b-instruct",
    "llama-3.1-8b-instruct-awq",
]


def test_every_shipped_recipe_loads() -> None:
    names = set(list_recipes())
    assert set(SHIPPED) <= names
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name


def test_shipped_recipes_cover_the_required_set() -> None:
    r70 = load_recipe("llama-3.1-70b-instruct")
    assert (r70.quantization.format, r70.parallelism.tp) == ("fp8", 8)
    r8 = load_recipe("llama-3.1-8b-instruct")
    assert (r8.quantization.format, r8.parallelism.tp) == ("fp8", 1)
    assert load_recipe("llama-3.1-8b-instruct-awq").quantization.format == "int4_awq"
    default = load_recipe("smollm2-135m")
    assert default.model.hf == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert default.model.offline_fallback == "smollm2-135m-instruct"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3", 3),
        ("true", True),
        ("0.5", 0.5),
        ("fp8", "fp8"),
        ("{H100-SXM,L40S}", ["H100-SXM", "L40S"]),
        ("", ""),
        ("null", None),
        ("{}", []),
    ],
)
def test_set_values_are_typed_like_helm(raw: str, value: object) -> None:
    assert parse_set_value(raw) == value


def test_overrides_apply_nested_and_indexed_fields() -> None:
    data = {"name": "x", "parallelism": {"tp": 1}}
    out = apply_overrides(
        data, ["parallelism.tp=3", "build.plugins.gemm_plugin=disable", "target.gpus[1]=L4"]
    )
    assert out["parallelism"]["tp"] == 3
    assert out["build"]["plugins"]["gemm_plugin"] == "disable"
    assert out["target"]["gpus"] == [None, "L4"]
    assert data == {"name": "x", "parallelism": {"tp": 1}}, "input mapping must not change"


def test_override_changes_the_loaded_recipe() -> None:
    recipe = load_recipe("smollm2-135m", overrides=["parallelism.tp=3", "quantization.format=int8_wo"])
    assert recipe.parallelism.tp == 3
    assert recipe.quantization.format == "int8_wo"


@pytest.mark.parametrize("bad", ["parallelism.tp", "=3", "a..b=1", "x[=1"])
def test_malformed_override_is_rejected(bad: str) -> None:
    with pytest.raises(RecipeError, match=r"expected field\.path=value"):
        apply_overrides({}, [bad])


def test_override_into_a_scalar_is_rejected() -> None:
    with pytest.raises(RecipeError, match="dtype is not a mapping"):
        apply_overrides({"dtype": "float32"}, ["dtype.x=1"])


@pytest.mark.parametrize(
    ("override", "field", "fragment"),
    [
        ("parallelism.tpp=2", "parallelism.tpp", "unknown key"),
        ("quantisation.format=fp8", "quantisation", "unknown key"),
        ("build.max_batch_size=many", "build.max_batch_size", "'many'"),
        ("quantization.format=fp4", "quantization.format", "'fp4'"),
        ("parallelism.tp=0", "parallelism.tp", "greater than or equal to 1"),
        ("dtype=float64", "dtype", "'float64'"),
        ("quantization.group_size=32", "quantization", "group_size must be 64 or 128"),
        ("build.max_input_len=4096", "build", "must be below max_seq_len"),
        ("model.local=/tmp", "model", "exactly one of hf, local, s3, builtin"),
    ],
)
def test_schema_errors_name_field_and_value(override: str, field: str, fragment: str) -> None:
    with pytest.raises(RecipeErrors) as info:
        load_recipe("smollm2-135m", overrides=[override])
    (error,) = info.value.errors
    assert error.field == field
    assert fragment in str(error)
    assert "smollm2-135m.yaml" in str(error)


def test_every_schema_error_is_reported_at_once() -> None:
    with pytest.raises(RecipeErrors) as info:
        load_recipe("smollm2-135m", overrides=["bogus=1", "parallelism.tp=-1", "dtype=int3"])
    assert sorted(e.field for e in info.value.errors) == ["bogus", "dtype", "parallelism.tp"]


def test_s3_source_must_be_an_s3_uri() -> None:
    with pytest.raises(RecipeErrors, match="s3 must start with s3://"):
        recipe_from_mapping({"name": "x", "model": {"s3": "bucket/prefix"}})


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(NotFoundError) as info:
        load_recipe("smollm3")
    assert "smollm2-135m" in str(info.value)


def test_recipe_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nmodel:\n  local: /models/x\n")
    assert load_recipe(str(path)).model.local == Path("/models/x")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(tmp_path / "bad.yaml"))


def test_settings_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("store: s3://from-file/p\ntransfer:\n  max_concurrency: 3\n  retries: 1\n")
    env = {"TRITON_LLM_STORE": "s3://from-env/p", "TRITON_LLM_TRANSFER__MAX_CONCURRENCY": "7"}
    s = load_settings({}, environ=env, config_file=cfg)
    assert (s.store, s.transfer.max_concurrency, s.transfer.retries) == ("s3://from-env/p", 7, 1)
    s = load_settings({"store": "file:///flag"}, environ=env, config_file=cfg)
    assert s.store == "file:///flag"
    assert load_settings(
        {}, environ={"XDG_CACHE_HOME": str(tmp_path)}, config_file=tmp_path / "none"
    ).store_uri() == ((tmp_path / "triton-llm" / "store").as_uri())


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"TRITON_LLM_TRANSFER__MAX_CONCURRENCY": "lots"}, "transfer.max_concurrency"),
        ({"TRITON_LLM_STOER": "x"}, "stoer"),
    ],
)
def test_bad_settings_name_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, environ=env, config_file=Path("/nonexistent"))
    assert info.value.field == field
