"""A local engine directory, checked before rendering: ``repo render --engine-dir``.

For engines built outside triton-llm (``trtllm-build --output_dir``) or pulled with
``engine pull``: no store is involved. The engine's ``config.json`` decides the backend
(``trtllm-build`` writes no ``backend`` key: GPU; triton-llm's cpu engines say ``"cpu"`` and
serve the checkpoint named by ``checkpoint_key``). Serving settings are the engine's own
``recipe.json`` serving block when it has one, else the schema's defaults, with
``--set serving.x=y`` overrides validated like a recipe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm.engine.local import RECIPE_FILE
from triton_llm.engine.recipe import Serving, serving_from_overrides
from triton_llm.errors import ConfigError, IncompatibleError, NotFoundError
from triton_llm.repository.render import is_cpu_engine, read_engine_config

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass(frozen=True)
class EngineDir:
    """A checked engine directory and everything rendering it needs."""

    engine_dir: Path
    config: dict[str, Any]
    tokenizer_dir: Path
    checkpoint_dir: Path | None
    serving: Serving

    @property
    def backend(self) -> str:
        return "cpu" if is_cpu_engine(self.config) else "tensorrtllm"


def _world_size(config: dict[str, Any]) -> int:
    mapping = config.get("pretrained_config", {}).get("mapping", {})
    return int(mapping.get("world_size") or int(mapping.get("tp_size", 1)) * int(mapping.get("pp_size", 1)))


def check_tokenizer(tokenizer_dir: Path) -> Path:
    """The tokenizer folder, if it holds a tokenizer.

    Raises:
        NotFoundError: no such folder, or no tokenizer file in it.
    """
    hint = "pass --tokenizer-dir DIR (the Hugging Face model folder the engine was built from)"
    if not tokenizer_dir.is_dir():
        raise NotFoundError(
            f"no tokenizer: {tokenizer_dir} does not exist", path=str(tokenizer_dir), hint=hint
        )
    if not any((tokenizer_dir / f).is_file() for f in TOKENIZER_FILES) and not any(
        tokenizer_dir.glob("*.tiktoken")
    ):
        raise NotFoundError(
            f"no tokenizer in {tokenizer_dir} (none of {', '.join(TOKENIZER_FILES)}, *.tiktoken)",
            path=str(tokenizer_dir),
            hint=hint,
        )
    return tokenizer_dir


def _check_checkpoint(config: dict[str, Any], engine_dir: Path, checkpoint_dir: Path | None) -> Path:
    key = config.get("checkpoint_key")
    if checkpoint_dir is None:
        raise IncompatibleError(
            f"{engine_dir} is a cpu engine: it serves the TensorRT-LLM checkpoint {key}, "
            "which --checkpoint-dir must point at",
            path=str(engine_dir),
            key=key,
            hint=f"restore it with: triton-llm engine pull {key} --dest DIR",
        )
    checkpoint_dir = checkpoint_dir.resolve()
    if not (checkpoint_dir / "config.json").is_file():
        raise NotFoundError(
            f"{checkpoint_dir} is not a TensorRT-LLM checkpoint (no config.json)",
            path=str(checkpoint_dir),
            key=key,
        )
    return checkpoint_dir


def _check_rank_files(config: dict[str, Any], engine_dir: Path) -> None:
    missing = [
        f"rank{r}.engine"
        for r in range(_world_size(config))
        if not (engine_dir / f"rank{r}.engine").is_file()
    ]
    if missing:
        raise IncompatibleError(
            f"{engine_dir} lacks {', '.join(missing)} for its {_world_size(config)} rank(s)",
            path=str(engine_dir),
            hint="point --engine-dir at the complete trtllm-build --output_dir",
        )


def _recipe_serving(engine_dir: Path) -> dict[str, Any] | None:
    path = engine_dir / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IncompatibleError(f"{path} is not valid JSON: {e}", path=str(path)) from e
    serving = data.get("serving") if isinstance(data, dict) else None
    return serving if isinstance(serving, dict) else None


def open_engine_dir(
    engine_dir: Path,
    *,
    tokenizer_dir: Path | None = None,
    checkpoint_dir: Path | None = None,
    overrides: Iterable[str] = (),
) -> EngineDir:
    """Check a local engine directory and resolve what rendering it needs.

    Args:
        engine_dir: ``trtllm-build --output_dir``, or a cpu engine from triton-llm.
        tokenizer_dir: default ``engine_dir/tokenizer``.
        checkpoint_dir: the checkpoint a cpu engine serves (required for cpu, refused for GPU).
        overrides: ``serving.x=y`` settings.

    Raises:
        NotFoundError: no such directory, no config.json, no tokenizer, no checkpoint config.
        IncompatibleError: config.json is not an engine config; GPU rank files are missing;
            a cpu engine without checkpoint_dir.
        ConfigError: checkpoint_dir for a GPU engine.
        RecipeError: a bad serving override.
    """
    engine_dir = engine_dir.resolve()
    if not engine_dir.is_dir():
        raise NotFoundError(f"engine directory {engine_dir} does not exist", path=str(engine_dir))
    config = read_engine_config(engine_dir)
    if is_cpu_engine(config):
        checkpoint = _check_checkpoint(config, engine_dir, checkpoint_dir)
    else:
        if checkpoint_dir is not None:
            raise ConfigError(
                f"--checkpoint-dir applies to cpu engines only; {engine_dir} is a TensorRT engine",
                path=str(checkpoint_dir),
            )
        checkpoint = None
        _check_rank_files(config, engine_dir)
    tokenizer = check_tokenizer((tokenizer_dir or engine_dir / "tokenizer").resolve())
    serving = serving_from_overrides(
        overrides, base=_recipe_serving(engine_dir), source=f"serving for {engine_dir}"
    )
    return EngineDir(
        engine_dir=engine_dir,
        config=config,
        tokenizer_dir=tokenizer,
        checkpoint_dir=checkpoint,
        serving=serving,
    )
