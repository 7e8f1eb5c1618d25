"""The streaming detokenizer against full decodes of real SmolLM2 token sequences."""

from __future__ import annotations

import random

import pytest

from triton_llm.repository.cancel import stop_id, stream_key
from triton_llm.repository.detokenizer import (
    REPLACEMENT,
    IncrementalDetokenizer,
    StreamStates,
    decode,
    postprocess_text,
)

TEXTS = [
    "Hello world",
    "  leading spaces and  double  spaces ",
    "line one\nline two\n\n  indented\ttab",
    "emoji 😀 in the middle 🚀🚀 and a family 👨‍👩‍👧",
    "中文测试，你好世界。日本語もあります",
    "mixed: café naïve Ωμέγα — “quotes” …",
    "code:\n    def f(x):\n        return x  # ok\n",
]


def stream(tokenizer, ids, sizes):
    detok = IncrementalDetokenizer(tokenizer)
    pieces, i = [], 0
    for size in sizes:
        pieces.append(detok.push(ids[i : i + size]))
        i += size
    pieces.append(detok.push(ids[i:]))
    return pieces


def text_of(tokenizer, ids):
    """The rule: a sequence's text is its full decode without trailing U+FFFD."""
    return decode(tokenizer, ids).rstrip(REPLACEMENT)


@pytest.mark.parametrize("text", TEXTS)
def test_token_by_token_concatenation_equals_full_decode(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = stream(tokenizer, ids, [1] * len(ids))
    assert "".join(pieces) == decode(tokenizer, ids) == text
    assert not any(REPLACEMENT in p for p in pieces), pieces


def test_multibyte_characters_really_split_across_tokens(tokenizer):
    # the test above only proves something if some character spans several tokens
    ids = tokenizer.encode("😀 中", add_special_tokens=False)
    assert any(REPLACEMENT in tokenizer.decode([i]) for i in ids)


def test_random_chunk_sizes(tokenizer):
    rng = random.Random(7)
    text = "".join(TEXTS)
    ids = tokenizer.encode(text, add_special_tokens=False)
    for _ in range(20):
        sizes, left = [], len(ids)
        while left > 0:
            sizes.append(min(left, rng.randint(1, 4)))
            left -= sizes[-1]
        assert "".join(stream(tokenizer, ids, sizes)) == text


def test_random_token_sequences_match_full_decode(tokenizer):
    """Arbitrary ids (invalid UTF-8 runs too), split anyhow: the full decode minus trailing U+FFFD."""
    rng = random.Random(3)
    vocab = len(tokenizer)
    for _ in range(40):
        ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 40))]
        assert "".join(stream(tokenizer, ids, [1] * len(ids))) == text_of(tokenizer, ids)
        assert "".join(stream(tokenizer, ids, [rng.randint(1, 5)])) == text_of(tokenizer, ids)


def test_a_character_cut_at_the_end_is_dropped_in_every_split(tokenizer):
    ids = tokenizer.encode("ok 😀", add_special_tokens=False)
    cut = ids[:-1]  # ends in the middle of the emoji
    assert decode(tokenizer, cut).endswith(REPLACEMENT)
    one_shot = IncrementalDetokenizer(tokenizer).push(cut)  # a non-streamed answer: one push
    assert one_shot == "".join(stream(tokenizer, cut, [1] * len(cut))) == "ok "


def test_text_before_an_unfinished_character_is_not_held_back(tokenizer):
    ids = tokenizer.encode("hello 中文", add_special_tokens=False)
    detok = IncrementalDetokenizer(tokenizer)
    first = detok.push(ids[:-1])  # "hello " + half of the last character
    assert first.startswith("hello") and REPLACEMENT not in first
    assert first + detok.push(ids[-1:]) == "hello 中文"


def test_a_long_stream_keeps_only_its_window(tokenizer):
    ids = tokenizer.encode(" ".join(["word"] * 400), add_special_tokens=False)
    detok = IncrementalDetokenizer(tokenizer)
    text = "".join(detok.push([i]) for i in ids)
    assert text == decode(tokenizer, ids) and detok.count == len(ids)
    assert len(detok._window) <= 2


def test_special_tokens_are_skipped_like_the_full_decode(tokenizer):
    ids = [*tokenizer.encode("Hi there", add_special_tokens=False), tokenizer.eos_token_id]
    assert "".join(stream(tokenizer, ids, [1] * len(ids))) == decode(tokenizer, ids) == "Hi there"


def test_postprocess_continues_a_keyed_stream_without_open_or_close_responses(tokenizer):
    """Responses as TensorRT-LLM's backend sends them: new tokens only, no empty markers."""
    states = StreamStates(tokenizer)
    ids = tokenizer.encode("a 😀 b\n中", add_special_tokens=False)
    key = stream_key("", 123)
    pieces = [postprocess_text(states, key, [tok]) for tok in ids]
    assert "".join(pieces) == decode(tokenizer, ids)
    assert not any(REPLACEMENT in p for p in pieces), pieces


def test_postprocess_non_streamed_answer_and_anonymous_responses(tokenizer):
    states = StreamStates(tokenizer)
    ids = tokenizer.encode("whole answer 😀", add_special_tokens=False)
    assert postprocess_text(states, stream_key("r", 7), ids) == decode(tokenizer, ids)
    assert postprocess_text(states, "", ids[:2]) == decode(tokenizer, ids[:2])
    assert len(states) == 1


def test_interleaved_streams_without_request_ids_do_not_mix(tokenizer):
    states = StreamStates(tokenizer)
    a = tokenizer.encode("first 😀 stream", add_special_tokens=False)
    b = tokenizer.encode("second 中文 stream", add_special_tokens=False)
    keys = {"a": stream_key("", 1001), "b": stream_key("", 1002)}
    out: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(max(len(a), len(b))):
        if i < len(a):
            out["a"].append(postprocess_text(states, keys["a"], [a[i]]))
        if i < len(b):
            out["b"].append(postprocess_text(states, keys["b"], [b[i]]))
    assert "".join(out["a"]) == "first 😀 stream"
    assert "".join(out["b"]) == "second 中文 stream"


def test_stream_keys_and_stop_ids():
    assert stream_key("", None) == "" and stream_key("req", None) == "req"
    assert stream_key("", 5) != stream_key("", 6) != stream_key("req", 6)
    assert stop_id("req", 5) == "req"  # the C++ backend stops by Triton request id
    assert stop_id("", 5) == "arrival_time_ns=5" and stop_id("", None) == ""


def test_stream_states_are_bounded_and_forget(tokenizer):
    states = StreamStates(tokenizer, max_streams=3)
    for key in "abcde":
        states.get(key)
    assert len(states) == 3 and "a" not in states and "e" in states
    states.forget("e")
    states.forget("never")
    assert "e" not in states and len(states) == 2
