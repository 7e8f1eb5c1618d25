"""Generator behaviour on the real model: in-flight batching, cancellation, stop conditions,
sampling, and every request the runtime promises to reject."""

from __future__ import annotations

import pytest

from triton_llm.runtime import GenerationRequest, InvalidRequestError, SamplingParams, generate


def _run(gen, req: GenerationRequest) -> tuple[list[int], str | None]:
    gen.add(req)
    out, reason = [], None
    while gen.has_work():
        for ev in gen.step():
            out.extend(ev.new_token_ids)
            if ev.finished:
                reason = ev.finish_reason
    return out, reason


def test_request_added_mid_decode_joins_between_steps(idle_generator, prompt_ids, solo_outputs) -> None:
    gen = idle_generator
    gen.add(GenerationRequest("a", prompt_ids[0], 24))
    outs: dict[str, list[int]] = {"a": [], "b": []}
    for _ in range(3):
        for ev in gen.step():
            outs[ev.request_id].extend(ev.new_token_ids)
    gen.add(GenerationRequest("b", prompt_ids[1], 24))
    first = gen.step()
    assert {ev.request_id for ev in first} == {"a", "b"}, "b must join the very next step, beside a"
    for ev in first:
        outs[ev.request_id].extend(ev.new_token_ids)
    while gen.has_work():
        for ev in gen.step():
            outs[ev.request_id].extend(ev.new_token_ids)
    assert outs["a"] == solo_outputs[0]
    assert outs["b"] == solo_outputs[1]


def test_cancelled_request_leaves_within_one_step(idle_generator, prompt_ids, solo_outputs) -> None:
    gen = idle_generator
    gen.add(GenerationRequest("x", prompt_ids[0], 24))
    gen.add(GenerationRequest("y", prompt_ids[2], 24))
    outs: dict[str, list[int]] = {"x": [], "y": []}
    for _ in range(2):
        for ev in gen.step():
            outs[ev.request_id].extend(ev.new_token_ids)
    gen.cancel("x")  # x holds KV slot 0: y is moved into it, which must not change y's tokens
    events = gen.step()
    by_id = {ev.request_id: ev for ev in events}
    assert by_id["x"].finished and by_id["x"].finish_reason == "cancelled" and by_id["x"].new_token_ids == []
    outs["y"].extend(by_id["y"].new_token_ids)
    while gen.has_work():
        for ev in gen.step():
            assert ev.request_id == "y"
            outs["y"].extend(ev.new_token_ids)
    assert outs["x"] == solo_outputs[0][:2]
    assert outs["y"] == solo_outputs[2]


def test_cancel_of_a_queued_request_and_unknown_ids(idle_generator, prompt_ids) -> None:
    gen = idle_generator
    gen.add(GenerationRequest("q", prompt_ids[0], 4))
    gen.cancel("q")
    gen.cancel("never-added")
    events = gen.step()
    assert [(e.request_id, e.finish_reason, e.new_token_ids) for e in events] == [("q", "cancelled", [])]
    assert not gen.has_work()


def test_max_new_tokens_ends_with_length(idle_generator, prompt_ids, solo_outputs) -> None:
    out, reason = _run(idle_generator, GenerationRequest("m", prompt_ids[0], 5))
    assert (out, reason) == (solo_outputs[0][:5], "length")


def test_end_id_ends_and_is_not_returned(idle_generator, prompt_ids, solo_outputs) -> None:
    ref = solo_outputs[1]
    end = ref[4]
    cut = ref.index(end)
    out, reason = _run(idle_generator, GenerationRequest("e", prompt_ids[1], 24, end_id=end))
    assert (out, reason) == (ref[:cut], "end_id")


def test_stop_word_ends_and_is_returned(idle_generator, prompt_ids, solo_outputs) -> None:
    prompt, ref = prompt_ids[2], solo_outputs[2]
    word = ref[5:7]
    history = list(prompt)
    expected = None
    for i, t in enumerate(ref):
        history.append(t)
        if history[-2:] == word:
            expected = ref[: i + 1]
            break
    assert expected is not None
    out, reason = _run(idle_generator, GenerationRequest("s", prompt, 24, stop_words=[word]))
    assert (out, reason) == (expected, "stop_word")


@pytest.mark.parametrize("multi_token", [False, True])
def test_bad_words_are_never_generated(idle_generator, prompt_ids, solo_outputs, multi_token) -> None:
    ref = solo_outputs[0]
    word = [ref[1], ref[2]] if multi_token else [ref[2]]
    out, _ = _run(idle_generator, GenerationRequest("b", prompt_ids[0], 6, bad_words=[word]))
    assert out[:2] == ref[:2]
    assert out[2] != ref[2]


