"""Run a build plan: fetch, checkpoint and engine stages, each skipped on a cache hit.

The runner executes exactly the plan's steps (see :mod:`triton_llm.engine.plan`) and adds only
the cache protocol: a stage whose entry is in the store is skipped (the fetch stage runs only
when the checkpoint is built), an engine built on a stored checkpoint restores it first, and
every built stage is published; an entry exists once its manifest is written. Engines are
restored by key for serving in :mod:`triton_llm.engine.local`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from triton_llm._progress import progress
from triton_llm.engine.backends import BuildBackend, run_actions, select_backend, step_line
from triton_llm.engine.fetch import hub_offline, model_dir_for, resolve_source
from triton_llm.engine.gpus import local_gpu
from triton_llm.engine.local import entry_dir
from triton_llm.engine.plan import BuildPlan, StagePlan, plan_build
from triton_llm.engine.recipe import Recipe, load_recipe
from triton_llm.errors import IncompatibleError
from triton_llm.settings import Settings
from triton_llm.store import ObjectStore, open_store, publish, read_manifest, restore

log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    """What happened to one stage in a build."""

    stage: str
    key: str
    cached: bool
    gpu: str | None = None


@dataclass
class BuildResult:
    """The plan and, per stage, whether it was a cache hit."""

    plan: BuildPlan
    outcomes: list[StageOutcome] = field(default_factory=list)

    @property
    def engine_keys(self) -> list[str]:
        return [e.key for e in self.plan.engines]


def make_plan(
    recipe: Recipe, *, settings: Settings, backend: BuildBackend, allow_unresolved: bool = False
) -> BuildPlan:
    """Resolve the model source (metadata only) and plan every stage.

    Raises:
        RecipeErrors: the recipe is invalid for this model or backend.
    """
    offline = hub_offline(settings.environ)
    source = resolve_source(
        recipe.model, cache_dir=settings.cache_dir, offline=offline, allow_unresolved=allow_unresolved
    )
    return plan_build(
        recipe,
        source=source,
        backend=backend,
        model_dir=model_dir_for(source, cache_dir=settings.cache_dir),
        work_dir=settings.cache_dir / "work",
        offline=offline,
    )


def plan_recipe(
    ref: str,
    *,
    settings: Settings,
    overrides: Iterable[str] = (),
    backend: str | None = None,
    allow_unresolved: bool = False,
) -> BuildPlan:
    """Load a recipe (name or YAML path, with ``--set`` overrides) and plan it.

    The one validation path of ``engine build --dry-run`` and ``launch``; :func:`build` runs the
    same :func:`make_plan`, so every command rejects a bad recipe with the same errors.

    Raises:
        NotFoundError: no such recipe.
        RecipeErrors: the recipe is invalid for its model or the backend.
    """
    recipe = load_recipe(ref, overrides=overrides, extra_dir=settings.engines_dir)
    return make_plan(
        recipe,
        settings=settings,
        backend=select_backend(backend, environ=settings.environ),
        allow_unresolved=allow_unresolved,
    )


def _run_stage(stage: StagePlan, *, settings: Settings, say: Callable[[str], None]) -> None:
    """Run every step of one stage, in plan order, reporting each as ``--dry-run`` shows it."""
    with progress(f"{stage.stage} {stage.key[:12]}", total=len(stage.actions), unit="step") as bar:
        for action in stage.actions:
            say(f"  {step_line(action)}")
            run_actions([action], environ=settings.environ)
            bar.update(1)


def build(
    recipe: Recipe,
    *,
    settings: Settings,
    backend: str | None = None,
    force: bool = False,
    say: Callable[[str], None] = print,
) -> BuildResult:
    """Build (or find in the store) the checkpoint and every engine of a recipe.

    Raises:
        RecipeErrors: invalid recipe, before anything is fetched.
        BuildError: a stage failed.
        IncompatibleError: an engine targets a GPU this machine does not have, or the machine
            runs another toolchain than the backend's keys declare (checked before building).
    """
    be = select_backend(backend, environ=settings.environ)
    plan = make_plan(recipe, settings=settings, backend=be)
    store = open_store(settings.store_uri(), settings=settings)
    result = BuildResult(plan=plan)
    ck = plan.checkpoint
    say(f"recipe {recipe.name}: backend {be.name}, store {settings.store_uri()}")

    ck_cached = not force and read_manifest(store, stage="checkpoint", key=ck.key) is not None
    ck_local: Path | None = None
    adopt: list[StagePlan] = []  # built and published here: moved to the restore location at the end
    if ck_cached:
        say(f"checkpoint {ck.key}: cache hit")
    else:
        be.verify_toolchain()
        say(f"fetch {plan.source.kind} {plan.source.location}")
        _run_stage(plan.fetch, settings=settings, say=say)
        say(f"checkpoint {ck.key}: building")
        _run_stage(ck, settings=settings, say=say)
        won = _publish_stage(store, ck, versions=be.toolchain_versions(), settings=settings, say=say)
        ck_local = ck.out_dir if won else None
        if won:
            adopt.append(ck)
    result.outcomes.append(StageOutcome("checkpoint", ck.key, ck_cached))

    for eng in plan.engines:
        gpu_name = eng.gpu.name if eng.gpu else None
        if not force and read_manifest(store, stage="engine", key=eng.key) is not None:
            say(f"engine {eng.key} ({gpu_name or be.name}): cache hit")
            result.outcomes.append(StageOutcome("engine", eng.key, True, gpu_name))
            continue
        be.verify_toolchain()
        here = local_gpu() if eng.gpu is not None else None
        if eng.gpu is not None and (here is None or here.sm != eng.gpu.sm or here.name != eng.gpu.name):
            raise IncompatibleError(
                f"engine for {eng.gpu.name} (SM {eng.gpu.sm}) must be built on that GPU; "
                f"this machine has {here.name if here else 'no GPU'}",
                key=eng.key,
                hint="run the build on a matching node (the Helm chart's engine-build Job), or use --dry-run",
            )
        if ck_local is None:
            ck_local = ck.out_dir
            say(f"checkpoint {ck.key}: restoring it from the store for the engine")
            restore(store, ck_local, stage="checkpoint", key=ck.key, transfer=settings.transfer)
        say(f"engine {eng.key} ({gpu_name or be.name}): building")
        _run_stage(eng, settings=settings, say=say)
        if _publish_stage(store, eng, versions=be.toolchain_versions(), settings=settings, say=say):
            adopt.append(eng)
        result.outcomes.append(StageOutcome("engine", eng.key, False, gpu_name))
    for stage in adopt:
        _adopt(stage, settings)
    return result


def _publish_stage(
    store: ObjectStore,
    stage: StagePlan,
    *,
    versions: dict[str, str],
    settings: Settings,
    say: Callable[[str], None],
) -> bool:
    """Publish a built stage; False when another builder's entry won the race (and is used)."""
    say(f"  {stage.publish_line(settings.store_uri())}")
    res = publish(
        store,
        stage.out_dir,
        stage=stage.stage,
        key=stage.key,
        fingerprint_inputs=stage.inputs,
        versions=versions,
        transfer=settings.transfer,
    )
    if not res.won:
        say(f"{stage.stage} {stage.key}: another builder published it first; using that entry")
    return res.won


def _adopt(stage: StagePlan, settings: Settings) -> None:
    """Move a just-published work dir to where restores go, so a restore verifies it in place
    instead of copying it back from the store."""
    dest = entry_dir(settings, stage.stage, stage.key)
    if dest.exists() or not stage.out_dir.is_dir():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage.out_dir.rename(dest)


def engine_for_this_machine(plan: BuildPlan) -> StagePlan:
    """The plan's engine for this machine's GPU (the only engine of a GPU-less backend).

    Raises:
        IncompatibleError: the recipe targets GPUs and none of them is this machine's.
    """
    if all(eng.gpu is None for eng in plan.engines):
        return plan.engines[0]
    here = local_gpu()
    for eng in plan.engines:
        if eng.gpu is not None and here is not None and eng.gpu.name == here.name:
            return eng
    targets = ", ".join(eng.gpu.name for eng in plan.engines if eng.gpu is not None)
    have = here.name if here else "no GPU"
    raise IncompatibleError(
        f"recipe {plan.recipe.name} has engines for {targets}; this machine has {have}",
        hint="serve on a node with one of the target GPUs, or add this GPU to target.gpus",
    )
