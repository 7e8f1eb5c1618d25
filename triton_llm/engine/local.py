"""Engines on local disk, restored and verified from the store: what ``serve`` and ``launch`` use.

An engine key is restored without any recipe planning (no model source, no backend, no
validation); only a recipe reference imports the build pipeline, to build or find its engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm.engine.recipe import Recipe, Serving, load_recipe, recipe_from_mapping, resolve_recipe_path
from triton_llm.errors import IncompatibleError, NotFoundError
from triton_llm.settings import Settings

RECIPE_FILE = "recipe.json"
_KEY = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class LocalEngine:
    """A verified engine (and, for cpu engines, its checkpoint) on local disk."""

    key: str
    engine_dir: Path
    checkpoint_dir: Path | None
    recipe: Recipe
    engine_config: dict[str, Any]

    @property
    def tokenizer_dir(self) -> Path:
        return self.engine_dir / "tokenizer"

    @property
    def serving(self) -> Serving:
        """The recipe's serving settings."""
        return self.recipe.serving

    @property
    def backend(self) -> str:
        return str(self.engine_config.get("backend", "trtllm"))


def entry_dir(settings: Settings, stage: str, key: str) -> Path:
    """Where a restored store entry lives locally."""
    return settings.cache_dir / "entries" / stage / key


def looks_like_key(ref: str) -> bool:
    """True for a hex cache key (or a unique prefix of at least 8 hex digits)."""
    return bool(_KEY.match(ref))


def restore_engine(key: str, *, settings: Settings) -> LocalEngine:
    """Restore an engine entry (and the checkpoint a cpu engine serves) into the local cache.

    Raises:
        NotFoundError: no engine with that key in the store.
    """
    from triton_llm.store import find_entry, open_store, restore

    store = open_store(settings.store_uri(), settings=settings)
    manifest = find_entry(store, key)
    if manifest.stage != "engine":
        raise NotFoundError(f"{key} is a {manifest.stage} entry, not an engine", key=key)
    eng_dir = entry_dir(settings, "engine", manifest.key)
    restore(store, eng_dir, stage="engine", key=manifest.key, transfer=settings.transfer)
    config = json.loads((eng_dir / "config.json").read_text())
    recipe = recipe_from_mapping(
        json.loads((eng_dir / RECIPE_FILE).read_text()), source=f"engine {manifest.key}"
    )
    ck_dir = None
    if config.get("backend") == "cpu":
        ck_key = config["checkpoint_key"]
        ck_dir = entry_dir(settings, "checkpoint", ck_key)
        restore(store, ck_dir, stage="checkpoint", key=ck_key, transfer=settings.transfer)
    return LocalEngine(
        key=manifest.key, engine_dir=eng_dir, checkpoint_dir=ck_dir, recipe=recipe, engine_config=config
    )


def ensure_local_engine(
    ref: str,
    *,
    settings: Settings,
    overrides: Iterable[str] = (),
    backend: str | None = None,
    say: Callable[[str], None] = print,
) -> LocalEngine:
    """A recipe (built if needed) or an engine key, restored and verified on local disk.

    For a recipe with several target GPUs, the engine for this machine's GPU is used.

    Raises:
        NotFoundError: neither a recipe nor a stored engine key.
        RecipeErrors / BuildError: as :func:`~triton_llm.engine.pipeline.build`.
    """
    overrides = list(overrides)
    try:
        resolve_recipe_path(ref, extra_dir=settings.engines_dir)
    except NotFoundError:
        if not looks_like_key(ref):
            raise
        if overrides:
            raise IncompatibleError(
                f"--set cannot change a built engine ({ref}); pass a recipe instead", key=ref
            ) from None
        return restore_engine(ref, settings=settings)
    from triton_llm.engine.pipeline import build, engine_for_this_machine

    recipe = load_recipe(ref, overrides=overrides, extra_dir=settings.engines_dir)
    result = build(recipe, settings=settings, backend=backend, say=say)
    return restore_engine(engine_for_this_machine(result.plan).key, settings=settings)
