"""Triton model repository: render the inflight_batcher_llm-compatible templates.

The python-backend models' logic (tokenizing, exact streaming detokenization, the CPU
``tensorrt_llm`` model, BLS, cancellation relays and the CPU model's metrics) lives here
too, so each ``model.py`` stays a thin shim.
"""

from triton_llm.repository.detokenizer import IncrementalDetokenizer, StreamStates
from triton_llm.repository.preprocess import Preprocessor, RequestError
from triton_llm.repository.render import (
    MODELS,
    ServableEngine,
    fill_template,
    plan_parameters,
    read_engine_config,
    render_engine,
    render_files,
    render_repository,
    template_dir,
    tensorrt_llm_parameters,
)

__all__ = [
    "MODELS",
    "IncrementalDetokenizer",
    "Preprocessor",
    "RequestError",
    "ServableEngine",
    "StreamStates",
    "fill_template",
    "plan_parameters",
    "read_engine_config",
    "render_engine",
    "render_files",
    "render_repository",
    "template_dir",
    "tensorrt_llm_parameters",
]
