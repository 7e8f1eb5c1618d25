"""One owner for the sampling ranges: the Triton model and the runtime reject the same values with
the same rule (TensorRT-LLM 1.2's SamplingConfig: temperature >= 0, top_k >= 0, 0 < top_p <= 1)."""

from __future__ import annotations

import math
import re

import pytest

from triton_llm.repository.preprocess import RequestError
from triton_llm.repository.trtllm_cpu import sampling_kwargs
from triton_llm.runtime import SamplingParams, sampling_problems


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("top_p", 0.0, "must be in (0, 1]"),
        ("top_p", 1.5, "must be in (0, 1]"),
        ("top_p", math.nan, "must be in (0, 1]"),
        ("temperature", -1.0, "must be >= 0"),
        ("temperature", math.inf, "must be >= 0"),
        ("top_k", -2, "must be >= 0"),
    ],
)
def test_the_model_and_the_runtime_reject_a_value_by_the_same_rule(
    name: str, value: float, rule: str
) -> None:
    with pytest.raises(RequestError, match=rf"^{name} {re.escape(rule)}") as caught:
        sampling_kwargs({name: value})
    problems = sampling_problems(SamplingParams(**{name: value}))
    assert [(n, r) for n, _, r in problems] == [(name, str(caught.value).split(" ", 1)[1].split(" (got")[0])]


@pytest.mark.parametrize(
    ("name", "value"), [("top_p", 1.0), ("top_p", 1e-6), ("temperature", 0.0), ("top_k", 0)]
)
def test_the_edges_of_each_range_are_accepted(name: str, value: float) -> None:
    assert sampling_kwargs({name: value}) == {name: value}
    assert sampling_problems(SamplingParams(**{name: value})) == []
