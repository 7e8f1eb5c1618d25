"""The recipe schema: one typed description of an engine build.

A recipe is YAML in ``engines/<name>.yaml``. Loading applies ``--set`` overrides to the
raw mapping first (as ``helm --set`` does), then validates once, so a typo in a key or
an override is an error that names the field. Model-dependent rules (tp divides heads,
...) live in :mod:`triton_llm.engine.validate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from triton_llm._package_data import RECIPES, data_dir
from triton_llm.errors import NotFoundError, RecipeError, RecipeErrors

QuantFormat = Literal["none", "fp8", "int8_sq", "int4_awq", "w4a8_awq", "int8_wo", "int4_wo", "nvfp4"]
Dtype = Literal["float16", "bfloat16", "float32"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    """Where the Hugging Face-format checkpoint comes from: exactly one of hf, local, s3, builtin."""

    hf: str | None = Field(None, description="Hugging Face repo id, e.g. meta-llama/Llama-3.1-8B-Instruct")
    revision: str = Field("main", description="branch, tag or commit sha for hf")
    allow_patterns: tuple[str, ...] = Field(
        ("*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken", "*.txt"),
        description="files fetched from hf or s3",
    )
    local: Path | None = Field(None, description="local directory with config.json and weights")
    s3: str | None = Field(None, description="s3://bucket/prefix holding a Hugging Face checkpoint")
    builtin: Literal["smollm2-135m-instruct"] | None = Field(
        None, description="a checkpoint shipped in a Python package (offline default)"
    )
    offline_fallback: Literal["smollm2-135m-instruct"] | None = Field(
        None, description="builtin used when hf cannot be reached (HF_HUB_OFFLINE or no network)"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        chosen = [k for k in ("hf", "local", "s3", "builtin") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(f"set exactly one of hf, local, s3, builtin (got {chosen or 'none'})")
        if self.s3 is not None and not self.s3.startswith("s3://"):
            raise ValueError(f"s3 must start with s3:// (got {self.s3!r})")
        if self.offline_fallback and self.hf is None:
            raise ValueError("offline_fallback only applies to an hf source")
        return self


class Calibration(_Strict):
    """Calibration data for ModelOpt quantization (fp8, int8_sq, *_awq, nvfp4)."""

    dataset: str = Field("cnn_dailymail", description="dataset name or local path")
    size: int = Field(512, ge=1, description="number of calibration samples")
    max_seq_len: int = Field(512, ge=1, description="tokens per calibration sample")
    batch_size: int = Field(1, ge=1)


class Quantization(_Strict):
    """Weight/activation and KV-cache quantization."""

    format: QuantFormat = "none"
    kv_cache_dtype: Literal["auto", "fp8", "int8"] = Field("auto", description="auto = the model dtype")
    group_size: int = Field(128, description="AWQ group size")
    calibration: Calibration = Field(default_factory=Calibration)

    @model_validator(mode="after")
    def _group(self) -> Quantization:
        if self.group_size not in (64, 128):
            raise ValueError(f"group_size must be 64 or 128 (got {self.group_size})")
        return self


class Parallelism(_Strict):
    """Tensor and pipeline parallel sizes; world size = tp * pp ranks."""

    tp: int = Field(1, ge=1, le=64)
    pp: int = Field(1, ge=1, le=64)

    @property
    def world_size(self) -> int:
        return self.tp * self.pp


class Plugins(_Strict):
    """trtllm-build plugin switches. ``auto`` lets TensorRT-LLM pick the model dtype."""

    gpt_attention_plugin: Literal["auto", "float16", "bfloat16", "float32", "disable"] = "auto"
    gemm_plugin: Literal["auto", "float16", "bfloat16", "float32", "fp8", "nvfp4", "disable"] = "auto"
    nccl_plugin: Literal["auto", "float16", "bfloat16", "float32", "disable"] = "auto"


class Features(_Strict):
    """trtllm-build feature switches."""

    paged_kv_cache: bool = True
    remove_input_padding: bool = True
    context_fmha: bool = True
    use_paged_context_fmha: bool = Field(
        True, description="as trtllm-build 1.2.1; KV-cache reuse and chunked context need it"
    )
    use_fused_mlp: bool = True
    multiple_profiles: bool = False
    reduce_fusion: bool = False
    tokens_per_block: int = Field(32, ge=8)
    gather_context_logits: bool = False


class BuildConfig(_Strict):
    """Engine limits and switches: everything here changes the engine key."""

    max_batch_size: int = Field(8, ge=1)
    max_input_len: int = Field(1024, ge=1)
    max_seq_len: int = Field(2048, ge=2)
    max_num_tokens: int = Field(8192, ge=1)
    max_beam_width: int = Field(1, ge=1)
    plugins: Plugins = Field(default_factory=Plugins)
    features: Features = Field(default_factory=Features)

    @model_validator(mode="after")
    def _limits(self) -> BuildConfig:
        if self.max_input_len >= self.max_seq_len:
            raise ValueError(
                f"max_input_len ({self.max_input_len}) must be below max_seq_len ({self.max_seq_len})"
            )
        return self


class Target(_Strict):
    """GPUs the engine is built for; one engine per SKU (names in triton_llm.engine.gpus)."""

    gpus: tuple[str, ...] = ()


class Serving(_Strict):
    """Runtime settings that do not change the artifacts, so they are not in any cache key."""

    batching_strategy: Literal["inflight_fused_batching"] = "inflight_fused_batching"
    batch_scheduler_policy: Literal["guaranteed_no_evict", "max_utilization"] = "guaranteed_no_evict"
    kv_cache_free_gpu_mem_fraction: float = Field(0.9, gt=0, le=1)
    enable_kv_cache_reuse: bool | None = Field(
        None, description="reuse cached prompt prefixes; null = on when the engine supports it"
    )
    enable_chunked_context: bool | None = Field(
        None, description="split long prompts into chunks; null = on when the engine supports it"
    )
    cancellation_check_period_ms: int = Field(
        100, ge=1, description="how often the GPU backend looks for cancelled requests"
    )
    stats_check_period_ms: int = Field(100, ge=1, description="how often the GPU backend reports statistics")
    max_queue_delay_microseconds: int = Field(0, ge=0)
    preprocessing_instances: int = Field(1, ge=1)
    postprocessing_instances: int = Field(1, ge=1)
    decoupled: bool = True
    exclude_input_in_output: bool = True
    chat_template: bool = Field(True, description="apply the tokenizer's chat template in preprocessing")
    threads: int = Field(0, ge=0, description="CPU runtime threads per rank; 0 = all cores")


class Recipe(_Strict):
    """A complete engine recipe."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    description: str = ""
    model: ModelSource
    dtype: Dtype = "bfloat16"
    quantization: Quantization = Field(default_factory=Quantization)
    parallelism: Parallelism = Field(default_factory=Parallelism)
    build: BuildConfig = Field(default_factory=BuildConfig)
    target: Target = Field(default_factory=Target)
    serving: Serving = Field(default_factory=Serving)


