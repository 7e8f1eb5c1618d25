"""The OpenAI request bodies this frontend accepts, as pydantic models (unknown fields are errors).

Field names and types follow OpenAI's Completions and Chat Completions APIs. Values that only
the server can judge (max_tokens against the engine's limits, temperature, top_p, penalties)
are checked there, once; these models check shapes.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triton_llm.frontend.api_errors import bad_request


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool | None = None


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None  # parts: checked in mapping
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class _Sampling(_Strict):
    """Fields both endpoints share."""

    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None


class CompletionRequest(_Sampling):
    """``POST /v1/completions``."""

    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = None
    echo: bool | None = False
    best_of: int | None = None
    suffix: str | None = None


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None


Request = TypeVar("Request", bound=BaseModel)


def parse_body(model: type[Request], body: Any) -> Request:
    """Validate a decoded JSON body; the first problem becomes a 400 naming the field.

    Raises:
        APIError: not a JSON object, an unknown field, or a value of the wrong type.
    """
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not _is_type_tag(p)) or None
        if first["type"] == "extra_forbidden":
            raise bad_request(f"Unrecognized request argument supplied: {param}", param=param) from None
        if first["type"] == "missing":
            raise bad_request(f"Missing required parameter: {param}", param=param) from None
        raise bad_request(f"Invalid value for {param}: {first['msg']}", param=param) from None


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


def _is_type_tag(loc: object) -> bool:
    """pydantic adds the union member tried (``str``, ``list[str]``, ...) to an error's location."""
    return isinstance(loc, str) and (loc in _TYPE_TAGS or "[" in loc or loc.startswith("function-"))


__all__ = ["ChatCompletionRequest", "ChatMessage", "CompletionRequest", "parse_body"]
