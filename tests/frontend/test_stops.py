"""Stop sequences on streamed text: any split of the pieces gives OpenAI's cut."""

from __future__ import annotations

import random

import pytest

from triton_llm.frontend.stops import StopMatcher


def run(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    m = StopMatcher(stops)
    out = []
    for piece in pieces:
        out.append(m.feed(piece))
        if m.matched:
            return "".join(out), True
    return "".join(out) + m.flush(), False


def reference(text: str, stops: list[str]) -> tuple[str, bool]:
    """Character by character: stop when a stop sequence ends; cut at its start (the longest one)."""
    for end in range(len(text) + 1):
        done = [end - len(s) for s in stops if s and text[:end].endswith(s)]
        if done:
            return text[: min(done)], True
    return text, False


@pytest.mark.parametrize(
    ("pieces", "stops", "expected"),
    [
        (["Hello", " world"], [], ("Hello world", False)),
        (["Hello", " wor", "ld. Bye"], ["world"], ("Hello ", True)),
        (["a\n", "\nb"], ["\n\n"], ("a", True)),
        (["a\n", "b\n"], ["\n\n"], ("a\nb\n", False)),  # the held "\n" comes out at the end
        (["xx", "ab", "c"], ["abc", "b"], ("xxa", True)),  # "b" completes first
        (["xxabc"], ["abc", "b"], ("xxa", True)),  # whatever the split
        (["xab"], ["ab", "b"], ("x", True)),  # both complete at once: the longer one cuts
        (["😀 stop", "!"], ["stop"], ("😀 ", True)),
        (["", "END"], ["END", ""], ("", True)),
    ],
)
def test_cuts_before_the_first_stop(pieces, stops, expected):
    assert run(pieces, stops) == expected


def test_partial_matches_are_held_back_not_lost():
    m = StopMatcher(["###"])
    assert m.feed("a#") == "a"
    assert m.feed("#") == ""
    assert m.feed("b") == "##b"
    assert not m.matched


def test_every_split_of_random_text_matches_the_reference():
    rng = random.Random(12)
    for _ in range(2000):
        text = "".join(rng.choice("ab\n ") for _ in range(rng.randint(0, 20)))
        stops = [
            "".join(rng.choice("ab\n") for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 3))
        ]
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 6))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert run(pieces, stops) == reference(text, stops), (pieces, stops)
