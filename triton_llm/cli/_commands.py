"""The list of command groups. Each module exposes ``register(subparsers)``."""

from __future__ import annotations

from triton_llm.cli import demo, doctor, engine, frontend, launch, repo, serve, stream

REGISTRY = [
    engine.register,
    launch.register,
    doctor.register,
    serve.register,
    stream.register,
    repo.register,
    demo.register,
    frontend.register,
]
