"""The build-backend interface and the plan steps (actions) that backends produce.

Backends are pure planners: ``plan_checkpoint``/``plan_engine`` turn a recipe into a list
of :class:`Action` without touching disk, network or GPU, so ``--dry-run`` can print the
exact commands and API calls on any machine. :func:`run_actions` executes them.
"""

from __future__ import annotations

import importlib
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from triton_llm.engine.gpus import GpuSku
from triton_llm.engine.model_info import ModelInfo
from triton_llm.engine.recipe import Recipe
from triton_llm.errors import BuildError, RecipeError, TritonLLMError


@dataclass(frozen=True)
class Action:
    """One step of a stage: a subprocess (``command``) or an in-process call (``python``)."""

    kind: Literal["command", "python"]
    description: str
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    target: str = ""  # "package.module:function" for kind == "python"
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """A shell-like line for ``--dry-run`` output."""
        if self.kind == "command":
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
            return (env + " " if env else "") + shlex.join(self.argv)
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.target}({args})"


class BuildBackend(Protocol):
    """What every build backend provides."""

    name: str

    def toolchain_versions(self) -> dict[str, str]:
        """Versions that go into cache keys (e.g. tensorrt_llm, tensorrt, cuda, base image)."""
        ...

    def verify_toolchain(self) -> None:
        """Raise IncompatibleError when this machine would build with other versions than
        :meth:`toolchain_versions` claims; called before any stage is built."""
        ...

    def check(self, recipe: Recipe, model: ModelInfo, gpu: GpuSku | None) -> list[RecipeError]:
        """Capability problems (quant format unsupported, SM too old, ...); empty if fine."""
        ...

    def plan_checkpoint(self, recipe: Recipe, *, model_dir: Path, out_dir: Path) -> list[Action]:
        """Steps that turn a Hugging Face checkpoint into a TensorRT-LLM checkpoint in out_dir."""
        ...

    def plan_engine(
        self,
        recipe: Recipe,
        *,
        checkpoint_dir: Path,
        out_dir: Path,
        gpu: GpuSku | None,
        checkpoint_key: str,
    ) -> list[Action]:
        """Steps that turn a TensorRT-LLM checkpoint into an engine directory in out_dir.

        The engine dir's ``config.json`` has ``pretrained_config`` and ``build_config`` at the
        top level (as ``trtllm-build`` writes it); the pipeline adds ``tokenizer/``.
        """
        ...


def run_actions(actions: Sequence[Action], *, cwd: Path | None = None) -> None:
    """Execute actions in order; a failing step raises :class:`BuildError` naming it."""
    import os

    for action in actions:
        if action.kind == "command":
            env = {**os.environ, **action.env}
            proc = subprocess.run(list(action.argv), env=env, cwd=cwd, check=False)
            if proc.returncode != 0:
                raise BuildError(
                    f"{action.description} failed with exit code {proc.returncode}: {action.render()}"
                )
        else:
            module_name, _, func_name = action.target.partition(":")
            func = getattr(importlib.import_module(module_name), func_name)
            try:
                func(**action.kwargs)
            except TritonLLMError:
                raise
            except Exception as e:
                raise BuildError(f"{action.description} failed: {type(e).__name__}: {e}") from e
