"""``triton-llm serve``: build or restore an engine, render its repository, run Triton."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from triton_llm.cli._common import add_recipe_flags, add_store_flags, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a recipe or engine on Triton in the foreground",
        description="Ensure the engine (build it if needed), write a versioned model repository (the engine "
        "is version 1) into a fresh directory and run tritonserver with explicit model control until "
        "SIGINT/SIGTERM, so `triton-llm repo update` can swap engines under load. tp*pp > 1 goes through "
        "the MPI launcher (and is updated at the replica level instead).",
        epilog="examples:\n  triton-llm serve smollm2-135m\n"
        "  triton-llm serve smollm2-135m --set serving.chat_template=false --grpc-port 9001\n"
        "  triton-llm serve smollm2-135m --openai-port 0    # no OpenAI API on :9000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ref", metavar="RECIPE|KEY", help="recipe name or path, or an engine key")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    p.add_argument("--metrics-port", type=int, default=8002, help="metrics port (default 8002)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--repo-dir", type=Path, help="render the repository here (default: a fresh temp dir)")
    p.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for readiness")
    p.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level")
    p.add_argument(
        "--openai-port",
        type=_port,
        default=9000,
        help="port of the OpenAI-compatible API (base path /v1) started next to Triton; 0 disables it",
    )
    add_recipe_flags(p)
    add_store_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triton_llm.launch.prepare import prepare_repository
    from triton_llm.launch.serving import serve

    settings = settings_from_args(args)
    prepared = prepare_repository(
        args.ref,
        settings=settings,
        overrides=args.overrides,
        backend=args.backend,
        repo_dir=args.repo_dir,
    )
    print(f"model repository: {prepared.repo}", flush=True)
    with _openai_frontend(args, model_name=prepared.engine.recipe.name):
        return serve(
            prepared,
            settings=settings,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            metrics_port=args.metrics_port,
            host=args.host,
            log_verbose=args.log_verbose,
            ready_timeout=args.ready_timeout,
            on_ready=_announce,
        )


def _announce(server: object) -> None:
    print(
        f"ready: gRPC {server.grpc_url}  HTTP {server.http_url}  "  # type: ignore[attr-defined]
        f'(try: triton-llm stream "Hello" --url {server.grpc_url}; '  # type: ignore[attr-defined]
        "update it with: triton-llm repo update --key KEY)",
        flush=True,
    )


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def _openai_frontend(args: argparse.Namespace, *, model_name: str) -> contextlib.AbstractContextManager[Any]:
    """The OpenAI frontend next to Triton (a child process), unless --openai-port is 0."""
    if not args.openai_port:
        return contextlib.nullcontext()
    from triton_llm.frontend import FrontendConfig, frontend_process, local_address

    config = FrontendConfig(
        triton_url=f"{local_address(args.host)}:{args.grpc_port}",
        model_name=model_name,
        host=args.host,
        port=args.openai_port,
    )
    return frontend_process(config)
