"""OpenAI request bodies to GenerateParams, and the 400s for what cannot be served (no server)."""

from __future__ import annotations

import pytest

from triton_llm.frontend.api_errors import APIError
from triton_llm.frontend.mapping import chat_job, completion_job
from triton_llm.frontend.protocol import ChatCompletionRequest, CompletionRequest, parse_body

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
COMPLETION = {"model": "m", "prompt": "Once upon"}


def chat(**fields):
    return chat_job(parse_body(ChatCompletionRequest, {**CHAT, **fields}))


def completion(**fields):
    return completion_job(parse_body(CompletionRequest, {**COMPLETION, **fields}))


def test_completion_is_raw_text_with_every_sampling_field():
    job = completion(
        max_tokens=7, temperature=0.5, top_p=0.9, seed=3, stop=["\n", ""], presence_penalty=0.0, n=1
    )
    assert job.kind == "completion" and job.prompt == "Once upon" and job.max_tokens == 7
    p = job.params
    assert (p.max_tokens, p.temperature, p.top_p, p.seed, p.presence_penalty) == (7, 0.5, 0.9, 3, 0.0)
    assert p.chat_template is False and p.messages == ()
    assert job.stops == ("\n",) and p.stop_words == ("\n",)
    assert not job.stream and not job.include_usage
    assert completion(prompt=["one prompt"], stop="END").prompt == "one prompt"
    assert completion(stop="END").stops == ("END",)


def test_chat_sends_the_conversation_for_the_servers_template():
    job = chat(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "ok", "name": "bot"},
            {"role": "user", "content": "again"},
        ],
        max_completion_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert job.prompt == "" and job.kind == "chat" and job.params.chat_template is None
    assert job.params.messages == (
        ("system", "Be brief."),
        ("user", "a\nb"),
        ("assistant", "ok"),
        ("user", "again"),
    )
    assert job.max_tokens == 9 == job.params.max_tokens
    assert job.stream and job.include_usage
    assert chat(max_tokens=5).max_tokens == 5
    assert chat().max_tokens is None  # up to the engine's context, decided with the prompt's length


@pytest.mark.parametrize(
    ("endpoint", "fields", "status", "param", "message"),
    [
        ("chat", {"n": 2}, 400, "n", "n > 1"),
        ("chat", {"n": 0}, 400, "n", "n must be at least 1"),
        ("completion", {"n": 3}, 400, "n", "n > 1"),
        ("chat", {"logprobs": True}, 400, "logprobs", "no log probabilities"),
        ("chat", {"top_logprobs": 2}, 400, "logprobs", "no log probabilities"),
        ("completion", {"logprobs": 1}, 400, "logprobs", "no log probabilities"),
        ("chat", {"logit_bias": {"50256": -100}}, 400, "logit_bias", "not supported"),
        ("chat", {"tools": [{"type": "function"}]}, 400, "tools", "tool and function calling"),
        ("chat", {"tool_choice": "required"}, 400, "tool_choice", "not supported"),
        ("chat", {"response_format": {"type": "json_object"}}, 400, "response_format", "json_object"),
        ("chat", {"stream_options": {"include_usage": True}}, 400, "stream_options", "only allowed when"),
        ("chat", {"max_tokens": 3, "max_completion_tokens": 4}, 400, "max_tokens", "differ"),
        ("chat", {"messages": []}, 400, "messages", "Invalid value for messages"),
        ("chat", {"messages": [{"role": "tool", "content": "x"}]}, 400, "messages.0", "tool and function"),
        ("chat", {"messages": [{"role": "user"}]}, 400, "messages.0.content", "is required"),
        ("chat", {"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role", "Invalid value"),
        (
            "chat",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            400,
            "messages.0.content",
            "'image_url' \\(only text parts\\)",
        ),
        ("chat", {"temperature": "hot"}, 400, "temperature", "Invalid value for temperature"),
        ("chat", {"stop": 5}, 400, "stop", "Invalid value for stop"),
        ("chat", {"best_of": 2}, 400, "best_of", "Unrecognized request argument supplied: best_of"),
        ("chat", {"model": None}, 400, "model", "Invalid value for model"),
        ("completion", {"prompt": ["a", "b"]}, 400, "prompt", "more than one prompt"),
        ("completion", {"prompt": [1, 2, 3]}, 400, "prompt", "token ids"),
        ("completion", {"prompt": []}, 400, "prompt", "must not be empty"),
        ("completion", {"echo": True}, 400, "echo", "not supported"),
        ("completion", {"best_of": 2}, 400, "best_of", "not supported"),
        ("completion", {"suffix": "x"}, 400, "suffix", "not supported"),
        ("completion", {"messages": []}, 400, "messages", "Unrecognized request argument"),
    ],
)
def test_rejected_requests_name_the_parameter(endpoint, fields, status, param, message):
    with pytest.raises(APIError, match=message) as info:
        (chat if endpoint == "chat" else completion)(**fields)
    assert (info.value.status, info.value.param) == (status, param)
    assert set(info.value.body()["error"]) == {"message", "type", "param", "code"}


def test_missing_fields_and_non_objects():
    with pytest.raises(APIError, match="Missing required parameter: messages"):
        parse_body(ChatCompletionRequest, {"model": "m"})
    with pytest.raises(APIError, match="must be a JSON object"):
        parse_body(CompletionRequest, ["not", "an", "object"])
