"""Synchronous gRPC streaming client for the ``ensemble`` (or ``tensorrt_llm_bls``) model."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

from triton_llm.client.request import (
    Chunk,
    Completion,
    GenerateParams,
    build_inputs,
    check_params,
    chunk_from,
    classify_error,
    new_request_id,
    stop_inputs,
    summarize,
)
from triton_llm.errors import ClientError


def _grpc() -> Any:
    import tritonclient.grpc as grpcclient

    return grpcclient


class LLMClient:
    """Streams completions from a Triton server over gRPC.

    Args:
        url: ``host:port`` of Triton's gRPC endpoint.
        model: ``ensemble`` or ``tensorrt_llm_bls``.
        timeout: seconds to wait for each response before cancelling the request.
    """

    def __init__(
        self, url: str = "127.0.0.1:8001", *, model: str = "ensemble", timeout: float = 60.0
    ) -> None:
        self.url = url
        self.model = model
        self.timeout = timeout
        self._client = _grpc().InferenceServerClient(url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, e: Exception) -> ClientError:
        status = str(e.status()) if hasattr(e, "status") and callable(e.status) else ""
        message = e.message() if hasattr(e, "message") and callable(e.message) else str(e)
        return classify_error(message, url=self.url, model=self.model, status=status)

    def check_ready(self) -> None:
        """Raise :class:`ServerUnavailableError` unless the server and model are ready."""
        from tritonclient.utils import InferenceServerException

        try:
            ready = self._client.is_server_ready() and self._client.is_model_ready(self.model)
        except InferenceServerException as e:
            raise self._error(e) from e
        if not ready:
            raise classify_error(f"model {self.model} is not ready", url=self.url, model=self.model)

    def _inputs(self, prompt: str, params: GenerateParams, *, stream: bool) -> list[Any]:
        grpcclient = _grpc()
        check_params(params)
        out = []
        for name, arr, dtype in build_inputs(prompt, params, stream=stream):
            tensor = grpcclient.InferInput(name, list(arr.shape), dtype)
            tensor.set_data_from_numpy(arr)
            out.append(tensor)
        return out

    def stream(
        self, prompt: str, params: GenerateParams | None = None, *, stream: bool = True
    ) -> Iterator[Chunk]:
        """Yield each response's text piece as it arrives.

        Breaking out of the loop, KeyboardInterrupt or a timeout cancel the request on the
        server (gRPC stream cancellation).

        Raises:
            ServerUnavailableError: server down or model not ready.
            RequestRejectedError: the server rejected the inputs.
            ClientError: any other failure, or no response within ``timeout``.
        """
        from tritonclient.utils import InferenceServerException

        params = params or GenerateParams()
        inputs = self._inputs(prompt, params, stream=stream)
        responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
        try:
            self._client.start_stream(callback=lambda result, error: responses.put((result, error)))
            request_id = new_request_id()
            self._client.async_stream_infer(
                self.model, inputs, request_id=request_id, enable_empty_final_response=True
            )
        except InferenceServerException as e:
            self._client.stop_stream(cancel_requests=True)
            try:  # the stream reports the real cause (e.g. connection refused) to the callback
                _, cause = responses.get(timeout=1.0)
            except queue.Empty:
                cause = None
            raise self._error(cause if cause is not None else e) from e
        finished = False
        try:
            while True:
                try:
                    result, error = responses.get(timeout=self.timeout)
                except queue.Empty:
                    raise ClientError(
                        f"no response from {self.model} within {self.timeout:g}s; request cancelled",
                        hint="raise the client timeout or check the server load",
                    ) from None
                if error is not None:
                    raise self._error(error)
                chunk = chunk_from(result, time.perf_counter())
                yield chunk
                if chunk.final:
                    finished = True
                    return
        finally:
            self._client.stop_stream(cancel_requests=not finished)
            if not finished and self.model == "ensemble":
                self._send_stop(request_id)

    def _send_stop(self, request_id: str) -> None:
        """Best effort: stop the ensemble's ``tensorrt_llm`` step (see stop_inputs)."""
        from tritonclient.utils import InferenceServerException

        grpcclient = _grpc()
        inputs = []
        for name, arr, dtype in stop_inputs():
            tensor = grpcclient.InferInput(name, list(arr.shape), dtype)
            tensor.set_data_from_numpy(arr)
            inputs.append(tensor)
        done: queue.Queue[object] = queue.Queue()
        try:
            self._client.start_stream(callback=lambda result, error: done.put(error))
            self._client.async_stream_infer(
                "tensorrt_llm", inputs, request_id=request_id, enable_empty_final_response=True
            )
            done.get(timeout=5)
        except (InferenceServerException, queue.Empty):
            pass
        finally:
            self._client.stop_stream()

    def generate(
        self, prompt: str, params: GenerateParams | None = None, *, stream: bool = True
    ) -> Completion:
        """Run one request to completion (streamed over gRPC) and time it."""
        sent = time.perf_counter()
        chunks = list(self.stream(prompt, params, stream=stream))
        return summarize(chunks, sent=sent)

    def infer(self, prompt: str, params: GenerateParams | None = None) -> str:
        """Unary (non-streaming) ModelInfer; only for models with ``serving.decoupled=false``.

        Raises:
            ClientError: the model is decoupled (use :meth:`generate`), or the request failed.
        """
        from tritonclient.utils import InferenceServerException

        params = params or GenerateParams()
        try:
            result = self._client.infer(
                self.model, self._inputs(prompt, params, stream=False), client_timeout=self.timeout
            )
        except InferenceServerException as e:
            raise self._error(e) from e
        return result.as_numpy("text_output").reshape(-1)[0].decode("utf-8")
