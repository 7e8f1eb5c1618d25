"""Token selection: bad-word bans, greedy argmax, and seeded temperature / top-k / top-p sampling."""

from __future__ import annotations

import torch

from triton_llm.runtime._types import SamplingParams


def banned_tokens(history: list[int], bad_words: list[list[int]]) -> list[int]:
    """Tokens that would complete a bad word given the sequence so far (prompt + output).

    As in TensorRT-LLM, a one-token bad word is always banned; a longer one bans its last
    token when the sequence ends with the rest of it.
    """
    out = []
    for word in bad_words:
        prefix = word[:-1]
        if not prefix or (len(history) >= len(prefix) and history[-len(prefix) :] == prefix):
            out.append(word[-1])
    return out


def ends_with_stop_word(history: list[int], stop_words: list[list[int]]) -> bool:
    """True when the sequence ends with one of the stop words."""
    return any(len(history) >= len(w) and history[-len(w) :] == w for w in stop_words)


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """Draw one token from a ``[vocab]`` float32 row with temperature, top-k then top-p."""
    x = logits / (params.temperature if params.temperature is not None else 1.0)
    if params.top_k:
        k = min(params.top_k, x.shape[-1])
        values, idx = torch.topk(x, k)
        x = torch.full_like(x, float("-inf")).scatter_(-1, idx, values)
    if params.top_p is not None and params.top_p < 1.0:
        sorted_x, order = torch.sort(x, descending=True)
        probs = torch.softmax(sorted_x, dim=-1)
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        drop = (torch.cumsum(probs, dim=-1) - probs) >= params.top_p
        sorted_x[drop] = float("-inf")
        x = torch.full_like(x, float("-inf")).scatter_(-1, order, sorted_x)
    probs = torch.softmax(x, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())
