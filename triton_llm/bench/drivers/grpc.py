"""Triton KServe gRPC streaming with as little client work per response as possible.

The request tensors come from :func:`triton_llm.client.request.build_inputs` (the one owner
of the ensemble's input contract) and are serialized once per prompt; each send copies that
message and sets a fresh request id (postprocessing keys its streaming state by it). Each
response is timestamped first, then read for only its final flag, error and
``num_output_tokens``. No task is created per response: a timer handle per response enforces
``timeout`` (``asyncio.wait_for`` costs a task per response, which showed as ~12 ms of added TTFT
at concurrency 16 in bench/loadgen.py). Unlike ``AsyncLLMClient``, it builds no ``Chunk`` and
decodes no text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from triton_llm.bench.drivers import DriverOptions
from triton_llm.bench.prompts import Prompt
from triton_llm.bench.records import RequestRecord
from triton_llm.client import GenerateParams, LLMClient
from triton_llm.client.request import build_inputs, classify_error, new_request_id, stop_inputs
from triton_llm.errors import ClientError, RequestRejectedError, ServerUnavailableError

FINAL = "triton_final_response"


def error_kind(error: ClientError) -> str:
    """The record's error kind for a client error."""
    if isinstance(error, ServerUnavailableError):
        return "unavailable"
    if isinstance(error, RequestRejectedError):
        return "rejected"
    return "server_error"


def response_tokens(infer: Any) -> int:
    """Tokens in one response: ``num_output_tokens`` when the model sends it, else 1 for a
    non-empty ``text_output`` (raw BYTES: a 4-byte length, then the text)."""
    text = 0
    for index, output in enumerate(infer.outputs):
        raw = infer.raw_output_contents[index] if index < len(infer.raw_output_contents) else b""
        if output.name == "num_output_tokens" and len(raw) >= 4:
            return int.from_bytes(raw[:4], "little", signed=True)
        if output.name == "text_output" and len(raw) >= 4:
            text = int(int.from_bytes(raw[:4], "little") > 0)
    return text


def infer_request(model: str, inputs: list[tuple[str, Any, str]]) -> Any:
    """A ModelInferRequest with raw (KServe binary) contents for ``inputs`` from build_inputs."""
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import serialize_byte_tensor

    request = service_pb2.ModelInferRequest(model_name=model)
    request.parameters["enable_empty_final_response"].bool_param = True
    for name, array, dtype in inputs:
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = name, dtype
        tensor.shape.extend(array.shape)
        raw = serialize_byte_tensor(array).item() if dtype == "BYTES" else array.tobytes()
        request.raw_input_contents.append(raw)
    return request


class GrpcStreamDriver:
    """One ``ModelStreamInfer`` call per request on a shared channel."""

    def __init__(self, options: DriverOptions) -> None:
        self.options = options
        self.model = options.model or "ensemble"
        self.params = GenerateParams(chat_template=options.chat_template, end_id=options.end_id)
        self._templates: dict[tuple[str, int], Any] = {}
        self._channel: Any = None
        self._stub: Any = None

    async def check(self) -> str:
        def ready() -> None:
            with LLMClient(self.options.url, model=self.model, timeout=self.options.timeout) as client:
                client.check_ready()

        await asyncio.to_thread(ready)
        import grpc
        from tritonclient.grpc import service_pb2_grpc

        self._channel = grpc.aio.insecure_channel(self.options.url)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        return self.model

    def _request(self, prompt: Prompt) -> Any:
        from tritonclient.grpc import service_pb2

        key = (prompt.text, prompt.max_tokens)
        template = self._templates.get(key)
        if template is None:
            params = GenerateParams(
                max_tokens=prompt.max_tokens,
                chat_template=self.params.chat_template,
                end_id=self.params.end_id,
            )
            template = self._templates[key] = infer_request(
                self.model, build_inputs(prompt.text, params, stream=True)
            )
        request = service_pb2.ModelInferRequest()
        request.CopyFrom(template)
        request.id = new_request_id()
        return request

    async def send(self, prompt: Prompt, record: RequestRecord) -> None:
        import grpc

        if self._stub is None:
            raise RuntimeError("check() first")
        request = self._request(prompt)
        call = self._stub.ModelStreamInfer(iter((request,)))
        loop = asyncio.get_running_loop()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            call.cancel()

        watchdog = loop.call_later(self.options.timeout, expire)
        try:
            async for response in call:
                when = time.perf_counter()
                watchdog.cancel()
                watchdog = loop.call_later(self.options.timeout, expire)
                if response.error_message:
                    error = classify_error(response.error_message, url=self.options.url, model=self.model)
                    record.error, record.error_message = error_kind(error), str(error)
                    break
                infer = response.infer_response
                tokens = response_tokens(infer)
                if tokens:
                    record.add_chunk(when, tokens)
                if infer.parameters[FINAL].bool_param:
                    record.end = when
                    break
        except asyncio.CancelledError:
            if not expired:
                raise
        except grpc.RpcError as e:
            status = str(e.code()) if hasattr(e, "code") else ""
            details = e.details() if hasattr(e, "details") else str(e)
            error = classify_error(str(details), url=self.options.url, model=self.model, status=status)
            record.error, record.error_message = error_kind(error), str(error)
        finally:
            watchdog.cancel()
        if expired:
            record.error = "timeout"
            record.error_message = f"no response within {self.options.timeout:g}s; request cancelled"
        elif record.error is None and record.end is None:
            record.error, record.error_message = "protocol", "the stream ended without a final response"
        if record.error is not None:
            record.end = None
            call.cancel()
            if self.model == "ensemble":
                await self._stop(request.id)

    async def _stop(self, request_id: str) -> None:
        """Best effort: stop the ensemble's ``tensorrt_llm`` step, as the client does on cancel."""
        import grpc

        stop = infer_request("tensorrt_llm", stop_inputs())
        stop.id = request_id
        with contextlib.suppress(grpc.RpcError, asyncio.TimeoutError):
            call = self._stub.ModelStreamInfer(iter((stop,)))
            await asyncio.wait_for(call.read(), timeout=5)
            call.cancel()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
