"""The list of command groups. Each module exposes ``register(subparsers)``."""

from __future__ import annotations

from triton_llm.cli import doctor, engine, launch

REGISTRY = [engine.register, launch.register, doctor.register]
