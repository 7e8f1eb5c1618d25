"""Every request the CPU ``tensorrt_llm`` model accepts ends with a final response.

Triton releases a model version only when every request sent to it has ended, i.e. when each
decoupled request's response sender got the final flag (python_backend r24.10
src/python_be.cc ResponseSendDecoupled deletes the response factory, which holds the model, on
the final flag; triton_model_updates.json). A request left without one keeps its version
UNLOADING forever, so ``repo update`` / ``repo rollback`` can never unload it.

``pb`` below stands in for Triton's ``triton_python_backend_utils``; its response sender keeps
the python backend's rules: nothing may be sent after the final flag, and the final flag
closes the sender even when the send then fails. The runtime loop is replaced by one that
hands the test the event callback, so a test can deliver the events the runtime would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from triton_llm.repository.trtllm_cpu import CpuLlmModel
from triton_llm.runtime import TokenEvent

FINAL = 1


class _Metric:
    def set(self, value: float) -> None: ...

    def increment(self, value: float) -> None: ...

    def observe(self, value: float) -> None: ...


class _Family:
    GAUGE, COUNTER, HISTOGRAM = 0, 1, 2

    def __init__(self, **_: Any) -> None: ...

    def Metric(self, **_: Any) -> _Metric:
        return _Metric()


@dataclass
class _Sender:
    sent: list[tuple[Any, int]] = field(default_factory=list)
    closed: bool = False

    def send(self, response: Any = None, flags: int = 0) -> None:
        if self.closed:
            raise RuntimeError("Unable to send response. Response sender has been closed.")
        if flags == FINAL:
            self.closed = True
        self.sent.append((response, flags))


@dataclass
class _Tensor:
    array: np.ndarray

    def as_numpy(self) -> np.ndarray:
        return self.array


@dataclass
class _Request:
    inputs: dict[str, np.ndarray]
    sender: _Sender = field(default_factory=_Sender)

    def get_response_sender(self) -> _Sender:
        return self.sender

    def request_id(self) -> str:
        return ""

    def is_cancelled(self) -> bool:
        return False


@dataclass
class _Response:
    output_tensors: list[Any]
    error: Any = None


class _Pb:
    """The parts of ``triton_python_backend_utils`` the model uses; ``fail_tensors`` makes Tensor raise."""

    TRITONSERVER_RESPONSE_COMPLETE_FINAL = FINAL
    MetricFamily = _Family

    def __init__(self) -> None:
        self.fail_tensors = False
        self.errors: list[str] = []
        pb = self

        class Logger:
            @staticmethod
            def log_error(message: str) -> None:
                pb.errors.append(message)

            @staticmethod
            def log_info(message: str) -> None: ...

        self.Logger = Logger

    def Tensor(self, name: str, array: np.ndarray) -> tuple[str, np.ndarray]:
        if self.fail_tensors:
            raise RuntimeError("Failed to increase the shared memory pool size")
        return (name, array)

    def InferenceResponse(self, output_tensors: list[Any], error: Any = None) -> _Response:
        return _Response(output_tensors, error)

    def TritonError(self, message: str) -> str:
        return message

    @staticmethod
    def get_input_tensor_by_name(request: _Request, name: str) -> _Tensor | None:
        value = request.inputs.get(name)
        return None if value is None else _Tensor(value)


class _Loop:
    """Takes submissions; the test delivers the runtime's events through ``deliver``."""

    def __init__(self) -> None:
        self.sinks: dict[str, Callable[[Any], None]] = {}
        self.cancelled: list[str] = []

    def submit(self, request: Any, on_event: Callable[[Any], None]) -> None:
        self.sinks[request.request_id] = on_event

    def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)

    def deliver(self, event: TokenEvent) -> None:
        self.sinks[event.request_id](event)

    def close(self) -> None: ...


@pytest.fixture
def model() -> Iterator[tuple[CpuLlmModel, _Pb, _Loop]]:
    pb, loop = _Pb(), _Loop()
    config = {
        "model_transaction_policy": {"decoupled": True},
        # the pollers stay idle: the test drives every event
        "parameters": {
            "cancellation_check_period_ms": {"string_value": "600000"},
            "stats_check_period_ms": {"string_value": "600000"},
        },
    }
    args = {"model_config": json.dumps(config), "model_name": "tensorrt_llm", "model_version": "1"}
    m = CpuLlmModel(args, pb, loop=loop)
    yield m, pb, loop
    m.finalize()


def _streaming_request() -> _Request:
    return _Request(
        {
            "input_ids": np.array([[1, 2, 3]], dtype=np.int32),
            "input_lengths": np.array([[3]], dtype=np.int32),
            "request_output_len": np.array([[4]], dtype=np.int32),
            "streaming": np.array([[True]]),
        }
    )


def test_a_request_whose_last_event_fails_still_gets_its_final_response(
    model: tuple[CpuLlmModel, _Pb, _Loop],
) -> None:
    m, pb, loop = model
    request = _streaming_request()
    m.execute([request])
    (request_id,) = loop.sinks
    loop.deliver(TokenEvent(request_id, [7], False))
    pb.fail_tensors = True  # building the last response fails (e.g. the shared memory pool is full)
    loop.deliver(TokenEvent(request_id, [8], True, "length"))
    flags = [f for _, f in request.sender.sent]
    assert flags == [0, FINAL], request.sender.sent
    error = request.sender.sent[-1][0].error
    assert "Failed to increase the shared memory pool size" in error
    assert any("shared memory" in e for e in pb.errors)
    assert loop.cancelled == [request_id]  # the runtime is told to stop it too


def test_a_request_whose_token_event_fails_ends_once_and_then_ignores_later_events(
    model: tuple[CpuLlmModel, _Pb, _Loop],
) -> None:
    m, pb, loop = model
    request = _streaming_request()
    m.execute([request])
    (request_id,) = loop.sinks
    pb.fail_tensors = True
    loop.deliver(TokenEvent(request_id, [7], False))
    pb.fail_tensors = False
    loop.deliver(TokenEvent(request_id, [], True, "cancelled"))  # what the runtime sends after cancel
    # a response that cannot be built counts as one the client no longer takes: the request ends there
    assert [f for _, f in request.sender.sent] == [FINAL]
    assert loop.cancelled == [request_id]
