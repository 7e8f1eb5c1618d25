"""The streaming detokenizer against full decodes of real SmolLM2 token sequences."""

from __future__ import annotations

import random

import pytest

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
    pieces.append(detok.flush())
    return pieces


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
    """Arbitrary ids (including invalid UTF-8 runs) still concatenate to the full decode."""
    rng = random.Random(3)
    vocab = len(tokenizer)
    for _ in range(30):
        ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 40))]
        assert "".join(stream(tokenizer, ids, [1] * len(ids))) == decode(tokenizer, ids)


def test_held_back_bytes_are_flushed_at_the_end(tokenizer):
    ids = tokenizer.encode("ok 😀", add_special_tokens=False)
    cut = ids[:-1]  # ends in the middle of the emoji
    detok = IncrementalDetokenizer(tokenizer)
    streamed = "".join(detok.push([i]) for i in cut)
    assert REPLACEMENT not in streamed
    assert streamed + detok.flush() == decode(tokenizer, cut)


def test_special_tokens_are_skipped_like_the_full_decode(tokenizer):
    ids = [*tokenizer.encode("Hi there", add_special_tokens=False), tokenizer.eos_token_id]
    assert "".join(stream(tokenizer, ids, [1] * len(ids))) == decode(tokenizer, ids) == "Hi there"


def test_postprocess_protocol_open_stream_close(tokenizer):
    states = StreamStates(tokenizer)
    ids = tokenizer.encode("a 😀 b\n中", add_special_tokens=False)
    pieces = [postprocess_text(states, "req1", [], 0)]
    for n, tok in enumerate(ids, 1):
        pieces.append(postprocess_text(states, "req1", [tok], n))
    pieces.append(postprocess_text(states, "req1", [], len(ids)))
    assert "".join(pieces) == decode(tokenizer, ids)
    assert "req1" not in states


def test_postprocess_non_streaming_and_anonymous_responses_decode_alone(tokenizer):
    states = StreamStates(tokenizer)
    ids = tokenizer.encode("whole answer 😀", add_special_tokens=False)
    assert postprocess_text(states, "r", ids, len(ids)) == decode(tokenizer, ids)
    assert postprocess_text(states, "", [], 0) == ""
    assert len(states) == 0


def test_interleaved_streams_do_not_mix(tokenizer):
    states = StreamStates(tokenizer)
    a = tokenizer.encode("first 😀 stream", add_special_tokens=False)
    b = tokenizer.encode("second 中文 stream", add_special_tokens=False)
    out = {"a": [postprocess_text(states, "a", [], 0)], "b": [postprocess_text(states, "b", [], 0)]}
    for i in range(max(len(a), len(b))):
        if i < len(a):
            out["a"].append(postprocess_text(states, "a", [a[i]], i + 1))
        if i < len(b):
            out["b"].append(postprocess_text(states, "b", [b[i]], i + 1))
    out["a"].append(postprocess_text(states, "a", [], len(a)))
    out["b"].append(postprocess_text(states, "b", [], len(b)))
    assert "".join(out["a"]) == "first 😀 stream"
    assert "".join(out["b"]) == "second 中文 stream"


def test_stream_states_are_bounded(tokenizer):
    states = StreamStates(tokenizer, max_streams=3)
    for key in "abcde":
        states.get(key)
    assert len(states) == 3 and "a" not in states and "e" in states
