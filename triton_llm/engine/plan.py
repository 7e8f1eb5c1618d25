"""Pure build planning: recipe + resolved source + backend -> stages with cache keys and steps.

A stage's ``actions`` are every step that produces its output directory, in order: the fetch
stage materializes the model folder (:func:`~triton_llm.engine.fetch.materialize`); the
checkpoint stage empties its directory, runs the backend's conversion and copies the tokenizer;
an engine stage empties its directory, runs the backend's engine build, copies the tokenizer
from the checkpoint and writes ``recipe.json``. The runner executes exactly these steps; what
it adds is the cache protocol (skip a stored stage, restore a stored checkpoint an engine needs,
publish what it built).

The cache keys (see README "Cache keys"):

- checkpoint key = fingerprint of {source identity, dtype, quantization (only the fields that
  format uses), tp/pp, backend name, backend toolchain versions};
- engine key = fingerprint of {checkpoint key, build config, backend name, toolchain versions,
  target GPU SKU + SM (None for the cpu backend)}.

Serving settings (instances, ports, KV-cache fraction, ...) are in no key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm.engine.backends.base import Action, BuildBackend, Call
from triton_llm.engine.fetch import ResolvedSource, materialize
from triton_llm.engine.fingerprint import fingerprint
from triton_llm.engine.gpus import GpuSku
from triton_llm.engine.local import RECIPE_FILE
from triton_llm.engine.recipe import Recipe
from triton_llm.engine.steps import copy_tokenizer, fresh_dir, write_recipe
from triton_llm.engine.validate import validate

CALIBRATED_FORMATS = ("fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4")
GROUPED_FORMATS = ("int4_awq", "w4a8_awq")


@dataclass(frozen=True)
class StagePlan:
    """One stage: its cache key, the inputs hashed into it, and what it would run."""

    stage: str  # fetch | checkpoint | engine
    key: str
    inputs: dict[str, Any]
    actions: tuple[Action, ...]  # every step that writes out_dir, in order
    out_dir: Path
    gpu: GpuSku | None = None

    @property
    def published(self) -> bool:
        """Whether a build publishes this stage to the store (the fetched model stays a local cache)."""
        return self.stage != "fetch"

    def publish_line(self, store_uri: str) -> str:
        """The publish step as ``--dry-run`` shows it and a build reports it."""
        return f"publish {self.stage}/{self.key} to {store_uri}"


@dataclass(frozen=True)
class BuildPlan:
    """Every stage of one recipe build, in order."""

    recipe: Recipe
    backend: str
    source: ResolvedSource
    model_dir: Path
    fetch: StagePlan
    checkpoint: StagePlan
    engines: tuple[StagePlan, ...]

    @property
    def stages(self) -> tuple[StagePlan, ...]:
        return (self.fetch, self.checkpoint, *self.engines)


def quantization_inputs(recipe: Recipe) -> dict[str, Any]:
    """The quantization settings that change the checkpoint for the recipe's format."""
    q = recipe.quantization
    out: dict[str, Any] = {"format": q.format, "kv_cache_dtype": q.kv_cache_dtype}
    if q.format in GROUPED_FORMATS:
        out["group_size"] = q.group_size
    if q.format in CALIBRATED_FORMATS or q.kv_cache_dtype != "auto":
        out["calibration"] = q.calibration.model_dump(mode="json")
    return out


def checkpoint_inputs(recipe: Recipe, source: ResolvedSource, backend: BuildBackend) -> dict[str, Any]:
    """What the checkpoint key hashes: nothing GPU-specific."""
    return {
        "stage": "checkpoint",
        "source": source.identity,
        "dtype": recipe.dtype,
        "quantization": quantization_inputs(recipe),
        "parallelism": {"tp": recipe.parallelism.tp, "pp": recipe.parallelism.pp},
        "backend": backend.name,
        "toolchain": backend.toolchain_versions(),
    }


def engine_inputs(
    recipe: Recipe, checkpoint_key: str, backend: BuildBackend, gpu: GpuSku | None
) -> dict[str, Any]:
    """What an engine key hashes: the checkpoint, build config, toolchain and GPU."""
    return {
        "stage": "engine",
        "checkpoint": checkpoint_key,
        "build": recipe.build.model_dump(mode="json"),
        "backend": backend.name,
        "toolchain": backend.toolchain_versions(),
        "gpu": None if gpu is None else {"sku": gpu.name, "sm": gpu.sm},
    }


def plan_build(
    recipe: Recipe,
    *,
    source: ResolvedSource,
    backend: BuildBackend,
    model_dir: Path,
    work_dir: Path,
    offline: bool = False,
) -> BuildPlan:
    """Validate the recipe and plan every stage and step (no effects).

    Args:
        model_dir: where the fetch stage puts the Hugging Face folder (``fetch.model_dir_for``).
        work_dir: stage outputs go to ``work_dir/<stage>/<key>``.
        offline: the fetch stage uses only the local Hugging Face cache.

    Raises:
        RecipeErrors: every recipe problem, before anything is fetched or built.
    """
    targets = validate(recipe, source.model_info, backend)
    fetch = StagePlan(
        stage="fetch",
        key=fingerprint({"stage": "fetch", "source": source.identity}),
        inputs={"source": source.identity},
        actions=(
            Call(
                f"fetch the {source.kind} model {source.location}",
                materialize,
                {"source": source, "into": model_dir, "offline": offline},
            ),
        ),
        out_dir=model_dir,
    )
    ck_inputs = checkpoint_inputs(recipe, source, backend)
    ck_key = fingerprint(ck_inputs)
    ck_dir = work_dir / "checkpoint" / ck_key
    checkpoint = StagePlan(
        stage="checkpoint",
        key=ck_key,
        inputs=ck_inputs,
        actions=(
            Call("start an empty checkpoint directory", fresh_dir, {"path": ck_dir}),
            *backend.plan_checkpoint(recipe, model_dir=model_dir, out_dir=ck_dir),
            Call(
                "copy the tokenizer into the checkpoint",
                copy_tokenizer,
                {"model_dir": model_dir, "dest": ck_dir / "tokenizer"},
            ),
        ),
        out_dir=ck_dir,
    )
    engines = []
    for gpu in targets:
        inputs = engine_inputs(recipe, ck_key, backend, gpu)
        key = fingerprint(inputs)
        out = work_dir / "engine" / key
        actions = (
            Call("start an empty engine directory", fresh_dir, {"path": out}),
            *backend.plan_engine(recipe, checkpoint_dir=ck_dir, out_dir=out, gpu=gpu, checkpoint_key=ck_key),
            Call(
                "copy the tokenizer into the engine",
                copy_tokenizer,
                {"model_dir": ck_dir / "tokenizer", "dest": out / "tokenizer"},
            ),
            Call(
                "write the recipe the engine was built from",
                write_recipe,
                {"recipe": recipe, "path": out / RECIPE_FILE},
            ),
        )
        engines.append(
            StagePlan(stage="engine", key=key, inputs=inputs, actions=actions, out_dir=out, gpu=gpu)
        )
    return BuildPlan(
        recipe=recipe,
        backend=backend.name,
        source=source,
        model_dir=model_dir,
        fetch=fetch,
        checkpoint=checkpoint,
        engines=tuple(engines),
    )
