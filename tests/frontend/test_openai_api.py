"""The real ``openai`` client against the frontend and a real Triton serving smollm2-135m."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from tests.frontend.conftest import MODEL, start_frontend
from triton_llm.launch.tritonserver import free_port

PROMPTS = [
    "Say hi in Chinese and add an emoji.",
    "Reply with three emojis.",
    "Write a haiku about rain.",
]


@pytest.fixture(scope="module")
def client(frontend):
    with frontend.openai() as c:
        yield c


@pytest.fixture(scope="module")
def tokenizer(cpu_engine):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(cpu_engine.tokenizer_dir))


def chat_ids(tokenizer, messages) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def test_models_list_and_retrieve(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "triton-llm"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4o")
    assert info.value.body["code"] == "model_not_found"


def test_chat_goes_through_the_models_chat_template(client, tokenizer):
    messages = [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    done = client.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=40)
    choice = done.choices[0]
    assert "Paris" in choice.message.content and choice.message.role == "assistant"
    assert choice.finish_reason == "stop" and done.object == "chat.completion" and done.model == MODEL
    assert done.usage.prompt_tokens == len(chat_ids(tokenizer, messages))  # system prompt included
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_streamed_pieces_join_to_the_non_streamed_answer(client, endpoint):
    for prompt in PROMPTS:
        if endpoint == "chat":
            args = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 40}
            whole = client.chat.completions.create(**args)
            expected = whole.choices[0].message.content
            chunks = list(
                client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
            )
            pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        else:
            args = {"model": MODEL, "prompt": f"Question: {prompt}\nAnswer:", "max_tokens": 40}
            whole = client.completions.create(**args)
            expected = whole.choices[0].text
            chunks = list(
                client.completions.create(**args, stream=True, stream_options={"include_usage": True})
            )
            pieces = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
        assert "".join(pieces) == expected, (prompt, pieces)
        assert len(pieces) > 5, "the answer was not streamed piece by piece"
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == [whole.choices[0].finish_reason]
        assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
        assert all(c.usage is None for c in chunks[:-1]) and len({c.id for c in chunks}) == 1


def test_answers_exercise_spaces_newlines_emoji_and_cjk(client):
    text = "".join(
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": p}], max_tokens=40)
        .choices[0]
        .message.content
        for p in PROMPTS
    )
    assert " " in text and "\n" in text
    assert any(ord(ch) > 0xFFFF for ch in text), f"no 4-byte character (emoji) in {text!r}"
    assert any(0x4E00 <= ord(ch) <= 0x9FFF for ch in text), f"no CJK character in {text!r}"


def test_usage_equals_the_tokenizer_and_the_generated_ids(client, tokenizer, cpu_engine):
    """Prompt tokens after the template, completion tokens = the ids the runtime generates (greedy)."""
    from triton_llm.runtime import GenerationRequest, Generator, generate

    build = cpu_engine.engine_config["build_config"]
    generator = Generator(
        cpu_engine.checkpoint_dir,
        max_batch_size=2,
        max_input_len=build["max_input_len"],
        max_seq_len=build["max_seq_len"],
        threads=1,
    )
    try:
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        prompt = "The first five prime numbers are"
        chat_prompt, raw_prompt = chat_ids(tokenizer, messages), tokenizer.encode(prompt)
        eos = tokenizer.eos_token_id
        ids = generate(
            generator,
            [
                GenerationRequest("chat", chat_prompt, 60, end_id=eos),
                GenerationRequest("raw", raw_prompt, 9, end_id=eos),
            ],
        )
    finally:
        generator.close()
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=60)
    assert chat.choices[0].finish_reason == "stop"  # the model ended it (end_id) before 60 tokens
    assert chat.usage.prompt_tokens == len(chat_prompt)
    assert chat.usage.completion_tokens == len(ids["chat"]) < 60
    assert chat.choices[0].message.content == tokenizer.decode(ids["chat"], skip_special_tokens=True)
    raw = client.completions.create(model=MODEL, prompt=prompt, max_tokens=9)
    assert raw.choices[0].finish_reason == "length"
    assert (
        (raw.usage.prompt_tokens, raw.usage.completion_tokens)
        == (len(raw_prompt), len(ids["raw"]))
        == (
            len(raw_prompt),
            9,
        )
    )
    assert raw.choices[0].text == tokenizer.decode(ids["raw"], skip_special_tokens=True)


def test_stop_sequences_cut_the_text_streamed_or_not(client):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    full = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=40)
    text = full.choices[0].message.content
    # "apit" sits inside one token (" capital"), so only the frontend can see it; "France" is whole tokens
    for stop in (["apit"], ["France", "nowhere"], "is"):
        first = min(text.find(s) for s in ([stop] if isinstance(stop, str) else stop) if s in text)
        whole = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=40, stop=stop)
        assert (whole.choices[0].message.content, whole.choices[0].finish_reason) == (text[:first], "stop")
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=messages,
                max_tokens=40,
                stop=stop,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text[:first]
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert 0 < chunks[-1].usage.completion_tokens <= full.usage.completion_tokens


def test_length_limits_and_seeded_sampling(client):
    messages = [{"role": "user", "content": "Tell me a story about a dragon."}]
    short = client.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    sampled = [
        client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=12, temperature=1.0, top_p=0.95, seed=seed
        )
        .choices[0]
        .message.content
        for seed in (1, 1, 2)
    ]
    assert sampled[0] == sampled[1] != sampled[2]


BAD = [
    ({"n": 2}, "n", "n > 1"),
    ({"logprobs": True}, "logprobs", "no log probabilities"),
    ({"max_tokens": 0}, None, "max_tokens must be at least 1"),
    ({"max_tokens": 5000}, None, "above the engine limit"),
    ({"temperature": -1.0}, None, "temperature must be >= 0"),
    ({"top_p": 1.5}, None, r"top_p must be in \(0, 1\]"),
    ({"presence_penalty": 0.5}, None, "presence_penalty=0.5 is not supported by the cpu runtime"),
    ({"extra_body": {"foo": 1}}, "foo", "Unrecognized request argument supplied: foo"),
    ({"messages": [{"role": "user", "content": "word " * 3000}]}, None, "above the engine's max_input_len"),
]


@pytest.mark.parametrize("stream", [False, True])
def test_bad_requests_get_openai_errors_and_leave_the_server_healthy(client, frontend, stream):
    for fields, param, message in BAD:
        args = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **fields}
        with pytest.raises(openai.BadRequestError, match=message) as info:
            client.chat.completions.create(**args, stream=stream)  # a 400, never a broken stream
        assert info.value.status_code == 400 and info.value.param == param
        assert set(info.value.body) == {"message", "type", "param", "code"}
    with pytest.raises(openai.BadRequestError, match="text_input is empty"):
        client.completions.create(model=MODEL, prompt="", max_tokens=4)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert get(f"{frontend.url}/health") == (200, {"status": "ok"})
    assert client.completions.create(model=MODEL, prompt="Hello", max_tokens=2).usage.completion_tokens == 2


def test_triton_down_is_503(tmp_path):
    with start_frontend(f"127.0.0.1:{free_port()}", tmp_path) as dead, dead.openai() as c:
        with pytest.raises(openai.InternalServerError) as info:
            c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True)
        assert info.value.status_code == 503 and info.value.body["code"] == "triton_unavailable"
        status, body = get(f"{dead.url}/health")
        assert status == 503 and body["error"]["type"] == "server_error"


def test_the_bls_model_answers_the_same(client, triton_server, tmp_path):
    args = {"model": MODEL, "messages": [{"role": "user", "content": PROMPTS[0]}], "max_tokens": 30}
    expected = client.chat.completions.create(**args).choices[0].message.content
    flags = ("--triton-model", "tensorrt_llm_bls")
    with start_frontend(triton_server.grpc_url, tmp_path, *flags) as bls, bls.openai() as c:
        chunks = list(c.chat.completions.create(**args, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == expected
