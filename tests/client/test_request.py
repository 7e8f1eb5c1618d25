"""Pure parts of the client: request tensors, error classes, stream summaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from triton_llm.client.request import (
    PREPROCESSING_INPUTS,
    Chunk,
    GenerateParams,
    build_inputs,
    check_params,
    classify_error,
    new_request_id,
    preprocessing_inputs,
    stop_inputs,
    summarize,
)
from triton_llm.errors import ClientError, RequestRejectedError, ServerUnavailableError


def test_inputs_carry_only_what_the_request_sets():
    inputs = {n: (a, t) for n, a, t in build_inputs("héllo 😀", GenerateParams(max_tokens=5), stream=True)}
    assert set(inputs) == {"text_input", "max_tokens", "stream"}
    assert inputs["text_input"][0][0, 0] == "héllo 😀".encode() and inputs["text_input"][1] == "BYTES"
    assert inputs["max_tokens"][0].dtype == np.int32 and inputs["max_tokens"][0].shape == (1, 1)
    full = GenerateParams(
        max_tokens=3, temperature=0.5, top_k=4, top_p=0.9, seed=7, stop_words=("a", "b"), chat_template=False
    )
    inputs = {n: (a, t) for n, a, t in build_inputs("x", full, stream=False)}
    assert inputs["seed"][0].dtype == np.uint64 and inputs["temperature"][1] == "FP32"
    assert inputs["stop_words"][0].shape == (1, 2) and inputs["apply_chat_template"][0][0, 0] == np.False_
    assert not inputs["stream"][0][0, 0]


def test_stop_request_matches_the_tensorrt_llm_inputs():
    names = {n: t for n, _, t in stop_inputs()}
    assert names == {
        "input_ids": "INT32",
        "input_lengths": "INT32",
        "request_output_len": "INT32",
        "stop": "BOOL",
    }


def test_request_ids_are_unique():
    assert len({new_request_id() for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("message", "status", "cls"),
    [
        ("failed to connect to all addresses", "StatusCode.UNAVAILABLE", ServerUnavailableError),
        ("Request for unknown model: 'x' is not found", "", ServerUnavailableError),
        ("ModelInfer RPC doesn't support models with decoupled transaction policy", "", ClientError),
        (
            "in ensemble 'ensemble', bad request: max_tokens must be at least 1 (got 0)",
            "",
            RequestRejectedError,
        ),
        ("something else broke", "", ClientError),
    ],
)
def test_errors_are_classified(message, status, cls):
    err = classify_error(message, url="h:1", model="ensemble", status=status)
    assert type(err) is cls and message in str(err)


def test_client_side_checks():
    with pytest.raises(RequestRejectedError, match="seed must be >= 0"):
        check_params(GenerateParams(seed=-1))
    with pytest.raises(RequestRejectedError, match="does not fit int32"):
        check_params(GenerateParams(max_tokens=2**31))


def test_summary_counts_reported_tokens_and_times_text():
    chunks = [
        Chunk("", 1.0, tokens=0),
        Chunk("Hi", 1.5, tokens=1),
        Chunk("", 1.6, tokens=1),
        Chunk(" 😀", 1.7, tokens=1),
        Chunk("", 1.8, final=True, tokens=0),
    ]
    done = summarize(chunks, sent=1.0)
    assert done.text == "Hi 😀" and done.tokens == 3
    assert done.ttft == pytest.approx(0.5) and done.tpot == pytest.approx(0.1)
    assert done.total == pytest.approx(0.8)


def test_summary_without_token_counts_skips_the_stream_markers():
    chunks = [Chunk("", 1.0), Chunk("a", 1.1), Chunk("b", 1.2), Chunk("", 1.3, final=True)]
    assert summarize(chunks, sent=0.9).tokens == 2


def test_a_single_piece_has_no_tpot():
    done = summarize([Chunk("The whole answer.", 2.0, final=True, tokens=5)], sent=1.0)
    assert done.tokens == 5 and done.ttft == pytest.approx(1.0) and done.tpot is None


def test_a_conversation_and_penalties_travel_as_ensemble_inputs():
    params = GenerateParams(
        messages=(("system", "Be brief. ✓"), ("user", "Hi")), presence_penalty=0.5, frequency_penalty=0.0
    )
    inputs = {n: (a, t) for n, a, t in build_inputs("", params, stream=True)}
    assert inputs["chat_messages"][1] == "BYTES" and inputs["chat_messages"][0].shape == (1, 1)
    assert json.loads(inputs["chat_messages"][0][0, 0].decode()) == [
        {"role": "system", "content": "Be brief. ✓"},
        {"role": "user", "content": "Hi"},
    ]
    assert inputs["presence_penalty"][0].dtype == np.float32 and inputs["presence_penalty"][1] == "FP32"
    assert inputs["frequency_penalty"][0][0, 0] == 0.0
    assert "chat_messages" not in {n for n, _, _ in build_inputs("x", GenerateParams(), stream=True)}


def test_prompt_counting_sends_what_the_ensemble_maps_into_preprocessing():
    """The ensemble's own input_map (rendered config) decides the preprocessing names."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    golden = Path(__file__).parents[1] / "repository/golden/cpu/ensemble/config.pbtxt"
    config = text_format.Parse(golden.read_text(), model_config_pb2.ModelConfig())
    (step,) = [s for s in config.ensemble_scheduling.step if s.model_name == "preprocessing"]
    ensemble_map = {ensemble: pre for pre, ensemble in step.input_map.items()}
    params = GenerateParams(max_tokens=500, chat_template=True, messages=(("user", "Hi"),), stop_words=("x",))
    sent = {n: (a, t) for n, a, t in preprocessing_inputs("", params)}
    assert set(sent) == {"QUERY", "REQUEST_OUTPUT_LEN", "APPLY_CHAT_TEMPLATE", "CHAT_MESSAGES"}
    assert {ensemble_map[e]: p for e, p in PREPROCESSING_INPUTS.items()} == {p: p for p in sent}
    assert sent["REQUEST_OUTPUT_LEN"][0][0, 0] == 1  # only the prompt's own limits apply
