"""Build backends behind one interface: ``trtllm`` (GPU, TensorRT-LLM 1.2.1) and ``cpu`` (reference).

:func:`select_backend` picks ``trtllm`` when a GPU and ``tensorrt_llm`` are present and
``cpu`` otherwise; a name overrides the choice.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Mapping
from pathlib import Path

from triton_llm.engine.backends.base import Action, BuildBackend, Call, Command, run_actions, step_line
from triton_llm.errors import UsageError

BACKENDS = ("trtllm", "cpu")

__all__ = [
    "BACKENDS",
    "Action",
    "BuildBackend",
    "Call",
    "Command",
    "gpu_present",
    "run_actions",
    "select_backend",
    "step_line",
]


def gpu_present() -> bool:
    """True when an NVIDIA GPU is visible (a device node and nvidia-smi)."""
    return Path("/dev/nvidia0").exists() and shutil.which("nvidia-smi") is not None


def select_backend(name: str | None = None, *, environ: Mapping[str, str] | None = None) -> BuildBackend:
    """The named backend, or the automatic choice; ``environ`` is the builder's environment.

    Raises:
        UsageError: an unknown backend name.
    """
    if name is None:
        name = "trtllm" if gpu_present() and importlib.util.find_spec("tensorrt_llm") else "cpu"
    if name == "trtllm":
        from triton_llm.engine.backends.trtllm import TrtllmBackend

        return TrtllmBackend(environ=environ)
    if name == "cpu":
        from triton_llm.engine.backends.cpu import CpuBackend

        return CpuBackend()
    raise UsageError(f"unknown backend {name!r}", field="backend", value=name, hint=f"use one of {BACKENDS}")
