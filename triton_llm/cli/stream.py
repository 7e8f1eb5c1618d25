"""``triton-llm stream``: stream a completion from a running server and time it."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream",
        help="stream a completion from a running Triton server",
        description="Send one prompt to the ensemble over gRPC, print tokens as they arrive, then TTFT, "
        "TPOT and the token count. Ctrl-C cancels the request on the server.",
        epilog='examples:\n  triton-llm stream "Tell me a joke" --max-tokens 64\n'
        '  triton-llm stream "Hi" --url 10.0.0.5:8001 --temperature 0.7 --top-p 0.9 --seed 1',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", help="the prompt text")
    p.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC endpoint host:port")
    p.add_argument("--model", default="ensemble", help="ensemble (default) or tensorrt_llm_bls")
    p.add_argument("--max-tokens", type=int, default=128, help="new tokens to generate")
    p.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, help="sample from the k most likely tokens")
    p.add_argument("--top-p", type=float, help="nucleus sampling probability mass")
    p.add_argument("--seed", type=int, help="random seed for reproducible sampling")
    p.add_argument("--stop", action="append", default=[], metavar="WORD", help="stop word (repeatable)")
    p.add_argument(
        "--no-chat-template",
        action="store_true",
        help="send the prompt as raw text (default: the server's setting, on for Instruct recipes)",
    )
    p.add_argument("--chat-template", action="store_true", help="force the tokenizer's chat template on")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each response")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triton_llm.client import GenerateParams, LLMClient
    from triton_llm.client.request import summarize

    chat = False if args.no_chat_template else (True if args.chat_template else None)
    params = GenerateParams(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop_words=tuple(args.stop),
        chat_template=chat,
    )
    with LLMClient(args.url, model=args.model, timeout=args.timeout) as client:
        sent = time.perf_counter()
        chunks = []
        for chunk in client.stream(args.prompt, params):
            chunks.append(chunk)
            if chunk.text:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
        done = summarize(chunks, sent=sent)
    print()
    print(format_stats(done), file=sys.stderr)
    return 0


def format_stats(done: object) -> str:
    """One line: TTFT, TPOT, tokens and tokens/s of a Completion."""
    ttft = f"{done.ttft * 1000:.0f} ms" if done.ttft is not None else "n/a"  # type: ignore[attr-defined]
    tpot = f"{done.tpot * 1000:.1f} ms" if done.tpot is not None else "n/a"  # type: ignore[attr-defined]
    return (
        f"TTFT {ttft} | TPOT {tpot} | {done.tokens} tokens | "  # type: ignore[attr-defined]
        f"{done.tokens_per_second:.1f} tokens/s"  # type: ignore[attr-defined]
    )
