"""Preprocessing checks with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from triton_llm.repository.preprocess import Preprocessor, RequestError, list_to_words, words_to_list


@pytest.fixture
def pre(tokenizer):
    return Preprocessor(tokenizer, max_input_len=64, max_seq_len=96, chat_template=False)


def test_plain_prompt(pre, tokenizer):
    p = pre.prepare("Hello there", max_tokens=8)
    assert p.input_ids.tolist() == tokenizer.encode("Hello there")
    assert p.end_id == tokenizer.eos_token_id and p.output_len == 8


def test_chat_template_server_default_and_per_request_switch(tokenizer):
    on = Preprocessor(tokenizer, max_input_len=256, max_seq_len=512, chat_template=True)
    with_template = tokenizer.decode(on.prepare("Hi", max_tokens=4).input_ids)
    assert "<|im_start|>user" in with_template and with_template.rstrip().endswith("assistant")
    raw = on.prepare("Hi", max_tokens=4, apply_chat_template=False).input_ids
    assert tokenizer.decode(raw) == "Hi"


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "message"),
    [
        ("", 8, "text_input is empty"),
        ("   \n", 8, "text_input is empty"),
        ("hi", 0, "max_tokens must be at least 1"),
        ("hi", -3, "max_tokens must be at least 1"),
        ("word " * 100, 8, "above the engine's max_input_len of 64"),
        ("hi", 200, "above the engine limit"),
    ],
)
def test_rejected_requests_name_the_problem(pre, prompt, max_tokens, message):
    with pytest.raises(RequestError, match=message):
        pre.prepare(prompt, max_tokens=max_tokens)


def test_end_id_outside_vocabulary(pre):
    with pytest.raises(RequestError, match="end_id 999999 is outside the vocabulary"):
        pre.prepare("hi", max_tokens=2, end_id=999999)


def test_words_round_trip(tokenizer):
    arr = words_to_list(["stop here", "\n\n", ""], tokenizer)
    assert arr.shape[0] == 2 and arr.dtype == np.int32
    assert list_to_words(arr) == [
        tokenizer.encode("stop here", add_special_tokens=False),
        tokenizer.encode("\n\n", add_special_tokens=False),
    ]
    assert list_to_words(words_to_list([], tokenizer)) == []


def test_chat_messages_go_through_the_tokenizers_template(tokenizer):
    pre = Preprocessor(tokenizer, max_input_len=256, max_seq_len=512, chat_template=False)
    messages = [
        {"role": "system", "content": "You answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour !"},
        {"role": "user", "content": "How are you?"},
    ]
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    expected = expected["input_ids"] if hasattr(expected, "keys") else expected
    got = pre.prepare("", max_tokens=4, chat_messages=json.dumps(messages))
    assert got.input_ids.tolist() == list(expected)
    # one user message is exactly what apply_chat_template does with a plain prompt
    single = pre.prepare("", max_tokens=4, chat_messages=json.dumps([{"role": "user", "content": "Hi"}]))
    plain = pre.prepare("Hi", max_tokens=4, apply_chat_template=True)
    assert single.input_ids.tolist() == plain.input_ids.tolist()


@pytest.mark.parametrize(
    ("prompt", "messages", "chat", "message"),
    [
        ("Hi", '[{"role": "user", "content": "Hi"}]', None, "either text_input or chat_messages"),
        ("", "not json", None, "chat_messages is not valid JSON"),
        ("", "[]", None, "chat_messages must be a non-empty JSON array"),
        ("", '{"role": "user"}', None, "chat_messages must be a non-empty JSON array"),
        ("", '[{"role": "user"}]', None, r"chat_messages\[0\] must be an object with string"),
        ("", '[{"role": "user", "content": 3}]', None, r"chat_messages\[0\] must be an object with string"),
        ("", '[{"role": "user", "content": "a", "x": 1}]', None, r"chat_messages\[0\] must be an object"),
        ("", '[{"role": "user", "content": "a"}]', False, "chat_messages needs the chat template"),
    ],
)
def test_bad_chat_messages_are_rejected(tokenizer, prompt, messages, chat, message):
    pre = Preprocessor(tokenizer, max_input_len=256, max_seq_len=512)
    with pytest.raises(RequestError, match=message):
        pre.prepare(prompt, max_tokens=4, chat_messages=messages, apply_chat_template=chat)
