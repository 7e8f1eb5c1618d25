"""Run under ``mpirun -np <tp>``: greedy generation over MPI tensor parallelism.

Usage: python -m tests.runtime._tp_script CHECKPOINT_DIR PROMPTS_JSON OUT_PT
Rank 0 writes ``{"outputs": {id: [tokens]}, "logits": first prompt's prefill logits}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from triton_llm.runtime import GenerationRequest, Generator, MpiComm, generate, run_worker


def main() -> None:
    ckpt, prompts_path, out_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    spec = json.loads(prompts_path.read_text())
    comm = MpiComm()
    gen = Generator(ckpt, max_batch_size=4, max_input_len=256, max_seq_len=320, threads=1, comm=comm)
    if comm.rank != 0:
        run_worker(gen)
        return
    try:
        first = spec["prompts"][0]
        logits = gen.prompt_logits(first)
        requests = [
            GenerationRequest(str(i), ids, spec["max_new_tokens"]) for i, ids in enumerate(spec["prompts"])
        ]
        outputs = generate(gen, requests)
    finally:
        gen.close()
    torch.save({"outputs": outputs, "logits": logits, "size": comm.size}, out_path)


if __name__ == "__main__":
    main()
