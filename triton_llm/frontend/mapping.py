"""OpenAI requests to :class:`triton_llm.client.GenerateParams` (pure; no I/O).

Completions send the prompt as raw text (no chat template). Chat sends the messages as a
conversation that the server's preprocessing renders with the model's own chat template.
Features the model repository cannot serve are a 400 naming the parameter, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from triton_llm.client import GenerateParams
from triton_llm.frontend.api_errors import bad_request, unsupported
from triton_llm.frontend.protocol import ChatCompletionRequest, ChatMessage, CompletionRequest

Kind = Literal["completion", "chat"]
NO_LOGPROBS = "logprobs (the model repository returns no log probabilities)"


@dataclass(frozen=True)
class Job:
    """One request, ready for Triton."""

    kind: Kind
    prompt: str  # "" for chat: the conversation is in params.messages
    params: GenerateParams  # params.max_tokens is a placeholder when max_tokens is None
    max_tokens: int | None  # None: up to the engine's max_seq_len
    stops: tuple[str, ...]
    stream: bool
    include_usage: bool  # a usage block in the stream (non-streamed answers always have one)


def _common(req: CompletionRequest | ChatCompletionRequest) -> tuple[tuple[str, ...], bool, bool]:
    """Checks both endpoints share; returns (stops, stream, include_usage)."""
    if req.n is not None and req.n != 1:
        if req.n < 1:
            raise bad_request(f"n must be at least 1 (got {req.n})", param="n")
        raise unsupported("n", "n > 1 (several choices per request)")
    if req.logit_bias:
        raise unsupported("logit_bias", "logit_bias")
    stream = bool(req.stream)
    if req.stream_options is not None and not stream:
        raise bad_request("stream_options is only allowed when stream is true", param="stream_options")
    include_usage = bool(stream and req.stream_options and req.stream_options.include_usage)
    stops = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    return tuple(s for s in stops if s), stream, include_usage


def _params(
    req: CompletionRequest | ChatCompletionRequest, max_tokens: int | None, stops: tuple[str, ...]
) -> dict[str, Any]:
    """GenerateParams fields both endpoints set the same way (stops go to the runtime too)."""
    return dict(
        max_tokens=max_tokens if max_tokens is not None else 1,
        temperature=req.temperature,
        top_p=req.top_p,
        seed=req.seed,
        stop_words=stops,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
    )


def completion_job(req: CompletionRequest) -> Job:
    """Map ``/v1/completions``.

    Raises:
        APIError: 400 for unsupported features (several prompts, token-id prompts, logprobs, echo,
            best_of > 1, suffix) and for inconsistent fields.
    """
    stops, stream, include_usage = _common(req)
    prompt = req.prompt
    if isinstance(prompt, list):
        if not prompt:
            raise bad_request("prompt must not be empty", param="prompt")
        if not all(isinstance(p, str) for p in prompt):
            raise unsupported("prompt", "a prompt of token ids")
        if len(prompt) > 1:
            raise unsupported("prompt", "more than one prompt per request")
        text = str(prompt[0])
    else:
        text = prompt
    if req.logprobs is not None:
        raise unsupported("logprobs", NO_LOGPROBS)
    if req.echo:
        raise unsupported("echo", "echo")
    if req.best_of not in (None, 1):
        raise unsupported("best_of", "best_of > 1")
    if req.suffix is not None:
        raise unsupported("suffix", "suffix")
    params = GenerateParams(chat_template=False, **_params(req, req.max_tokens, stops))
    return Job("completion", text, params, req.max_tokens, stops, stream, include_usage)


def chat_job(req: ChatCompletionRequest) -> Job:
    """Map ``/v1/chat/completions``.

    Raises:
        APIError: 400 for unsupported features (tools, functions, non-text content, logprobs,
            response formats other than text) and for inconsistent fields.
    """
    stops, stream, include_usage = _common(req)
    if req.logprobs or req.top_logprobs is not None:
        raise unsupported("logprobs", NO_LOGPROBS)
    if req.tools or req.functions or req.function_call is not None:
        raise unsupported("tools", "tool and function calling")
    if req.tool_choice not in (None, "none", "auto"):
        raise unsupported("tool_choice", "tool_choice")
    if req.response_format is not None and req.response_format.get("type") != "text":
        raise unsupported("response_format", f"response_format {req.response_format.get('type')!r}")
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if req.max_completion_tokens is not None and req.max_tokens not in (None, req.max_completion_tokens):
        raise bad_request(
            "max_tokens and max_completion_tokens differ: send only max_completion_tokens",
            param="max_tokens",
        )
    messages = tuple(_message(i, m) for i, m in enumerate(req.messages))
    params = GenerateParams(messages=messages, **_params(req, max_tokens, stops))
    return Job("chat", "", params, max_tokens, stops, stream, include_usage)


def _message(index: int, message: ChatMessage) -> tuple[str, str]:
    """(role, text) of one chat message; ``developer`` is the system role for the chat template."""
    where = f"messages.{index}"
    if message.role in ("tool", "function") or message.tool_calls:
        raise unsupported(where, "tool and function messages")
    content = message.content
    if content is None:
        raise bad_request(f"{where}.content is required", param=f"{where}.content")
    if isinstance(content, list):
        texts = []
        for part in content:
            is_text = set(part) == {"type", "text"} and isinstance(part.get("text"), str)
            if part.get("type") != "text" or not is_text:
                raise unsupported(f"{where}.content", f"content part {part.get('type')!r} (only text parts)")
            texts.append(part["text"])
        content = "\n".join(texts)
    return ("system" if message.role == "developer" else message.role), content
