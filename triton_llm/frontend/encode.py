"""OpenAI response bodies and Server-Sent Events chunks (pure)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from triton_llm.frontend.mapping import Kind

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Usage:
    """Token counts: the prompt after the chat template, and the generated token ids."""

    prompt_tokens: int
    completion_tokens: int

    def body(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def sse(payload: dict[str, Any]) -> bytes:
    """One ``data:`` event."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + text.encode("utf-8") + b"\n\n"


class Encoder:
    """Bodies of one answer: ids, object names and fields of the Completions or Chat API."""

    def __init__(self, kind: Kind, model: str, *, include_usage: bool = False) -> None:
        self.kind = kind
        self.model = model
        self.include_usage = include_usage
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def body(self, text: str, finish_reason: str, usage: Usage) -> dict[str, Any]:
        """A whole, non-streamed answer."""
        if self.kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            head = self._head("chat.completion")
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
            head = self._head("text_completion")
        return {**head, "choices": [choice], "usage": usage.body()}

    def _chunk(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        head = self._head("chat.completion.chunk" if self.kind == "chat" else "text_completion")
        payload = {**head, "choices": choices}
        if self.include_usage:  # OpenAI: null in every chunk but the last one
            payload["usage"] = usage.body() if usage is not None else None
        return sse(payload)

    def _choice(self, text: str | None, finish_reason: str | None, *, role: bool = False) -> dict[str, Any]:
        if self.kind == "chat":
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}

    def opening(self) -> bytes:
        """Chat streams open with the assistant role (and empty content); completions need nothing."""
        return self._chunk([self._choice("", None, role=True)]) if self.kind == "chat" else b""

    def piece(self, text: str) -> bytes:
        """One streamed text piece."""
        return self._chunk([self._choice(text, None)])

    def closing(self, finish_reason: str, usage: Usage | None) -> bytes:
        """The finish reason, then (with include_usage) the usage chunk, then ``[DONE]``."""
        out = self._chunk([self._choice(None if self.kind == "chat" else "", finish_reason)])
        if self.include_usage and usage is not None:
            out += self._chunk([], usage)
        return out + DONE
