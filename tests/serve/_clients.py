"""Plain clients for tests: tritonclient gRPC streams and raw HTTP SSE, as users run them.

Nothing here uses triton_llm.client: these are the clients a new user writes, with no request
id and no ``stop`` input. Also: Triton's /metrics scraped into a dict, and TTFT measurement.
"""

from __future__ import annotations

import json
import queue
import random
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# an end_id SmolLM2 never generates, so only the length limit or a cancellation ends a request
NEVER = 49151
ACTIVE = "nv_trt_llm_request_metrics"
CANCELLED = "nv_trt_llm_cancelled_requests"


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Triton's Prometheus metrics as {(family, labels): value}."""
    with urllib.request.urlopen(f"http://{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, rest = head.partition("{")
        labels = frozenset(
            tuple(kv.split("=", 1)) for kv in rest.rstrip("}").replace('"', "").split(",") if "=" in kv
        )
        out[(name, labels)] = float(value)
    return out


def metric(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    """The sum of a family's samples whose labels include ``labels`` (None when there is none)."""
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    return sum(found) if found else None


def active_requests(metrics_url: str) -> float | None:
    """The CPU runtime's active (queued + running) request count, as TensorRT-LLM names it."""
    return metric(scrape(metrics_url), ACTIVE, model="tensorrt_llm", request_type="active")


def cancelled_requests(metrics_url: str) -> float:
    return metric(scrape(metrics_url), CANCELLED, model="tensorrt_llm") or 0.0


def wait_idle(metrics_url: str, timeout: float) -> tuple[float | None, float]:
    """Poll until the runtime reports no active request; returns (last value, seconds waited)."""
    start = time.monotonic()
    value = active_requests(metrics_url)
    while value != 0 and time.monotonic() - start < timeout:
        time.sleep(0.05)
        value = active_requests(metrics_url)
    return value, time.monotonic() - start


def _grpc() -> Any:
    import tritonclient.grpc as grpcclient

    return grpcclient


def text_inputs(
    prompt: str, max_tokens: int, *, stream: bool = True, end_id: int | None = NEVER
) -> dict[str, np.ndarray]:
    """Inputs of the ensemble / BLS for one prompt (batch of one)."""
    out = {
        "text_input": np.array([[prompt.encode()]], dtype=object),
        "max_tokens": np.array([[max_tokens]], dtype=np.int32),
        "stream": np.array([[stream]], dtype=bool),
    }
    if end_id is not None:
        out["end_id"] = np.array([[end_id]], dtype=np.int32)
    return out


def token_inputs(ids: list[int], max_tokens: int, *, stream: bool = True) -> dict[str, np.ndarray]:
    """Inputs of the ``tensorrt_llm`` model itself."""
    return {
        "input_ids": np.array([ids], dtype=np.int32),
        "input_lengths": np.array([[len(ids)]], dtype=np.int32),
        "request_output_len": np.array([[max_tokens]], dtype=np.int32),
        "streaming": np.array([[stream]], dtype=bool),
        "end_id": np.array([[NEVER]], dtype=np.int32),
    }


def infer_inputs(arrays: dict[str, np.ndarray]) -> list[Any]:
    """tritonclient gRPC InferInputs for numpy arrays."""
    grpcclient = _grpc()
    from tritonclient.utils import np_to_triton_dtype

    out = []
    for name, arr in arrays.items():
        tensor = grpcclient.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        tensor.set_data_from_numpy(arr)
        out.append(tensor)
    return out


@dataclass
class StreamResult:
    pieces: list[Any]
    error: str | None = None
    first_response: float | None = None  # seconds from send


def grpc_stream(
    url: str, model: str, arrays: dict[str, np.ndarray], *, output: str, timeout: float = 120.0
) -> StreamResult:
    """One plain tritonclient stream (no request id) read to its end."""
    grpcclient = _grpc()
    events: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: events.put((result, error)))
    sent = time.perf_counter()
    result = StreamResult(pieces=[])
    try:
        client.async_stream_infer(model, infer_inputs(arrays), enable_empty_final_response=True)
        while True:
            res, err = events.get(timeout=timeout)
            if err is not None:
                result.error = str(err)
                return result
            value = res.as_numpy(output)
            if value is not None and value.size:
                if result.first_response is None:
                    result.first_response = time.perf_counter() - sent
                result.pieces.append(value)
            if res.get_response().parameters["triton_final_response"].bool_param:
                return result
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()


def ttft(
    url: str, model: str, arrays: dict[str, np.ndarray], *, output: str, timeout: float = 120.0
) -> float:
    """Seconds from sending a streamed request to its first non-empty response."""
    result = grpc_stream(url, model, arrays, output=output, timeout=timeout)
    if result.error is not None or result.first_response is None:
        raise AssertionError(f"{model}: no streamed response ({result.error})")
    return result.first_response


@dataclass
class Cancelled:
    """What one abandoned stream saw before its client cancelled it."""

    responses: int
    delay: float


def cancel_grpc_streams(
    url: str,
    model: str,
    arrays: dict[str, np.ndarray],
    *,
    count: int,
    rng: random.Random,
    max_delay: float,
    spread: float,
) -> list[Cancelled]:
    """``count`` plain tritonclient streams, each started and cancelled at a random moment.

    Each client starts within ``[0, spread]`` seconds, sends one request (no request id, no
    ``stop``), waits a random delay in ``[0, max_delay]`` and calls
    ``stop_stream(cancel_requests=True)``, tritonclient's own way to cancel.
    """
    grpcclient = _grpc()
    starts = [rng.uniform(0.0, spread) for _ in range(count)]
    delays = [rng.uniform(0.0, max_delay) for _ in range(count)]
    results: list[Cancelled | None] = [None] * count

    def run(i: int) -> None:
        seen = [0]

        def on_response(result: Any, error: Any) -> None:
            seen[0] += 1

        time.sleep(starts[i])
        client = grpcclient.InferenceServerClient(url)
        try:
            client.start_stream(callback=on_response)
            client.async_stream_infer(model, infer_inputs(arrays))
            time.sleep(delays[i])
            results[i] = Cancelled(seen[0], delays[i])
        finally:
            client.stop_stream(cancel_requests=True)
            client.close()

    _run_all(run, count)
    return [r for r in results if r is not None]


def drop_http_streams(
    http_url: str,
    model: str,
    body: dict[str, Any],
    *,
    count: int,
    rng: random.Random,
    max_delay: float,
    spread: float,
) -> list[Cancelled]:
    """``count`` ``generate_stream`` (SSE) clients that start and close their connection at random."""
    host, port = http_url.rsplit(":", 1)
    payload = json.dumps(body).encode()
    request = (
        f"POST /v2/models/{model}/generate_stream HTTP/1.1\r\nHost: {http_url}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    starts = [rng.uniform(0.0, spread) for _ in range(count)]
    delays = [rng.uniform(0.0, max_delay) for _ in range(count)]
    results: list[Cancelled | None] = [None] * count

    def run(i: int) -> None:
        time.sleep(starts[i])
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request)
            deadline = time.monotonic() + delays[i]
            received = b""
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                received += chunk
            assert b" 200 OK" in received or not received, received[:200]
            results[i] = Cancelled(received.count(b"data:"), delays[i])

    _run_all(run, count)
    return [r for r in results if r is not None]


def _run_all(target: Callable[[int], None], count: int) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as e:  # reported by the caller, not as a thread warning
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
