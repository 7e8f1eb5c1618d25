"""``triton-llm bench``: a load generator with an SLO report against a running endpoint."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EPILOG = """examples:
  triton-llm bench --concurrency 1,2,4,8,16 --requests 64 --out results/
  triton-llm bench --request-rate 0.5,1,2 --duration 60 --slo ttft_p99=500ms,itl_p99=80ms
  triton-llm bench --protocol http --url 127.0.0.1:8000 --prompts prompts.jsonl --max-tokens 64
  triton-llm bench --protocol openai-chat --url http://127.0.0.1:9000 --tokenizer ./tokenizer

Prompts are synthetic words of exactly --input-tokens tokens from the model's tokenizer (by default the
one the server's preprocessing model names, when that folder exists here), or lines of a JSONL file
({"text": ..., "max_tokens": optional}). Lengths are N, uniform:LO,HI or normal:MEAN,STD.
Latencies: TTFT (send -> first output), ITL (= TPOT: mean time per output token after the first
response), e2e (send -> final response); p50/p90/p99 over a step's successful requests.
Exit codes: 0 ok; 1 no step met --slo, no request succeeded, or the server is unreachable; 2 bad flags.
"""


def _flag_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn our UsageError into argparse's error, so bad values exit 2 naming the flag."""

    def convert(text: str) -> Any:
        from triton_llm.errors import UsageError

        try:
            return parse(text)
        except UsageError as e:
            prefix = f"{e.field}: "  # argparse names the flag already
            message = e.message[len(prefix) :] if e.field and e.message.startswith(prefix) else e.message
            raise argparse.ArgumentTypeError(message) from None

    return convert


def _numbers(flag: str, kind: type) -> Callable[[str], Any]:
    """``1,2,4`` for a list flag: every value of ``kind`` and > 0."""

    def parse(text: str) -> list[Any]:
        from triton_llm.bench.load import parse_positive_list

        return parse_positive_list(text, flag=flag, kind=kind)

    return _flag_type(parse)


