"""``triton-llm frontend``: the OpenAI-compatible HTTP API in front of a running Triton."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "frontend",
        help="serve the OpenAI API (/v1/completions, /v1/chat/completions) in front of Triton",
        description="Serve OpenAI's Completions and Chat Completions APIs (SSE streaming, usage, stop "
        "sequences) for one model, calling Triton's ensemble over gRPC streaming. A client that "
        "disconnects cancels its request on the server. More than --max-inflight requests at once get "
        "429 with Retry-After. Runs until SIGINT/SIGTERM.",
        epilog="examples:\n  triton-llm frontend --triton 127.0.0.1:8001 --model-name smollm2-135m\n"
        "  curl -N http://127.0.0.1:9000/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        '    -d \'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}], '
        '"stream": true}\'',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--triton", default="127.0.0.1:8001", metavar="URL", help="Triton gRPC endpoint host:port")
    p.add_argument("--port", type=int, default=9000, help="HTTP port (default 9000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--model-name", default="ensemble", help="model id that clients send and /v1/models lists")
    p.add_argument(
        "--triton-model",
        default="ensemble",
        choices=["ensemble", "tensorrt_llm_bls"],
        help="Triton model to call (default ensemble)",
    )
    p.add_argument(
        "--max-inflight",
        type=int,
        default=128,
        help="requests generating at once; more get 429 (default 128)",
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for each response from Triton"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from triton_llm.errors import UsageError
    from triton_llm.frontend import FrontendConfig, run_frontend

    try:
        config = FrontendConfig(
            triton_url=args.triton,
            triton_model=args.triton_model,
            model_name=args.model_name,
            host=args.host,
            port=args.port,
            max_inflight=args.max_inflight,
            timeout=args.timeout,
        )
    except ValidationError as e:
        first = e.errors()[0]
        name = "--" + str(first["loc"][0]).replace("_", "-")
        raise UsageError(f"{name}: {first['msg']}", field=name, value=first.get("input")) from None

    def ready(address: tuple[str, int]) -> None:
        host, port = address
        print(
            f"openai frontend: http://{host}:{port}/v1 (model {config.model_name!r}) -> "
            f"Triton {config.triton_url} ({config.triton_model})",
            flush=True,
        )

    return run_frontend(config, on_ready=ready)
