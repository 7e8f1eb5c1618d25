"""Pure build planning: recipe + resolved source + backend -> stages with cache keys and actions.

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

from triton_llm.engine.backends.base import Action, BuildBackend
from triton_llm.engine.fetch import ResolvedSource
from triton_llm.engine.fingerprint import fingerprint
from triton_llm.engine.gpus import GpuSku
from triton_llm.engine.recipe import Recipe
from triton_llm.engine.validate import validate

CALIBRATED_FORMATS = ("fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4")
GROUPED_FORMATS = ("int4_awq", "w4a8_awq")


@dataclass(frozen=True)
class StagePlan:
    """One stage: its cache key, the inputs hashed into it, and what it would run."""

    stage: str  # fetch | checkpoint | engine
    key: str
    inputs: dict[str, Any]
    actions: tuple[Action, ...]
    out_dir: Path
    gpu: GpuSku | None = None


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
) -> BuildPlan:
    """Validate the recipe and plan every stage (no effects).

    Raises:
        RecipeErrors: every recipe problem, before anything is fetched or built.
    """
    targets = validate(recipe, source.model_info, backend)
    fetch_key = fingerprint({"stage": "fetch", "source": source.identity})
    fetch = StagePlan(
        stage="fetch",
        key=fetch_key,
        inputs={"source": source.identity},
        actions=(
            Action(
                kind="python",
                description=f"fetch {source.kind} model {source.location}",
                target="triton_llm.engine.fetch:materialize",
                kwargs={"source": source.location, "into": str(model_dir)},
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
        actions=tuple(backend.plan_checkpoint(recipe, model_dir=model_dir, out_dir=ck_dir)),
        out_dir=ck_dir,
    )
    engines = []
    for gpu in targets:
        inputs = engine_inputs(recipe, ck_key, backend, gpu)
        key = fingerprint(inputs)
        out = work_dir / "engine" / key
        actions = backend.plan_engine(
            recipe, checkpoint_dir=ck_dir, out_dir=out, gpu=gpu, checkpoint_key=ck_key
        )
        engines.append(
            StagePlan(stage="engine", key=key, inputs=inputs, actions=tuple(actions), out_dir=out, gpu=gpu)
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