# --- loading ------------------------------------------------------------------------------

_SET_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?)*$")


def builtin_engines_dir() -> Path:
    """The recipes of the top-level ``engines/`` folder, shipped as package data (``triton_llm.recipes``)."""
    return data_dir(RECIPES)


def recipe_search_path(extra: Path | None = None) -> list[Path]:
    """Folders searched for recipe names, first match wins."""
    dirs = [Path.cwd() / "engines"]
    if extra is not None:
        dirs.insert(0, extra)
    dirs.append(builtin_engines_dir())
    seen: list[Path] = []
    for d in dirs:
        if d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def list_recipes(extra: Path | None = None) -> dict[str, Path]:
    """Recipe names found on the search path, mapped to their files."""
    found: dict[str, Path] = {}
    for d in recipe_search_path(extra):
        for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            found.setdefault(f.stem, f)
    return found


def resolve_recipe_path(name_or_path: str, *, extra_dir: Path | None = None) -> Path:
    """A recipe name in ``engines/`` or a path to a YAML file.

    Raises:
        NotFoundError: neither a file nor a known recipe name.
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise NotFoundError(f"recipe file {p} does not exist", path=str(p))
        return p
    recipes = list_recipes(extra_dir)
    if name_or_path in recipes:
        return recipes[name_or_path]
    known = ", ".join(sorted(recipes)) or "none"
    raise NotFoundError(
        f"no recipe named {name_or_path!r}",
        value=name_or_path,
        hint=f"known recipes: {known}; or pass a path to a YAML file",
    )


def parse_set_value(raw: str) -> Any:
    """Parse an override value the way ``helm --set`` does: scalars typed, ``{a,b}`` a list."""
    if raw.startswith("{") and raw.endswith("}"):
        inner = raw[1:-1]
        return [parse_set_value(x) for x in inner.split(",")] if inner else []
    if raw == "":
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, (str, int, float, bool)) or value is None else raw


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``field.path=value`` overrides to a raw recipe mapping (returns a new mapping).

    Raises:
        RecipeError: an override is not ``key=value`` or walks into a non-mapping.
    """
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _SET_KEY.match(key):
            raise RecipeError(
                f"--set {item!r}: expected field.path=value, e.g. parallelism.tp=3",
                field=key or None,
                value=item,
            )
        parts = key.split(".")
        node: Any = out
        for i, part in enumerate(parts):
            name, _, idx = part.partition("[")
            last = i == len(parts) - 1
            if not isinstance(node, dict):
                raise RecipeError(
                    f"--set {key}: {'.'.join(parts[:i])} is not a mapping", field=key, value=raw
                )
            if idx:
                index = int(idx.rstrip("]"))
                lst = node.setdefault(name, [])
                if not isinstance(lst, list):
                    raise RecipeError(f"--set {key}: {name} is not a list", field=key, value=raw)
                while len(lst) <= index:
                    lst.append(None)
                if last:
                    lst[index] = parse_set_value(raw)
                else:
                    if not isinstance(lst[index], dict):
                        lst[index] = {}
                    node = lst[index]
            elif last:
                node[name] = parse_set_value(raw)
            else:
                child = node.get(name)
                if child is None:
                    child = node[name] = {}
                node = child
    return out


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _schema_errors(e: ValidationError, *, source: str, prefix: tuple[str, ...] = ()) -> RecipeErrors:
    """Every pydantic problem as a RecipeError naming its recipe field and value."""
    errors: list[RecipeError] = []
    for err in e.errors():
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field = _format_loc(loc)
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            msg = f"{field}: unknown key (rule: recipe keys are fixed; check the spelling)"
        elif err["type"] == "missing":
            msg = f"{field}: required key is missing"
        else:
            shown = value if not isinstance(value, dict) else "{...}"
            rule = err["msg"].removeprefix("Value error, ")
            msg = f"{field}={shown!r}: {rule}" if field else f"{rule}"
        errors.append(RecipeError(f"{source}: {msg}", field=field, value=value, path=source))
    return RecipeErrors(errors)