def test_seeded_sampling_is_reproducible(idle_generator, prompt_ids, solo_outputs) -> None:
    gen = idle_generator
    s = SamplingParams(temperature=1.0, top_k=50, top_p=0.95, seed=1234)

    def reqs(tag: str, params: SamplingParams) -> list[GenerationRequest]:
        return [GenerationRequest(f"{tag}{i}", prompt_ids[0], 16, sampling=params) for i in range(2)]

    first = generate(gen, reqs("a", s))
    again = generate(gen, reqs("b", s))
    other = generate(gen, reqs("c", SamplingParams(temperature=1.0, top_k=50, top_p=0.95, seed=99)))
    assert first["a0"] == first["a1"] == again["b0"] == again["b1"]
    assert other["c0"] != first["a0"]
    greedy = generate(
        gen,
        [
            GenerationRequest(
                "k1", prompt_ids[0], 16, sampling=SamplingParams(top_k=1, temperature=0.7, seed=5)
            ),
            GenerationRequest("t0", prompt_ids[0], 16, sampling=SamplingParams(temperature=0.0)),
        ],
    )
    assert greedy["k1"] == greedy["t0"] == solo_outputs[0][:16]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"input_ids": []}, "input_ids"),
        ({"input_ids": [1] * 257}, "input_ids"),
        ({"input_ids": [1, 49152]}, "input_ids"),
        ({"input_ids": [-1]}, "input_ids"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": -3}, "max_new_tokens"),
        ({"max_new_tokens": 384 - 2}, "max_new_tokens"),
        ({"end_id": 50000}, "end_id"),
        ({"pad_id": -2}, "pad_id"),
        ({"stop_words": [[]]}, "stop_words"),
        ({"bad_words": [[49152]]}, "bad_words"),
        ({"sampling": SamplingParams(temperature=-0.1)}, "temperature"),
        ({"sampling": SamplingParams(top_k=-1)}, "top_k"),
        ({"sampling": SamplingParams(top_p=0.0)}, "top_p"),
        ({"sampling": SamplingParams(top_p=1.5)}, "top_p"),
    ],
)
def test_invalid_requests_are_rejected(idle_generator, change, field) -> None:
    base = {"request_id": "bad", "input_ids": [1, 2, 3], "max_new_tokens": 4}
    with pytest.raises(InvalidRequestError) as info:
        idle_generator.add(GenerationRequest(**{**base, **change}))
    assert info.value.field == field
    assert field in str(info.value) and "'bad'" in str(info.value)
    assert not idle_generator.has_work()


def test_duplicate_request_id_is_rejected(idle_generator) -> None:
    idle_generator.add(GenerationRequest("dup", [1, 2, 3], 2))
    with pytest.raises(InvalidRequestError, match="already in flight"):
        idle_generator.add(GenerationRequest("dup", [1, 2, 3], 2))


def test_more_requests_than_slots_are_queued(idle_generator, prompt_ids, solo_outputs) -> None:
    gen = idle_generator  # 4 KV slots: the 5th and 6th wait for a free slot
    reqs = [GenerationRequest(f"r{i}", prompt_ids[i % 3], 3 + i) for i in range(6)]
    out = generate(gen, reqs)
    for i in range(6):
        assert out[f"r{i}"] == solo_outputs[i % 3][: 3 + i]


def test_generator_refuses_bad_limits_and_mismatched_checkpoints(model_base, ckpt_f32, tmp_path) -> None:
    import json

    from tests.runtime._models import converted_dir
    from triton_llm.errors import IncompatibleError, UsageError
    from triton_llm.runtime import Generator

    for limits in ({"max_batch_size": 0}, {"max_input_len": 64, "max_seq_len": 64}, {"max_seq_len": 9000}):
        kwargs = {"max_batch_size": 1, "max_input_len": 8, "max_seq_len": 16, **limits}
        with pytest.raises(UsageError, match="max_"):
            Generator(ckpt_f32, **kwargs)
    with pytest.raises(IncompatibleError, match="tp=3 but 1 rank"):
        Generator(converted_dir(model_base, tp=3), max_batch_size=1, max_input_len=8, max_seq_len=16)
    cfg = json.loads((ckpt_f32 / "config.json").read_text())
    for change, words in (
        ({"mapping": {**cfg["mapping"], "pp_size": 2}}, "pp_size=2"),
        ({"quantization": {"quant_algo": "FP8"}}, "'FP8'"),
        ({"architecture": "GPT2LMHeadModel"}, "'GPT2LMHeadModel'"),
    ):
        (tmp_path / "config.json").write_text(json.dumps({**cfg, **change}))
        with pytest.raises(IncompatibleError, match=words):
            Generator(tmp_path, max_batch_size=1, max_input_len=8, max_seq_len=16)
