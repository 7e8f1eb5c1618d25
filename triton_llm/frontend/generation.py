"""One request through :mod:`triton_llm.client`: streamed text, stop sequences, finish reason, usage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from triton_llm.frontend.encode import Usage
from triton_llm.frontend.mapping import Job
from triton_llm.frontend.stops import StopMatcher


class Generation:
    """Runs one :class:`Job`; iterate :meth:`pieces`, then read :attr:`finish_reason` and :meth:`usage`.

    Finish reason: ``stop`` when a stop sequence matched on the text (a stop word the runtime
    matched is in the text too), or when fewer than ``max_tokens`` ids came back: the runtime
    ended the sequence with end_id, which it does not return; ``length`` when ``max_tokens``
    ids came back and no stop sequence matched. Ids are counted from ``num_output_tokens``.

    The prompt's token count comes from the server's preprocessing (see
    ``AsyncLLMClient.prompt_tokens``); it is asked once the first response has arrived, so it
    never delays the first token, or first of all when ``max_tokens`` is not given (then
    ``max_tokens`` = max_seq_len - prompt tokens, as OpenAI does).
    """

    def __init__(self, client: Any, job: Job, *, max_seq_len: Callable[[], Awaitable[int]]) -> None:
        self.client = client
        self.job = job
        self._max_seq_len = max_seq_len
        self._finish_reason: str | None = None
        self.completion_tokens = 0
        self._prompt_tokens: int | None = None
        self._count: asyncio.Task[int] | None = None

    @property
    def finish_reason(self) -> str:
        """``stop`` or ``length``, once :meth:`pieces` is exhausted."""
        if self._finish_reason is None:
            raise RuntimeError("finish_reason is known only once the stream has ended")
        return self._finish_reason

    def _start_count(self) -> asyncio.Task[int]:
        if self._count is None:
            self._count = asyncio.create_task(self.client.prompt_tokens(self.job.prompt, self.job.params))
        return self._count

    async def pieces(self) -> AsyncGenerator[str, None]:
        """Text as it becomes safe to show; the first server response always yields (maybe "").

        Closing this iterator early closes the Triton stream, which cancels the request on the
        server (the client sends TensorRT-LLM's ``stop``).

        Raises:
            ClientError: from the client (rejected request, Triton unavailable, ...).
        """
        job = self.job
        params = job.params
        if job.max_tokens is None:
            self._prompt_tokens = await self.client.prompt_tokens(job.prompt, params)
            params = replace(params, max_tokens=max(await self._max_seq_len() - self._prompt_tokens, 1))
        want_usage = job.include_usage or not job.stream
        matcher = StopMatcher(job.stops)
        stream = self.client.stream(job.prompt, params)
        first = True
        try:
            async for chunk in stream:
                self.completion_tokens += chunk.tokens or 0
                if first and want_usage and self._prompt_tokens is None:
                    self._start_count()
                text = matcher.feed(chunk.text)
                if text or first:
                    yield text
                first = False
                if matcher.matched:
                    break
        finally:
            await stream.aclose()
        if matcher.matched:
            self._finish_reason = "stop"
            return
        rest = matcher.flush()
        if rest:
            yield rest
        self._finish_reason = "length" if self.completion_tokens >= params.max_tokens else "stop"

    async def usage(self) -> Usage:
        """Prompt tokens (after the chat template) and completion tokens (generated ids)."""
        if self._prompt_tokens is None:
            self._prompt_tokens = await self._start_count()
        return Usage(self._prompt_tokens, self.completion_tokens)

    def close(self) -> None:
        """Drop the prompt count if nobody waits for it any more."""
        if self._count is not None:
            if not self._count.done():
                self._count.cancel()
            elif not self._count.cancelled():
                with contextlib.suppress(Exception):
                    self._count.exception()  # retrieved, so asyncio does not log it