def _length(flag: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        from triton_llm.bench.prompts import parse_length

        return parse_length(text, flag=flag)

    return _flag_type(parse)


def _slo(text: str) -> Any:
    from triton_llm.bench.slo import parse_slo

    return parse_slo(text)


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
        return value

    return parse


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from triton_llm.bench.drivers import PROTOCOLS

    p = sub.add_parser(
        "bench",
        help="load-test a running endpoint: latency percentiles, throughput, goodput, SLO",
        description="Sweep load levels against a Triton (gRPC stream, HTTP generate_stream) or OpenAI "
        "endpoint and report per step TTFT/ITL/e2e percentiles, tokens/s, requests/s, errors by kind, "
        "goodput under --slo and the server's own /metrics for the same window.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--protocol", choices=PROTOCOLS, default="grpc", help="how to send requests (default grpc)"
    )
    p.add_argument(
        "--url",
        help="endpoint (default 127.0.0.1:8001 for grpc, 127.0.0.1:8000 for http, "
        "http://127.0.0.1:9000 for openai-*)",
    )
    p.add_argument(
        "--model",
        help="Triton model (default ensemble) or OpenAI model name (default: the only one the server lists)",
    )
    load = p.add_mutually_exclusive_group()
    load.add_argument(
        "--concurrency",
        type=_numbers("--concurrency", int),
        metavar="N[,N...]",
        help="closed-loop steps: requests kept in flight (default 1)",
    )
    load.add_argument(
        "--request-rate",
        type=_numbers("--request-rate", float),
        metavar="R[,R...]",
        help="open-loop steps: Poisson arrivals per second",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--requests", type=_positive(int), metavar="N", help="requests per step (default 32)")
    size.add_argument(
        "--duration",
        type=_positive(float),
        metavar="SECONDS",
        help="seconds per step (in-flight requests then finish and count)",
    )
    p.add_argument(
        "--max-tokens",
        type=_length("--max-tokens"),
        default=None,
        metavar="LEN",
        help="output tokens per request: N, uniform:LO,HI or normal:MEAN,STD (default 128)",
    )
    p.add_argument(
        "--input-tokens",
        type=_length("--input-tokens"),
        default=None,
        metavar="LEN",
        help="synthetic prompt tokens: N, uniform:LO,HI or normal:MEAN,STD (default 128)",
    )
    p.add_argument("--prompts", type=Path, metavar="FILE.jsonl", help="prompts from a JSONL file")
    p.add_argument("--tokenizer", metavar="DIR", help="Hugging Face tokenizer folder for synthetic prompts")
    p.add_argument(
        "--num-prompts",
        type=_positive(int),
        default=100,
        metavar="N",
        help="synthetic prompts to build and cycle through (default 100)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for prompts, lengths and arrivals (default 0)")
    p.add_argument(
        "--slo",
        type=_flag_type(_slo),
        metavar="KEY=VALUE,...",
        help="bounds such as ttft_p99=500ms,itl_p99=80ms (ttft|itl|e2e x p50|p90|p99): report "
        "goodput and the highest load meeting them; exit 1 if no step does",
    )
    p.add_argument(
        "--end-id",
        type=int,
        metavar="ID",
        help="grpc/http: end_id to send; an id the model "
        "never samples makes every request generate exactly its max tokens",
    )
    p.add_argument(
        "--chat-template",
        action="store_true",
        help="grpc/http: apply the model's chat template (default: send the prompt as raw text)",
    )
    p.add_argument(
        "--extra-body",
        type=_json_object,
        metavar="JSON",
        help="http/openai: fields merged into every request body",
    )
    p.add_argument(
        "--metrics-url",
        default="auto",
        metavar="URL",
        help="Triton /metrics to scrape per step (default: same host, port 8002, for grpc/http; "
        "'none' to disable)",
    )
    p.add_argument("--timeout", type=_positive(float), default=60.0, help="seconds to wait for each response")
    p.add_argument("--warmup", type=int, default=0, metavar="N", help="unrecorded requests before the sweep")
    p.add_argument("--out", type=Path, metavar="DIR", help="write bench.json (every request) and bench.png")
    p.add_argument("--no-plot", action="store_true", help="with --out: skip the PNG (no matplotlib needed)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The validated BenchConfig of the flags.

    Raises:
        UsageError: flags that do not fit together; names the flag.
    """
    from triton_llm.bench.drivers import DEFAULT_URLS, DriverOptions
    from triton_llm.bench.load import plan_steps
    from triton_llm.bench.prompts import parse_length
    from triton_llm.bench.run import BenchConfig
    from triton_llm.errors import UsageError

    if args.prompts is not None and args.input_tokens is not None:
        raise UsageError("--input-tokens applies to synthetic prompts, not --prompts", field="--input-tokens")
    if args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0 (got {args.warmup})", field="--warmup")
    openai = args.protocol.startswith("openai")
    if openai and args.chat_template:
        raise UsageError(
            "--chat-template applies to grpc/http (openai-chat always templates)", field="--chat-template"
        )
    if args.protocol == "grpc" and args.extra_body is not None:
        raise UsageError("--extra-body applies to the HTTP protocols only", field="--extra-body")
    steps = plan_steps(
        concurrency=args.concurrency,
        rates=args.request_rate,
        requests=args.requests if args.requests or args.duration else 32,
        duration=args.duration,
    )
    options = DriverOptions(
        url=args.url or DEFAULT_URLS[args.protocol],
        model=args.model,
        timeout=args.timeout,
        end_id=args.end_id,
        chat_template=None if openai else args.chat_template,
        extra_body=args.extra_body,
    )
    return BenchConfig(
        protocol=args.protocol,
        options=options,
        steps=steps,
        input_len=args.input_tokens or parse_length("128", flag="--input-tokens"),
        output_len=args.max_tokens or parse_length("128", flag="--max-tokens"),
        prompts_file=args.prompts,
        tokenizer=args.tokenizer,
        num_prompts=args.num_prompts,
        seed=args.seed,
        slo=args.slo,
        metrics_url=None if args.metrics_url == "none" else args.metrics_url,
        warmup=args.warmup,
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from triton_llm.bench.report import format_table, slo_verdict, write_json
    from triton_llm.bench.run import run_bench, step_line

    config = config_from_args(args)
    if args.out is not None and not args.no_plot:
        from triton_llm.bench.plot import require_matplotlib

        require_matplotlib()
    result = asyncio.run(
        run_bench(config, on_step=lambda s: print(step_line(s), file=sys.stderr, flush=True))
    )
    print(format_table(result))
    if args.out is not None:
        print(f"wrote {write_json(result, args.out / 'bench.json')}")
        if not args.no_plot:
            from triton_llm.bench.plot import plot_run

            title = f"{config.protocol} {config.options.url} model={result.settings['model']}"
            print(f"wrote {plot_run(result, args.out / 'bench.png', title=title)}")
    code = 0
    if config.slo:
        met, line = slo_verdict(result, config.slo)
        print(line)
        code = 0 if met else 1
    if not any(s.completed for s in result.summaries):
        kinds = sorted({k for s in result.summaries for k in s.errors})
        first = next((r.error_message for rs in result.records for r in rs if r.error_message), "")
        print(f"error: no request succeeded ({', '.join(kinds)}): {first}", file=sys.stderr)
        code = 1
    return code
