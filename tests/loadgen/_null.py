"""The null decoupled LLM (tests/loadgen/null_llm) rendered into a model repository, and served.

Its inputs and outputs are the ensemble's (a subset), so every bench protocol that speaks
to Triton drives it unchanged; ``ttft_ms`` and ``itl_ms`` are its exact timing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from triton_llm.launch.tritonserver import TritonServer

MODEL_DIR = Path(__file__).resolve().parent / "null_llm"

CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 64
model_transaction_policy {{ decoupled: true }}
input [
  {{ name: "text_input", data_type: TYPE_STRING, dims: [ 1 ] }},
  {{ name: "max_tokens", data_type: TYPE_INT32, dims: [ 1 ] }},
  {{ name: "stream", data_type: TYPE_BOOL, dims: [ 1 ], optional: true }},
  {{ name: "apply_chat_template", data_type: TYPE_BOOL, dims: [ 1 ], optional: true }},
  {{ name: "end_id", data_type: TYPE_INT32, dims: [ 1 ], optional: true }}
]
output [
  {{ name: "text_output", data_type: TYPE_STRING, dims: [ -1 ] }},
  {{ name: "num_output_tokens", data_type: TYPE_INT32, dims: [ 1 ] }},
  {{ name: "server_times", data_type: TYPE_FP64, dims: [ 2 ] }}
]
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
parameters {{ key: "ttft_ms", value: {{ string_value: "{ttft_ms}" }} }}
parameters {{ key: "itl_ms", value: {{ string_value: "{itl_ms}" }} }}
"""


def render_null_repo(out: Path, *, ttft_ms: float, itl_ms: float, name: str = "null_llm") -> Path:
    """A model repository at ``out`` holding the null model with this timing."""
    model = out / name
    (model / "1").mkdir(parents=True)
    shutil.copy2(MODEL_DIR / "model.py", model / "1" / "model.py")
    (model / "config.pbtxt").write_text(CONFIG.format(name=name, ttft_ms=ttft_ms, itl_ms=itl_ms))
    return out


@contextmanager
def serve_null(
    root: Path, *, ttft_ms: float, itl_ms: float, ready_timeout: float = 120
) -> Iterator[TritonServer]:
    """Triton serving the null model on free ports; always stopped."""
    repo = render_null_repo(root / "repo", ttft_ms=ttft_ms, itl_ms=itl_ms)
    server = TritonServer(repo, environ=os.environ, log_path=root / "tritonserver.log")
    server.start()
    try:
        server.wait_ready(timeout=ready_timeout)
        yield server
    finally:
        server.stop()