def recipe_from_mapping(data: dict[str, Any], *, source: str = "<recipe>") -> Recipe:
    """Validate a raw mapping into a :class:`Recipe`.

    Raises:
        RecipeErrors: every schema problem at once, each naming its field and value.
    """
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise _schema_errors(e, source=source) from e


def serving_from_overrides(
    overrides: Iterable[str], *, base: dict[str, Any] | None = None, source: str = "<serving>"
) -> Serving:
    """Serving settings for an engine that is already built: ``base`` (default: the schema's
    defaults) with ``--set serving.x=y`` overrides, validated like a recipe.

    Raises:
        RecipeError: an override outside ``serving.`` (it would change the engine) or malformed.
        RecipeErrors: schema problems, each naming its ``serving.`` field.
    """
    overrides = list(overrides)
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not key.startswith("serving."):
            raise RecipeError(
                f"--set {item!r}: only serving.* settings can change for an engine that is already built",
                field=key or None,
                value=item,
            )
    data = apply_overrides({"serving": dict(base or {})}, overrides)["serving"]
    try:
        return Serving.model_validate(data)
    except ValidationError as e:
        raise _schema_errors(e, source=source, prefix=("serving",)) from e


def load_recipe(
    name_or_path: str,
    *,
    overrides: Iterable[str] = (),
    extra_dir: Path | None = None,
) -> Recipe:
    """Load, override and validate a recipe by name or path.

    Raises:
        NotFoundError: no such recipe.
        RecipeError: bad YAML, a bad override, or a schema violation (all listed).
    """
    path = resolve_recipe_path(name_or_path, extra_dir=extra_dir)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}", path=str(path)) from e
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping", path=str(path))
    return recipe_from_mapping(apply_overrides(data, overrides), source=str(path))


def recipe_to_mapping(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain JSON-able data (paths as strings, tuples as lists)."""
    return recipe.model_dump(mode="json")
