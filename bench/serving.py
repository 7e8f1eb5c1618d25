"""Serving overhead: Triton + ensemble vs the same CPU runtime in-process, and concurrency.

    .venv/bin/python -m bench.serving [--runs 20] [--tokens 32] [--streams 8]

Phase 1 runs the runtime in this process (GeneratorLoop, same checkpoint, same prompt
tokenized with the same chat template). Phase 2 starts Triton on the rendered repository
and streams the same requests through the ensemble over gRPC. Phase 3 compares 8
concurrent streams with one. Every request generates exactly ``--tokens`` tokens (an
end_id the model never produces). Writes the "serving" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import statistics
import tempfile
import time
from pathlib import Path

from bench._results import write_section

PROMPT = "Write a short story about a lighthouse keeper."
NEVER = 49151  # a SmolLM2 token id greedy decoding never reaches: fixes the output length


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


class InProcess:
    """The runtime in this process: GeneratorLoop on the engine's checkpoint."""

    def __init__(self, engine) -> None:
        from transformers import AutoTokenizer

        from triton_llm.runtime import Generator, GeneratorLoop

        build = engine.engine_config["build_config"]
        self.tok = AutoTokenizer.from_pretrained(str(engine.tokenizer_dir))
        gen = Generator(
            engine.checkpoint_dir,
            max_batch_size=build["max_batch_size"],
            max_input_len=build["max_input_len"],
            max_seq_len=build["max_seq_len"],
        )
        self.loop = GeneratorLoop(gen)
        self.n = 0

    def run(self, tokens: int) -> tuple[float, float]:
        """TTFT (chat template + tokenize + submit -> first token) and TPOT of one request."""
        from triton_llm.runtime import GenerationRequest

        self.n += 1
        events: queue.Queue = queue.Queue()
        start = time.perf_counter()
        ids = self.tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        self.loop.submit(GenerationRequest(f"b{self.n}", ids, tokens, end_id=NEVER), events)
        times = []
        while True:
            ev = events.get(timeout=300)
            if ev.new_token_ids:
                self.tok.decode(ev.new_token_ids)  # the detokenization work the server does too
                times.append(time.perf_counter())
            if ev.finished:
                break
        return times[0] - start, (times[-1] - times[0]) / (len(times) - 1)

    def throughput(self, *, streams: int, tokens: int) -> float:
        """Aggregate tokens/s of ``streams`` requests submitted together."""
        from triton_llm.runtime import GenerationRequest

        ids = self.tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        events: queue.Queue = queue.Queue()
        start = time.perf_counter()
        for _ in range(streams):
            self.n += 1
            self.loop.submit(GenerationRequest(f"b{self.n}", ids, tokens, end_id=NEVER), events)
        produced, finished = 0, 0
        while finished < streams:
            ev = events.get(timeout=600)
            produced += len(ev.new_token_ids)
            finished += ev.finished
        return produced / (time.perf_counter() - start)

    def close(self) -> None:
        self.loop.close()


def through_triton(client, tokens: int) -> tuple[float, float]:
    """TTFT and TPOT of one request streamed through the ensemble."""
    from triton_llm.client import GenerateParams

    done = client.generate(PROMPT, GenerateParams(max_tokens=tokens, end_id=NEVER, chat_template=True))
    if done.tokens != tokens:
        raise RuntimeError(f"expected {tokens} tokens, got {done.tokens}")
    return done.ttft, done.tpot


