"""The file steps every build plan has around a backend's steps: a fresh output directory, the
tokenizer copy, and the engine's ``recipe.json``. Plans reference these functions; only
:func:`~triton_llm.engine.backends.base.run_actions` calls them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from triton_llm.engine.recipe import Recipe
from triton_llm.errors import BuildError

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)


def fresh_dir(path: Path) -> None:
    """Make ``path`` an empty directory (a stage's output is always written from scratch)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def copy_tokenizer(model_dir: Path, dest: Path) -> None:
    """Copy the tokenizer files (and chat template) of a Hugging Face folder into ``dest``.

    Raises:
        BuildError: ``model_dir`` has none of :data:`TOKENIZER_FILES`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    copied = 0
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, dest / name)
            copied += 1
    if not copied:
        raise BuildError(f"{model_dir} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...)")


def write_recipe(recipe: Recipe, path: Path) -> None:
    """Write the whole recipe as JSON: an engine carries the serving settings it was built for."""
    path.write_text(json.dumps(recipe.model_dump(mode="json"), indent=2) + "\n")
