"""Runtime decode: our CPU runtime vs transformers ``generate()``, and 8 streams vs 1.

Same model (smollm2-135m, float32, from the builtin GGUF), same torch thread count, same
chat prompt, greedy, end-of-sequence disabled so every run makes exactly ``--new-tokens``
tokens. Runs alternate between the engines so machine load hits both alike; each number is
the median of ``--repeats`` runs. "decode tokens/s" counts the tokens after the first one
over the time after the first one (prefill excluded; transformers timed with a streamer);
"end-to-end" counts all tokens over the whole request.

``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here (for both engines, set before torch loads):
on a machine with more runnable processes than cores, spinning OpenMP workers starve the
thread that holds the work, and multi-row GEMMs stall for tens of milliseconds.

    python -m bench.runtime_decode [--threads 2] [--new-tokens 64] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench._results import write_section

SECTION = "runtime decode"
PROMPT = "Write a short story about a robot who learns to paint."


def _model_dirs(cache: Path) -> tuple[Path, Path]:
    from triton_llm.engine.backends.cpu_convert import convert_checkpoint
    from triton_llm.engine.fetch import materialize_builtin

    hf = materialize_builtin("smollm2-135m-instruct", cache / "hf")
    ckpt = cache / "ckpt-f32-tp1"
    if not (ckpt / "config.json").is_file():
        convert_checkpoint(model_dir=str(hf), out_dir=str(ckpt), dtype="float32")
    return hf, ckpt


class _Clock:
    """A transformers streamer that timestamps every put (the prompt first, then each token)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: object) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads",
        default=f"1,{os.cpu_count() or 1}",
        help="comma-separated torch thread counts; each is measured for both engines (default 1,<cores>)",
    )
    parser.add_argument("--new-tokens", type=int, default=48, help="tokens generated per request")
    parser.add_argument("--streams", type=int, default=8, help="concurrent requests in the batched run")
    parser.add_argument("--repeats", type=int, default=5, help="rounds per thread count (medians reported)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch initializes OpenMP
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from triton_llm.runtime import GenerationRequest, Generator

    hf_dir, ckpt = _model_dirs(Path(tempfile.gettempdir()) / "triton-llm-bench")
    tok = AutoTokenizer.from_pretrained(hf_dir)
    enc = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
    ids = [int(t) for t in (enc["input_ids"] if hasattr(enc, "keys") else enc)]
    n = args.new_tokens
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model.generation_config.eos_token_id = None
    x = torch.tensor([ids])
    limit = len(ids) + n + 1
    gen = Generator(ckpt, max_batch_size=args.streams, max_input_len=len(ids), max_seq_len=limit)

    def run_hf() -> tuple[float, float]:
        clock = _Clock()
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False, streamer=clock
            )
        end = time.perf_counter()
        assert out.shape[1] == len(ids) + n and len(clock.times) == n + 1
        return (n - 1) / (clock.times[-1] - clock.times[1]), n / (end - t)

    def run_ours(streams: int) -> tuple[float, float]:
        for i in range(streams):
            gen.add(GenerationRequest(f"r{i}", ids, n))
        t = time.perf_counter()
        got = sum(len(ev.new_token_ids) for ev in gen.step())  # prefill: every stream's first token
        first = time.perf_counter()
        while gen.has_work():
            got += sum(len(ev.new_token_ids) for ev in gen.step())
        end = time.perf_counter()
        assert got == streams * n
        return streams * (n - 1) / (end - first), streams * n / (end - t)

    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        run_hf(), run_ours(1)  # warm-up (allocations, lazy init)
        samples: dict[str, list[tuple[float, float]]] = {"hf": [], "one": [], "many": []}
        for _ in range(args.repeats):
            samples["hf"].append(run_hf())
            samples["one"].append(run_ours(1))
            samples["many"].append(run_ours(args.streams))
        med = {
            k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
            for k, v in samples.items()
        }
        (hf_r, hf_e), (one_r, one_e), (many_r, many_e) = med["hf"], med["one"], med["many"]
        # ratios are medians of per-round ratios: each round runs the engines back to back, so a
        # load spike from other processes affects both sides of a ratio alike
        vs_hf = statistics.median(o[0] / h[0] for o, h in zip(samples["one"], samples["hf"], strict=True))
        vs_one = statistics.median(m[0] / o[0] for m, o in zip(samples["many"], samples["one"], strict=True))
        rows += [
            f"| {threads} | transformers generate() | 1 | {hf_r:.1f} | 1.00x | {hf_e:.1f} |",
            f"| {threads} | triton_llm.runtime | 1 | {one_r:.1f} | **{vs_hf:.2f}x** vs transformers "
            f"(goal >= 1.0x) | {one_e:.1f} |",
            f"| {threads} | triton_llm.runtime | {args.streams} | {many_r:.1f} | "
            f"**{vs_one:.2f}x** vs 1 stream (goal >= 3x) | {many_e:.1f} |",
        ]
    shown = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--no-write"]
    cmd = " ".join(["python -m bench.runtime_decode", *shown])
    body = (
        f"Command: `.venv/bin/{cmd}` (smollm2-135m float32, greedy, {len(ids)}-token chat prompt, "
        f"{n} new tokens per request, same torch thread count for both engines, medians over {args.repeats} "
        "rounds that run the engines back to back (ratios: median of per-round ratios), "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; {os.cpu_count()} cores "
        "shared with other work: absolute numbers are noisy)."
        "\n\n| threads | engine | streams | decode tokens/s (aggregate) | ratio | end-to-end tokens/s |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
