"""Run under ``mpirun -np <tp>``: greedy generation over MPI tensor parallelism.

Usage: python -m tests.runtime._tp_script CHECKPOINT_DIR PROMPTS_JSON OUT_PT [step|loop]

``step``: rank 0 calls Generator.step() itself. ``loop``: rank 0 serves through a
GeneratorLoop and ranks > 0 follow in ``run_worker`` on a background thread, as the Triton
model does; it then cancels a long request mid-stream and records every rank's slot count
while it ran and after (``rank_slots``). Rank 0 writes
``{"outputs": {id: [tokens]}, "logits": first prompt's logits, "rank_slots": ...}``.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from pathlib import Path

import torch

from triton_llm.runtime import GenerationRequest, Generator, GeneratorLoop, MpiComm, generate, run_worker


def _serve_with_loop(
    gen: Generator, requests: list[GenerationRequest]
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    loop = GeneratorLoop(gen)
    events: queue.Queue = queue.Queue()
    try:
        for r in requests:
            loop.submit(r, events)
        out: dict[str, list[int]] = {r.request_id: [] for r in requests}
        open_ids = set(out)
        while open_ids:
            ev = events.get(timeout=300)
            out[ev.request_id].extend(ev.new_token_ids)
            if ev.finished:
                open_ids.discard(ev.request_id)
        return out, _cancel_mid_stream(loop, requests[0].input_ids)
    finally:
        loop.close()


def _cancel_mid_stream(loop: GeneratorLoop, prompt: list[int]) -> dict[str, list[int]]:
    """Cancel a long request on rank 0 after a few tokens; every rank's slots while it ran and after."""
    events: queue.Queue = queue.Queue()
    loop.submit(GenerationRequest("long", prompt, 60), events)
    for _ in range(3):
        events.get(timeout=300)
    running = list(loop.stats().rank_slots)
    loop.cancel("long")
    while not events.get(timeout=300).finished:
        pass
    deadline = time.monotonic() + 30
    while any(loop.stats().rank_slots) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"running": running, "after_cancel": list(loop.stats().rank_slots)}


def main() -> None:
    ckpt, prompts_path, out_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "step"
    spec = json.loads(prompts_path.read_text())
    comm = MpiComm()
    gen = Generator(ckpt, max_batch_size=4, max_input_len=192, max_seq_len=256, threads=1, comm=comm)
    if comm.rank != 0:
        if mode == "loop":
            worker = threading.Thread(target=run_worker, args=(gen,), daemon=True)
            worker.start()
            worker.join()
        else:
            run_worker(gen)
        return
    logits = gen.prompt_logits(spec["prompts"][0])
    requests = [
        GenerationRequest(str(i), ids, spec["max_new_tokens"]) for i, ids in enumerate(spec["prompts"])
    ]
    slots: dict[str, list[int]] = {}
    if mode == "loop":
        outputs, slots = _serve_with_loop(gen, requests)  # closes the generator
    else:
        try:
            outputs = generate(gen, requests)
        finally:
            gen.close()
    torch.save({"outputs": outputs, "logits": logits, "size": comm.size, "rank_slots": slots}, out_path)


if __name__ == "__main__":
    main()
