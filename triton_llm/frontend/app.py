"""The ASGI app: routes, the in-flight bound, streaming, and cancellation on client disconnect.

Each generation runs in its own asyncio task next to a task that waits for the client's
``http.disconnect``; whichever ends first wins. A disconnect cancels the generation task,
which closes the Triton stream through :mod:`triton_llm.client` (that sends TensorRT-LLM's
``stop``), so the runtime frees the slot. No thread is held per request.

Backpressure: at most ``max_inflight`` requests generate at once; one more gets an
immediate 429 (OpenAI's ``rate_limit_exceeded``, ``Retry-After: 1``), which OpenAI SDKs
retry with backoff. Requests below the bound queue in Triton's scheduler as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from triton_llm.client import AsyncLLMClient
from triton_llm.errors import ClientError
from triton_llm.frontend.api_errors import (
    APIError,
    bad_request,
    from_client_error,
    model_not_found,
    too_many_requests,
)
from triton_llm.frontend.config import FrontendConfig
from triton_llm.frontend.encode import DONE, Encoder, sse
from triton_llm.frontend.generation import Generation
from triton_llm.frontend.mapping import Job, chat_job, completion_job
from triton_llm.frontend.protocol import ChatCompletionRequest, CompletionRequest, parse_body

SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class FrontendState:
    """What the routes share: settings, the Triton client, the in-flight count."""

    def __init__(self, config: FrontendConfig) -> None:
        self.config = config
        self.client: AsyncLLMClient | None = None
        self.inflight = 0
        self.started = int(time.time())
        self._max_seq_len: int | None = None

    async def max_seq_len(self) -> int:
        if self._max_seq_len is None:
            self._max_seq_len = await self.triton().max_seq_len()
        return self._max_seq_len

    def triton(self) -> AsyncLLMClient:
        """The open Triton client (created by the app's lifespan)."""
        if self.client is None:
            raise RuntimeError("the frontend's Triton client is not open (app started without its lifespan)")
        return self.client

    def check_model(self, model: str) -> None:
        if model != self.config.model_name:
            raise model_not_found(model, self.config.model_name)

    def model_card(self) -> dict[str, Any]:
        return {
            "id": self.config.model_name,
            "object": "model",
            "created": self.started,
            "owned_by": "triton-llm",
        }


def create_app(config: FrontendConfig) -> Starlette:
    """The OpenAI-compatible app for one served model (``/v1/models``, completions, chat, ``/health``)."""
    state = FrontendState(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        state.client = AsyncLLMClient(config.triton_url, model=config.triton_model, timeout=config.timeout)
        try:
            yield
        finally:
            await state.client.close()

    app = Starlette(
        routes=[
            Route("/v1/models", _list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", _get_model, methods=["GET"]),
            Route("/v1/completions", _completions, methods=["POST"]),
            Route("/v1/chat/completions", _chat, methods=["POST"]),
            Route("/health", _health, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={APIError: _error, HTTPException: _error, Exception: _error},
    )
    app.state.frontend = state
    return app


def _state(request: Request) -> FrontendState:
    return request.app.state.frontend


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as e:
        raise bad_request(f"The request body is not valid JSON: {e}") from None


async def _list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [_state(request).model_card()]})


async def _get_model(request: Request) -> Response:
    state = _state(request)
    state.check_model(request.path_params["model"])
    return JSONResponse(state.model_card())


async def _health(request: Request) -> Response:
    state = _state(request)
    if state.client is not None and await state.client.ready():
        return JSONResponse({"status": "ok"})
    raise APIError(
        503,
        f"Triton at {state.config.triton_url} is unreachable or {state.config.triton_model!r} is not ready",
        type="server_error",
        code="triton_unavailable",
    )


async def _completions(request: Request) -> Response:
    req = parse_body(CompletionRequest, await _json_body(request))
    _state(request).check_model(req.model)
    return GenerationResponse(_state(request), completion_job(req))


async def _chat(request: Request) -> Response:
    req = parse_body(ChatCompletionRequest, await _json_body(request))
    _state(request).check_model(req.model)
    return GenerationResponse(_state(request), chat_job(req))


def _error_response(error: APIError) -> JSONResponse:
    headers = {"retry-after": "1"} if error.status == 429 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _error(_request: Request, exc: Exception) -> Response:
    """Every error, including Starlette's 404/405 and unexpected exceptions, in OpenAI's shape."""
    if isinstance(exc, APIError):
        return _error_response(exc)
    if isinstance(exc, HTTPException):
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error_response(APIError(exc.status_code, str(exc.detail), type=kind))
    return _error_response(APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error"))


class GenerationResponse(Response):
    """Runs one generation while it answers; a client disconnect cancels it (see module doc)."""

    def __init__(self, state: FrontendState, job: Job) -> None:
        super().__init__()
        self.state = state
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if state.inflight >= state.config.max_inflight:
            await _error_response(too_many_requests(state.config.max_inflight))(scope, receive, send)
            return
        state.inflight += 1
        work = asyncio.create_task(self._run(send))
        watch = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            work.cancel()  # no-op once it is done; after a disconnect it closes the Triton stream
            try:
                await asyncio.wait({work})
            finally:
                state.inflight -= 1
        failure = None if work.cancelled() else work.exception()
        if failure is not None:
            raise failure  # a bug: Starlette answers 500 if nothing was sent yet

    async def _run(self, send: Send) -> None:
        state, job = self.state, self.job
        generation = Generation(state.triton(), job, max_seq_len=state.max_seq_len)
        encoder = Encoder(job.kind, state.config.model_name, include_usage=job.include_usage)
        pieces = generation.pieces()
        try:
            if job.stream:
                await self._stream(send, generation, pieces, encoder)
            else:
                await self._whole(send, generation, pieces, encoder)
        finally:
            await pieces.aclose()
            generation.close()

    @staticmethod
    async def _whole(
        send: Send, generation: Generation, pieces: AsyncIterator[str], encoder: Encoder
    ) -> None:
        try:
            text = "".join([piece async for piece in pieces])
            usage = await generation.usage()
        except ClientError as e:
            await _send_json(send, from_client_error(e))
            return
        await _send_json(send, encoder.body(text, generation.finish_reason, usage))

    @staticmethod
    async def _stream(
        send: Send, generation: Generation, pieces: AsyncIterator[str], encoder: Encoder
    ) -> None:
        # Wait for Triton's first response before answering 200, so a rejected request is a real 400.
        try:
            first = await pieces.__anext__()
        except StopAsyncIteration:
            first = ""
        except ClientError as e:
            await _send_json(send, from_client_error(e))
            return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await _send_body(send, encoder.opening() + (encoder.piece(first) if first else b""))
        try:
            async for piece in pieces:
                if piece:
                    await _send_body(send, encoder.piece(piece))
            usage = await generation.usage() if encoder.include_usage else None
        except ClientError as e:  # after the 200: an error event, as OpenAI streams do
            await _send_body(send, sse(from_client_error(e).body()) + DONE, more=False)
            return
        await _send_body(send, encoder.closing(generation.finish_reason, usage), more=False)


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone away (the request body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_body(send: Send, body: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _send_json(send: Send, payload: dict[str, Any] | APIError) -> None:
    status = 200
    if isinstance(payload, APIError):
        status, payload = payload.status, payload.body()
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await _send_body(send, body, more=False)
