"""asyncio gRPC streaming client; cancelling the task cancels the request on the server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
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
    preprocessing_inputs,
    stop_inputs,
    summarize,
)
from triton_llm.errors import ClientError


class AsyncLLMClient:
    """Async counterpart of :class:`triton_llm.client.LLMClient` (tritonclient.grpc.aio)."""

    def __init__(
        self, url: str = "127.0.0.1:8001", *, model: str = "ensemble", timeout: float = 60.0
    ) -> None:
        import tritonclient.grpc.aio as grpcaio

        self.url = url
        self.model = model
        self.timeout = timeout
        self._grpc = grpcaio
        self._client = grpcaio.InferenceServerClient(url)

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> AsyncLLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _error(self, e: Exception) -> ClientError:
        status = str(e.status()) if hasattr(e, "status") and callable(e.status) else ""
        message = e.message() if hasattr(e, "message") and callable(e.message) else str(e)
        return classify_error(message, url=self.url, model=self.model, status=status)

    async def stream(
        self, prompt: str, params: GenerateParams | None = None, *, stream: bool = True
    ) -> AsyncIterator[Chunk]:
        """Yield text pieces as they arrive; see :meth:`LLMClient.stream` for errors.

        Cancelling the consuming task (or leaving the loop) cancels the gRPC call, which
        cancels the request on the server.
        """
        import grpc
        from tritonclient.utils import InferenceServerException

        params = params or GenerateParams()
        check_params(params)
        inputs = []
        for name, arr, dtype in build_inputs(prompt, params, stream=stream):
            tensor = self._grpc.InferInput(name, list(arr.shape), dtype)
            tensor.set_data_from_numpy(arr)
            inputs.append(tensor)

        request_id = new_request_id()

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield {
                "model_name": self.model,
                "inputs": inputs,
                "request_id": request_id,
                "enable_empty_final_response": True,
            }

        call = self._client.stream_infer(requests())
        iterator = call.__aiter__()
        finished = expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            call.cancel()

        loop = asyncio.get_running_loop()
        try:
            while True:
                # A timer per wait, not asyncio.wait_for, which creates a task per response.
                watchdog = loop.call_later(self.timeout, expire)
                try:
                    result, error = await iterator.__anext__()
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if not expired:
                        raise
                    raise ClientError(
                        f"no response from {self.model} within {self.timeout:g}s; request cancelled"
                    ) from None
                except InferenceServerException as e:
                    raise self._error(e) from e
                except grpc.RpcError as e:
                    code = e.code() if hasattr(e, "code") else ""
                    details = e.details() if hasattr(e, "details") else str(e)
                    status = str(code)
                    raise classify_error(str(details), url=self.url, model=self.model, status=status) from e
                finally:
                    watchdog.cancel()
                if error is not None:
                    raise self._error(error)
                chunk = chunk_from(result, time.perf_counter())
                yield chunk
                if chunk.final:
                    finished = True
                    return
        finally:
            cancel = getattr(call, "cancel", None)
            if cancel is not None:
                cancel()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            if not finished and self.model == "ensemble":
                await asyncio.shield(self._send_stop(request_id))

    async def _send_stop(self, request_id: str) -> None:
        """Best effort: stop the ensemble's ``tensorrt_llm`` step (see stop_inputs)."""
        import grpc
        from tritonclient.utils import InferenceServerException

        inputs = []
        for name, arr, dtype in stop_inputs():
            tensor = self._grpc.InferInput(name, list(arr.shape), dtype)
            tensor.set_data_from_numpy(arr)
            inputs.append(tensor)

        async def one() -> AsyncIterator[dict[str, Any]]:
            yield {
                "model_name": "tensorrt_llm",
                "inputs": inputs,
                "request_id": request_id,
                "enable_empty_final_response": True,
            }

        async def send() -> None:
            async for _result, _error in self._client.stream_infer(one()):
                break

        with contextlib.suppress(InferenceServerException, grpc.RpcError, asyncio.TimeoutError):
            await asyncio.wait_for(send(), timeout=5)

    async def generate(
        self, prompt: str, params: GenerateParams | None = None, *, stream: bool = True
    ) -> Completion:
        """Run one request to completion and time it."""
        sent = time.perf_counter()
        chunks = [c async for c in self.stream(prompt, params, stream=stream)]
        return summarize(chunks, sent=sent)

    async def prompt_tokens(self, prompt: str, params: GenerateParams | None = None) -> int:
        """The prompt's token count, from the server's ``preprocessing`` model (chat template included).

        The same model and inputs as the ensemble's first step, so it is the count the runtime sees.

        Raises:
            RequestRejectedError: the server rejects the prompt; ServerUnavailableError: unreachable.
        """
        import grpc
        from tritonclient.utils import InferenceServerException

        inputs = []
        for name, arr, dtype in preprocessing_inputs(prompt, params or GenerateParams()):
            tensor = self._grpc.InferInput(name, list(arr.shape), dtype)
            tensor.set_data_from_numpy(arr)
            inputs.append(tensor)
        outputs = [self._grpc.InferRequestedOutput("REQUEST_INPUT_LEN")]
        try:
            result = await asyncio.wait_for(
                self._client.infer("preprocessing", inputs, outputs=outputs), timeout=self.timeout
            )
        except InferenceServerException as e:
            raise self._error(e) from e
        except grpc.RpcError as e:
            raise classify_error(str(e), url=self.url, model="preprocessing", status=str(e.code())) from e
        except asyncio.TimeoutError:
            raise ClientError(f"no answer from preprocessing within {self.timeout:.0f}s") from None
        return int(result.as_numpy("REQUEST_INPUT_LEN").reshape(-1)[0])

    async def max_seq_len(self) -> int:
        """The engine's max_seq_len (prompt + generated tokens), from ``preprocessing``'s config.

        Raises:
            ServerUnavailableError: unreachable or not loaded; ClientError: the parameter is missing.
        """
        from tritonclient.utils import InferenceServerException

        try:
            config = await self._client.get_model_config("preprocessing", as_json=True)
        except InferenceServerException as e:
            raise self._error(e) from e
        value = config.get("config", {}).get("parameters", {}).get("max_seq_len", {}).get("string_value")
        if not value:
            raise ClientError("the preprocessing model has no max_seq_len parameter")
        return int(value)

    async def ready(self) -> bool:
        """True when the server answers and :attr:`model` is ready (False for any failure)."""
        import grpc
        from tritonclient.utils import InferenceServerException

        try:
            return bool(await asyncio.wait_for(self._client.is_model_ready(self.model), timeout=5))
        except (InferenceServerException, grpc.RpcError, asyncio.TimeoutError, OSError):
            return False
