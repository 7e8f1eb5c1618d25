"""Triton KServe gRPC streaming through :class:`triton_llm.client.AsyncLLMClient`."""

from __future__ import annotations

import asyncio
import dataclasses

from triton_llm.bench.drivers import DriverOptions
from triton_llm.bench.prompts import Prompt
from triton_llm.bench.records import RequestRecord
from triton_llm.client import AsyncLLMClient, GenerateParams, LLMClient
from triton_llm.errors import ClientError, RequestRejectedError, ServerUnavailableError


def error_kind(error: ClientError) -> str:
    """The record's error kind for a client error."""
    if isinstance(error, ServerUnavailableError):
        return "unavailable"
    if isinstance(error, RequestRejectedError):
        return "rejected"
    if str(error).startswith("no response from"):
        return "timeout"
    return "server_error"


class GrpcStreamDriver:
    """One gRPC stream per request; each response is timed when the client yields it."""

    def __init__(self, options: DriverOptions) -> None:
        self.options = options
        self.model = options.model or "ensemble"
        self.params = GenerateParams(chat_template=options.chat_template, end_id=options.end_id)
        self._client: AsyncLLMClient | None = None

    async def check(self) -> str:
        def ready() -> None:
            with LLMClient(self.options.url, model=self.model, timeout=self.options.timeout) as client:
                client.check_ready()

        await asyncio.to_thread(ready)
        self._client = AsyncLLMClient(self.options.url, model=self.model, timeout=self.options.timeout)
        return self.model

    async def send(self, prompt: Prompt, record: RequestRecord) -> None:
        if self._client is None:
            raise RuntimeError("check() first")
        params = dataclasses.replace(self.params, max_tokens=prompt.max_tokens)
        try:
            async for chunk in self._client.stream(prompt.text, params):
                tokens = chunk.tokens if chunk.tokens is not None else int(bool(chunk.text))
                if tokens:
                    record.add_chunk(chunk.time, tokens)
                if chunk.final:
                    record.end = chunk.time
        except ClientError as e:
            record.error, record.error_message = error_kind(e), str(e)
            return
        if record.end is None:
            record.error, record.error_message = "protocol", "the stream ended without a final response"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
