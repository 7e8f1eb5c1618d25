"""Cancellation plumbing shared by the python models (``pb`` is ``triton_python_backend_utils``).

Triton tells only the model a request targets that it was cancelled; through an ensemble,
the running ``tensorrt_llm`` step never learns it, while every later postprocessing step
arrives already cancelled (facts: ``tensorrtllm_backend_1_2.json``, key ``cancellation``).
So postprocessing relays a cancellation to ``tensorrt_llm`` with TensorRT-LLM's ``stop``
input, addressed by :func:`stop_id`, and the BLS stops its own ``tensorrt_llm`` request the
same way. :class:`Poller` runs the periodic cancellation checks (TensorRT-LLM's
``cancellation_check_period_ms``) and stats updates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

ARRIVAL_ID_PREFIX = "arrival_time_ns="


def stream_key(request_id: str, arrival_time_ns: int | None) -> str:
    """The identity of one generation across the ensemble's steps ('' when there is none).

    Triton gives every step the ensemble's request id, which is empty unless the client set
    one; ``arrival_time_ns`` (a TensorRT-LLM perf output, fixed per request) tells apart
    requests with the same or no id.
    """
    if arrival_time_ns is None:
        return request_id
    return f"{request_id}#{arrival_time_ns}"


def stop_id(request_id: str, arrival_time_ns: int | None) -> str:
    """The request id a ``stop`` request must carry to reach this generation ('' if none).

    TensorRT-LLM's C++ backend stops requests by Triton request id only; the CPU runtime
    also answers to ``arrival_time_ns=<n>``, which reaches requests sent without an id (the
    C++ backend ignores an unknown id).
    """
    if request_id:
        return request_id
    return f"{ARRIVAL_ID_PREFIX}{arrival_time_ns}" if arrival_time_ns is not None else ""


def stop_tensors(pb: Any) -> list[Any]:
    """The inputs of a ``tensorrt_llm`` request with ``stop=true`` (TensorRT-LLM's explicit cancel)."""
    one = np.ones((1, 1), dtype=np.int32)
    return [
        pb.Tensor("input_ids", one),
        pb.Tensor("input_lengths", one),
        pb.Tensor("request_output_len", one),
        pb.Tensor("stop", np.ones((1, 1), dtype=bool)),
    ]


def send_stop(pb: Any, model: str, request_id: str, *, model_version: int = -1) -> None:
    """Stop the ``model`` request with this id through BLS (blocks until it answers).

    ``model_version`` is the version that runs the request (-1: the server's default version).
    """
    request = pb.InferenceRequest(
        model_name=model,
        model_version=model_version,
        inputs=stop_tensors(pb),
        requested_output_names=["output_ids"],
        request_id=request_id,
    )
    for _ in request.exec(decoupled=True):
        pass


class Watched:
    """A request whose cancellation flag other threads may ask until its final response.

    The python backend releases a request with its final response, and asking a released
    request's flag reads freed memory in the server (it crashes), so the final response is
    sent through :meth:`finish`, under the same lock as :meth:`is_cancelled`.
    """

    def __init__(self, request: Any) -> None:
        self.request = request
        self._lock = threading.Lock()
        self._done = False

    def is_cancelled(self) -> bool:
        with self._lock:
            return not self._done and bool(self.request.is_cancelled())

    def finish(self, send_final: Callable[[], None]) -> None:
        """Send the final response; the flag is never asked again."""
        with self._lock:
            self._done = True
            send_final()


class Poller:
    """Calls ``fn`` every ``period_s`` seconds on a daemon thread until :meth:`close`.

    An exception in ``fn`` is passed to ``on_error`` and the polling goes on.
    """

    def __init__(
        self, period_s: float, fn: Callable[[], None], *, name: str, on_error: Callable[[Exception], None]
    ) -> None:
        self._period = period_s
        self._fn = fn
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._fn()
            except Exception as e:  # a failed check must not end the checking
                self._on_error(e)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
