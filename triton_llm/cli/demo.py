"""``triton-llm demo``: build the default model on CPU, serve it on Triton, stream an answer."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from triton_llm.cli._common import add_store_flags, settings_from_args

PROMPT = "In two sentences, explain what a GPU is and why it helps machine learning."


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="end-to-end demo: build smollm2-135m on CPU, serve it, stream a completion",
        description="Build the default recipe with the cpu backend into the local store, render the "
        "model repository, start Triton on free ports, stream a completion of a fixed prompt with the chat "
        "template, print TTFT, TPOT and tokens/s, and stop the server.",
        epilog="example:\n  triton-llm demo\n  triton-llm demo --prompt 'Write a haiku about rain.'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--recipe", default="smollm2-135m", help="recipe to build (default smollm2-135m)")
    p.add_argument("--prompt", default=PROMPT, help="the prompt to send")
    p.add_argument("--max-tokens", type=int, default=96, help="new tokens to generate")
    add_store_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triton_llm.cli.stream import format_stats
    from triton_llm.client import GenerateParams, LLMClient
    from triton_llm.client.request import summarize
    from triton_llm.launch.prepare import prepare_repository
    from triton_llm.launch.tritonserver import TritonServer

    settings = settings_from_args(args)
    print(f"== build {args.recipe} (cpu backend)", flush=True)
    with tempfile.TemporaryDirectory(prefix="triton-llm-demo-") as tmp:
        repo = prepare_repository(
            args.recipe, settings=settings, backend="cpu", repo_dir=Path(tmp) / "model_repository"
        ).repo
        print(f"== rendered {repo}", flush=True)
        server = TritonServer(repo, environ=settings.environ, log_path=Path(tmp) / "tritonserver.log")
        with server:
            print("== starting Triton ...", flush=True)
            server.wait_ready(600)
            print(f"== ready on gRPC {server.grpc_url}; prompt: {args.prompt}\n", flush=True)
            import time

            with LLMClient(server.grpc_url, timeout=120) as client:
                sent = time.perf_counter()
                chunks = []
                params = GenerateParams(max_tokens=args.max_tokens, chat_template=True)
                for chunk in client.stream(args.prompt, params):
                    chunks.append(chunk)
                    sys.stdout.write(chunk.text)
                    sys.stdout.flush()
                done = summarize(chunks, sent=sent)
            print("\n")
            print(format_stats(done))
        print("== server stopped", flush=True)
    return 0
