"""The CPU reference runtime: serves the cpu backend's TensorRT-LLM checkpoints.

:class:`Generator` loads one tensor-parallel rank and runs in-flight batched generation
(greedy, or seeded temperature/top-k/top-p; stop words, end id, bad words);
:class:`GeneratorLoop` drives it from a background thread; :func:`run_worker` keeps ranks
> 0 of an mpirun group in lockstep with rank 0.
"""

from triton_llm.runtime._types import (
    FinishReason,
    GenerationRequest,
    GeneratorLimits,
    InvalidRequestError,
    RuntimeStats,
    SamplingParams,
    TokenEvent,
    sampling_problems,
)
from triton_llm.runtime.checkpoint import ModelConfig, read_checkpoint_config
from triton_llm.runtime.generator import Generator, generate, run_worker
from triton_llm.runtime.loop import GeneratorLoop
from triton_llm.runtime.parallel import LocalComm, MpiComm, TensorParallelComm

__all__ = [
    "FinishReason",
    "GenerationRequest",
    "Generator",
    "GeneratorLimits",
    "GeneratorLoop",
    "InvalidRequestError",
    "LocalComm",
    "ModelConfig",
    "MpiComm",
    "RuntimeStats",
    "SamplingParams",
    "TensorParallelComm",
    "TokenEvent",
    "generate",
    "read_checkpoint_config",
    "run_worker",
    "sampling_problems",
]
