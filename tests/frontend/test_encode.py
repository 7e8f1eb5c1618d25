"""Our bodies and SSE chunks parse as the openai package's own response types (strictly)."""

from __future__ import annotations

import json

from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from triton_llm.frontend.encode import DONE, Encoder, Usage


def events(data: bytes) -> list[str]:
    assert data.endswith(b"\n\n")
    out = []
    for block in data.decode().split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        out.append(block[len("data: ") :])
    return out


def test_whole_answers():
    usage = Usage(prompt_tokens=5, completion_tokens=3)
    chat = ChatCompletion.model_validate(Encoder("chat", "m").body("Hé 😀", "stop", usage), strict=True)
    assert chat.choices[0].message.content == "Hé 😀" and chat.choices[0].finish_reason == "stop"
    assert chat.usage.total_tokens == 8 and chat.id.startswith("chatcmpl-") and chat.model == "m"
    done = Completion.model_validate(Encoder("completion", "m").body("abc", "length", usage), strict=True)
    assert done.choices[0].text == "abc" and done.choices[0].finish_reason == "length"
    assert done.object == "text_completion" and done.usage.completion_tokens == 3


def test_chat_stream_with_usage():
    enc = Encoder("chat", "m", include_usage=True)
    data = enc.opening() + enc.piece("Hel") + enc.piece("lo") + enc.closing("stop", Usage(4, 2))
    assert data.endswith(DONE)
    payloads = events(data)
    assert payloads[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(p), strict=True) for p in payloads[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, None, None, "stop"]
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 4 and chunks[-1].usage.total_tokens == 6
    assert len({c.id for c in chunks}) == 1


def test_completion_stream_without_usage():
    enc = Encoder("completion", "m")
    data = enc.opening() + enc.piece("a b") + enc.closing("length", None)
    payloads = events(data)
    first, last = (json.loads(p) for p in payloads[:-1])
    # OpenAI streams finish_reason null until the end; the SDK's Completion type only allows a value
    assert first["choices"][0]["finish_reason"] is None and "usage" not in first
    first["choices"][0]["finish_reason"] = "stop"
    chunks = [Completion.model_validate(c, strict=True) for c in (first, last)]
    assert [c.choices[0].text for c in chunks] == ["a b", ""]
    assert chunks[-1].choices[0].finish_reason == "length" and payloads[-1] == "[DONE]"
