"""Request, sampling and event types of the CPU runtime, and its request error."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from triton_llm.errors import UsageError

FinishReason = Literal["length", "end_id", "stop_word", "cancelled", "error"]


class InvalidRequestError(UsageError):
    """A generation request breaks a limit or carries a bad value; ``field`` names it."""


@dataclass
class SamplingParams:
    """Decoding settings. Greedy when none is set, or ``top_k == 1``, or ``temperature == 0``.

    ``seed`` makes sampling reproducible per request (one ``torch.Generator`` each).
    """

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        """True when decoding is argmax."""
        if self.top_k == 1 or self.temperature == 0:
            return True
        return self.temperature is None and not self.top_k and self.top_p is None


def sampling_problems(params: SamplingParams) -> list[tuple[str, float | int, str]]:
    """The one range rule of each sampling field: ``(field, value, rule)`` for each value that breaks it.

    The ranges are TensorRT-LLM 1.2's ``SamplingConfig`` checks (``checkTemperature``, ``checkTopK``,
    ``checkTopP`` in ``cpp/tensorrt_llm/executor/samplingConfig.cpp``): temperature >= 0, top_k >= 0,
    0 < top_p <= 1. A temperature must also be finite here (NaN or infinity would sample from NaNs).
    """
    problems: list[tuple[str, float | int, str]] = []
    t, k, p = params.temperature, params.top_k, params.top_p
    if t is not None and not (math.isfinite(t) and t >= 0):
        problems.append(("temperature", t, "must be >= 0 and finite (0 means greedy)"))
    if k is not None and not k >= 0:
        problems.append(("top_k", k, "must be >= 0 (0 means no top-k filter)"))
    if p is not None and not 0 < p <= 1:
        problems.append(("top_p", p, "must be in (0, 1] (1 means no top-p filter)"))
    return problems


@dataclass
class GenerationRequest:
    """One generation: prompt ids, output budget, stop conditions and sampling.

    ``stop_words`` and ``bad_words`` are token-id sequences. As in TensorRT-LLM, a generated
    ``end_id`` ends the request and is NOT part of the output, while a matched stop word ends
    it and IS part of the output.
    """

    request_id: str
    input_ids: list[int]
    max_new_tokens: int
    end_id: int | None = None
    pad_id: int | None = None
    stop_words: list[list[int]] = field(default_factory=list)
    bad_words: list[list[int]] = field(default_factory=list)
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass
class TokenEvent:
    """What one step produced for one request (``new_token_ids`` may be empty when it ends)."""

    request_id: str
    new_token_ids: list[int]
    finished: bool = False
    finish_reason: FinishReason | None = None
    error: str | None = None


@dataclass(frozen=True)
class GeneratorLimits:
    """The limits a :class:`Generator` enforces on requests."""

    max_input_len: int
    max_seq_len: int
    max_batch_size: int
    vocab_size: int


@dataclass(frozen=True)
class RuntimeStats:
    """A snapshot of the runtime's load, for metrics (TensorRT-LLM's request metrics and ours).

    ``queued`` requests wait for a KV slot; ``running`` hold one; ``context`` were admitted
    (prefilled) in the last step. Each slot owns a contiguous KV region of ``tokens_per_slot``
    tokens (the runtime has no paged KV cache). ``rank_slots`` is the number of KV slots each tensor-parallel
    rank computed in its last step (rank order): every rank counts its own, so a slot freed on
    rank 0 but still computed elsewhere would show here.
    """

    queued: int = 0
    running: int = 0
    context: int = 0
    max_batch_size: int = 0
    rank_slots: tuple[int, ...] = ()
    context_tokens: int = 0  # prompt tokens prefilled in the last step
    generation: int = 0  # requests that decoded a token in the last step
    iteration: int = 0  # steps that ran a forward pass so far
    step_end_us: int = 0  # wall-clock microseconds since the epoch when the last step ended
    tokens_per_slot: int = 0  # KV cache length of one slot (max_seq_len)

    @property
    def active(self) -> int:
        """Queued plus running: TensorRT-LLM's "Active Request Count"."""
        return self.queued + self.running
