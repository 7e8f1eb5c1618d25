"""Pure request building and response classification for the ensemble / BLS models."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from triton_llm.errors import ClientError, RequestRejectedError, ServerUnavailableError


@dataclass(frozen=True)
class GenerateParams:
    """One request's settings; None leaves the server's default."""

    max_tokens: int = 128
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop_words: tuple[str, ...] = ()
    bad_words: tuple[str, ...] = ()
    chat_template: bool | None = None
    end_id: int | None = None
    pad_id: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # A conversation of (role, content) pairs for the server's chat template; the prompt must be "".
    messages: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """One streamed response: its text piece and when it arrived (``time.perf_counter``)."""

    text: str
    time: float
    final: bool = False
    tokens: int | None = None  # tokens in this response (num_output_tokens), when the model reports it


@dataclass
class Completion:
    """A finished generation and its timings."""

    text: str
    tokens: int
    ttft: float | None  # seconds from send to the first non-empty piece
    tpot: float | None  # seconds per output token after the first
    total: float
    pieces: list[str] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.total if self.total > 0 else 0.0


def build_inputs(prompt: str, params: GenerateParams, *, stream: bool) -> list[tuple[str, np.ndarray, str]]:
    """(name, array, triton dtype) for every input the request sets (batch of one)."""

    def one(value: Any, dtype: Any) -> np.ndarray:
        return np.array([[value]], dtype=dtype)

    out = [
        ("text_input", one(prompt.encode("utf-8"), object), "BYTES"),
        ("max_tokens", one(params.max_tokens, np.int32), "INT32"),
        ("stream", one(stream, bool), "BOOL"),
    ]
    optional = [
        ("temperature", params.temperature, np.float32, "FP32"),
        ("top_k", params.top_k, np.int32, "INT32"),
        ("top_p", params.top_p, np.float32, "FP32"),
        ("seed", params.seed, np.uint64, "UINT64"),
        ("apply_chat_template", params.chat_template, bool, "BOOL"),
        ("end_id", params.end_id, np.int32, "INT32"),
        ("pad_id", params.pad_id, np.int32, "INT32"),
        ("presence_penalty", params.presence_penalty, np.float32, "FP32"),
        ("frequency_penalty", params.frequency_penalty, np.float32, "FP32"),
    ]
    for name, value, dtype, triton in optional:
        if value is not None:
            out.append((name, one(value, dtype), triton))
    for name, words in (("stop_words", params.stop_words), ("bad_words", params.bad_words)):
        if words:
            out.append((name, np.array([[w.encode("utf-8") for w in words]], dtype=object), "BYTES"))
    if params.messages:
        conversation = [{"role": role, "content": content} for role, content in params.messages]
        encoded = json.dumps(conversation, ensure_ascii=False).encode("utf-8")
        out.append(("chat_messages", one(encoded, object), "BYTES"))
    return out


# The ensemble's input_map into its preprocessing step, for the inputs that decide the prompt's tokens.
PREPROCESSING_INPUTS = {
    "text_input": "QUERY",
    "max_tokens": "REQUEST_OUTPUT_LEN",
    "apply_chat_template": "APPLY_CHAT_TEMPLATE",
    "chat_messages": "CHAT_MESSAGES",
}


def preprocessing_inputs(prompt: str, params: GenerateParams) -> list[tuple[str, np.ndarray, str]]:
    """Inputs of a ``preprocessing`` request that tokenizes the prompt exactly as the ensemble does.

    ``max_tokens`` is 1, so only the prompt's own limits apply.
    """
    counting = GenerateParams(chat_template=params.chat_template, messages=params.messages, max_tokens=1)
    return [
        (PREPROCESSING_INPUTS[name], arr, dtype)
        for name, arr, dtype in build_inputs(prompt, counting, stream=False)
        if name in PREPROCESSING_INPUTS
    ]


def check_params(params: GenerateParams) -> None:
    """Client-side checks of values the wire format cannot carry.

    Raises:
        RequestRejectedError: seed negative or max_tokens outside int32.
    """
    if params.seed is not None and params.seed < 0:
        raise RequestRejectedError(f"seed must be >= 0 (got {params.seed})", field="seed", value=params.seed)
    if not -(2**31) <= params.max_tokens < 2**31:
        raise RequestRejectedError(f"max_tokens {params.max_tokens} does not fit int32", field="max_tokens")


def stop_inputs() -> list[tuple[str, np.ndarray, str]]:
    """Inputs of a ``tensorrt_llm`` request with ``stop=true`` (TensorRT-LLM's explicit cancel).

    Sent with the cancelled request's id after closing its stream: Triton's ensemble does
    not pass a cancellation on to the running ``tensorrt_llm`` step, and the server's own
    relay (postprocessing) only acts when the next token arrives; this stops it at once.
    """
    one = np.ones((1, 1), dtype=np.int32)
    return [
        ("input_ids", one, "INT32"),
        ("input_lengths", one, "INT32"),
        ("request_output_len", one, "INT32"),
        ("stop", np.ones((1, 1), dtype=bool), "BOOL"),
    ]


def new_request_id() -> str:
    """A unique request id: what the ``stop`` input (and, on GPU, the server's relay) addresses."""
    return uuid.uuid4().hex


def classify_error(message: str, *, url: str, model: str, status: str = "") -> ClientError:
    """Map a Triton/gRPC error to our error classes with a one-line fix."""
    text = str(message)
    if status in ("StatusCode.UNAVAILABLE", "UNAVAILABLE") or "failed to connect" in text.lower():
        return ServerUnavailableError(
            f"cannot reach Triton at {url}: {text}", hint="start it with `triton-llm serve` or check --url"
        )
    if "unknown model" in text.lower() or "is not ready" in text.lower():
        return ServerUnavailableError(
            f"model {model!r} is not ready on {url}: {text}", hint="wait for the server to finish loading"
        )
    if "decoupled" in text.lower() and "doesn't support" in text.lower():
        return ClientError(
            f"model {model!r} is decoupled (streaming) and cannot answer a unary infer: {text}",
            hint="use stream() or generate(), which go over the gRPC stream",
        )
    if "bad request" in text.lower() or "not supported by the cpu runtime" in text.lower():
        return RequestRejectedError(f"request rejected: {text}")
    return ClientError(f"request failed: {text}")


def chunk_from(result: Any, when: float) -> Chunk:
    """A Chunk from a tritonclient InferResult of the ensemble/BLS."""
    final = result.get_response().parameters["triton_final_response"].bool_param
    out = result.as_numpy("text_output")
    text = out.reshape(-1)[0].decode("utf-8") if out is not None and out.size else ""
    count = result.as_numpy("num_output_tokens")
    tokens = int(count.reshape(-1)[0]) if count is not None and count.size else None
    return Chunk(text=text, time=when, final=final, tokens=tokens)


def summarize(chunks: list[Chunk], *, sent: float) -> Completion:
    """Text, token count and timings of a finished stream.

    The token count is the sum of ``num_output_tokens``; for a model that does not report
    it, each response counts as one decode step, except an empty first response and an
    empty final one (the flag-only end of stream).
    """
    pieces = [c.text for c in chunks]
    counted = list(chunks)
    if counted and counted[-1].final and not counted[-1].text:
        counted.pop()
    if counted and not counted[0].text:
        counted.pop(0)
    text_times = [c.time for c in chunks if c.text]
    last = chunks[-1].time if chunks else sent
    tokens = len(counted)
    if chunks and all(c.tokens is not None for c in chunks):
        tokens = sum(c.tokens or 0 for c in chunks)
    ttft = text_times[0] - sent if text_times else None
    tpot = (text_times[-1] - text_times[0]) / (tokens - 1) if len(text_times) > 1 and tokens > 1 else None
    return Completion(
        text="".join(pieces), tokens=tokens, ttft=ttft, tpot=tpot, total=last - sent, pieces=pieces
    )
