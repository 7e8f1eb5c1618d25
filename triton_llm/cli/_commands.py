"""The command registry: each command's name, one-line help and the module that registers it.

Modules are imported only when their command runs (each exposes ``register(subparsers)``), so
``--help``, ``--version`` and every command pay only for what they use. The help here is what
``triton-llm --help`` lists; a test keeps it equal to the module's own ``add_parser(help=...)``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "engine": ("triton_llm.cli.engine", "build, list, show and pull engines"),
    "launch": ("triton_llm.cli.launch",
               "start a tp*pp Triton group under mpirun (local, hostfile, LWS, StatefulSet)"),
    "agent": ("triton_llm.cli.launch", "remote-agent helpers for multi-host groups"),
    "doctor": ("triton_llm.cli.doctor", "check the GPU, the Triton install and the TensorRT-LLM toolchain"),
    "serve": ("triton_llm.cli.serve", "serve a recipe or engine on Triton in the foreground"),
    "stream": ("triton_llm.cli.stream", "stream a completion from a running Triton server"),
    "repo": ("triton_llm.cli.repo", "render, update, roll back and sync the Triton model repository"),
    "demo": ("triton_llm.cli.demo",
             "end-to-end demo: build smollm2-135m on CPU, serve it, stream a completion"),
    "bench": ("triton_llm.cli.bench",
              "load-test a running endpoint: latency percentiles, throughput, goodput, SLO"),
    "frontend": ("triton_llm.cli.frontend",
                 "serve the OpenAI API (/v1/completions, /v1/chat/completions) in front of Triton"),
    "rollout": ("triton_llm.cli.rollout",
                "roll a new engine key over the chart's groups, one gated group at a time (or --undo)"),
}  # fmt: skip


def selected_command(argv: Sequence[str]) -> str | None:
    """The command named by ``argv`` (its first non-option word), or ``None``."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def register_commands(sub: argparse._SubParsersAction, argv: Sequence[str] | None) -> None:
    """Register every command: fully for the one ``argv`` selects (all of them when ``argv`` is None),
    as a help-only entry for the others."""
    wanted = set(COMMANDS) if argv is None else {selected_command(argv)}
    modules = {COMMANDS[name][0] for name in wanted if name is not None}
    registered: set[str] = set()
    for name, (module, help_text) in COMMANDS.items():
        if module in modules:
            if module not in registered:
                importlib.import_module(module).register(sub)
                registered.add(module)
        else:
            sub.add_parser(name, help=help_text)
