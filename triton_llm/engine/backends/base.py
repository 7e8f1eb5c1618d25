"""The build-backend interface and the plan steps (actions) that backends produce.

Backends are pure planners: ``plan_checkpoint``/``plan_engine`` turn a recipe into a list
of :class:`Command` and :class:`Call` steps without touching disk, network or GPU, so
``--dry-run`` can print the exact commands and calls on any machine. :func:`run_actions`
executes them; :func:`step_line` is how both show a step.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from triton_llm.engine.gpus import GpuSku
from triton_llm.engine.model_info import ModelInfo
from triton_llm.engine.recipe import Recipe
from triton_llm.errors import BuildError, RecipeError, TritonLLMError


@dataclass(frozen=True)
class Command:
    """A subprocess step: ``argv``, run with ``env`` added to the builder's environment."""

    description: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> str:
        """A shell line: ``VAR=value ... argv``."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (env + " " if env else "") + shlex.join(self.argv)


@dataclass(frozen=True)
class Call:
    """An in-process step: ``func(**kwargs)``. ``func`` is the function itself, so a renamed or
    removed step function fails when the planner is imported, not halfway through a build."""

    description: str
    func: Callable[..., object]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """``module.function(name=value, ...)``."""
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.kwargs.items())
        return f"{self.func.__module__}.{self.func.__qualname__}({args})"


Action = Command | Call


def _show(value: Any) -> str:
    if isinstance(value, Path):
        return repr(str(value))
    name = getattr(value, "name", None)
    if isinstance(value, BaseModel) and isinstance(name, str):
        return f"<{type(value).__name__} {name!r}>"  # e.g. a whole Recipe
    return repr(value)


def step_line(action: Action) -> str:
    """One step as ``--dry-run`` prints it and a build reports it: ``$ argv`` or ``call f(...)``."""
    return ("$ " if isinstance(action, Command) else "call ") + action.render()


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

    def check(self, recipe: Recipe, model: ModelInfo, gpus: Sequence[GpuSku]) -> list[RecipeError]:
        """Capability problems (quant format unsupported, SM too old, ...) for the recipe's target
        ``gpus`` (empty: no GPU target); each problem once, empty if fine."""
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


def run_actions(actions: Sequence[Action], *, environ: Mapping[str, str], cwd: Path | None = None) -> None:
    """Execute steps in order; a failing step raises :class:`BuildError` naming it.

    Args:
        environ: the environment commands run in (``Settings.environ``), plus each one's ``env``.
    """
    for action in actions:
        if isinstance(action, Command):
            env = {**environ, **action.env}
            try:
                proc = subprocess.run(list(action.argv), env=env, cwd=cwd, check=False)
            except OSError as e:
                raise BuildError(f"{action.description} could not start: {e}: {action.render()}") from e
            if proc.returncode != 0:
                raise BuildError(
                    f"{action.description} failed with exit code {proc.returncode}: {action.render()}"
                )
            continue
        try:
            action.func(**action.kwargs)
        except TritonLLMError:
            raise
        except Exception as e:
            raise BuildError(f"{action.description} failed: {type(e).__name__}: {e}") from e