async def concurrent(url: str, *, streams: int, tokens: int) -> float:
    """Aggregate generated tokens/s with ``streams`` concurrent requests."""
    from triton_llm.client import AsyncLLMClient, GenerateParams

    params = GenerateParams(max_tokens=tokens, end_id=NEVER, chat_template=True)
    async with AsyncLLMClient(url, timeout=300) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(client.generate(PROMPT, params) for _ in range(streams)))
        elapsed = time.perf_counter() - start
    return sum(r.tokens for r in results) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="smollm2-135m")
    parser.add_argument("--runs", type=int, default=20, help="measured requests per side (after one warm-up)")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per request")
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams for the throughput run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)

    from triton_llm.engine.local import ensure_local_engine
    from triton_llm.launch.tritonserver import TritonServer
    from triton_llm.repository import render_engine
    from triton_llm.settings import load_settings

    engine = ensure_local_engine(args.recipe, settings=load_settings({}), backend="cpu", say=lambda _: None)
    from triton_llm.client import LLMClient

    load = os.getloadavg()[0]
    local = InProcess(engine)
    in_ttft, in_tpot, tr_ttft, tr_tpot = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        repo = render_engine(engine, Path(tmp) / "repo")
        with TritonServer(repo, environ=os.environ, log_path=Path(tmp) / "server.log") as server:
            server.wait_ready(600)
            with LLMClient(server.grpc_url, timeout=300) as client:
                for i in range(args.runs + 1):  # interleaved, so load drift hits both sides alike
                    a, b = local.run(args.tokens), through_triton(client, args.tokens)
                    if i:  # the first pair warms up
                        in_ttft.append(a[0])
                        in_tpot.append(a[1])
                        tr_ttft.append(b[0])
                        tr_tpot.append(b[1])
            local_single = local.throughput(streams=1, tokens=args.tokens * 2)
            local_multi = local.throughput(streams=args.streams, tokens=args.tokens * 2)
            local.close()
            single = asyncio.run(concurrent(server.grpc_url, streams=1, tokens=args.tokens * 2))
            multi = asyncio.run(concurrent(server.grpc_url, streams=args.streams, tokens=args.tokens * 2))

    added_ttft = (p50(tr_ttft) - p50(in_ttft)) * 1000
    added_tpot = (p50(tr_tpot) / p50(in_tpot) - 1) * 100
    rows = [
        "| path | TTFT p50 (ms) | TTFT p90 (ms) | TPOT p50 (ms) | TPOT p90 (ms) |",
        "|---|---|---|---|---|",
    ]
    for name, ttft, tpot in (
        ("in-process runtime", in_ttft, in_tpot),
        ("Triton ensemble (gRPC stream)", tr_ttft, tr_tpot),
    ):
        q = statistics.quantiles
        rows.append(
            f"| {name} | {p50(ttft) * 1000:.1f} | {q(ttft, n=10)[-1] * 1000:.1f} | "
            f"{p50(tpot) * 1000:.1f} | {q(tpot, n=10)[-1] * 1000:.1f} |"
        )
    body = "\n".join(
        [
            "Command: `.venv/bin/python -m bench.serving` (smollm2-135m, cpu backend, greedy, chat-templated "
            f"prompt, {args.tokens} tokens per request, {args.runs} measured requests per side after one "
            f"warm-up, the two sides interleaved; {os.cpu_count()} cores; 1-minute load average {load:.1f} "
            "at the start, so absolute times are noisy).",
            "",
            *rows,
            "",
            f"Added by Triton + ensemble: **{added_ttft:+.1f} ms** p50 TTFT (goal <= 2 ms), "
            f"**{added_tpot:+.1f}%** p50 TPOT (goal <= 5%).",
            "",
            "| concurrency | Triton tokens/s | vs 1 stream | in-process tokens/s | vs 1 stream |",
            "|---|---|---|---|---|",
            f"| 1 stream | {single:.1f} | 1.00x | {local_single:.1f} | 1.00x |",
            f"| {args.streams} streams | {multi:.1f} | {multi / single:.2f}x (goal >= 3x) "
            f"| {local_multi:.1f} | {local_multi / local_single:.2f}x |",
            "",
            "In-process = GeneratorLoop in the benchmark process, timed from chat-template tokenization to "
            "the first token event (plus a per-token decode). Triton = `LLMClient.generate` through the "
            "ensemble (preprocessing, tensorrt_llm on the python backend, postprocessing with the exact "
            "streaming detokenizer), timed from the request to the first non-empty text piece. The "
            "concurrency rows use twice the tokens per request.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("serving", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
