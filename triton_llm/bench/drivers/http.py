"""Server-sent-event drivers over aiohttp: Triton ``generate_stream`` and the OpenAI endpoints."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from triton_llm.bench.drivers import DriverOptions
from triton_llm.bench.prompts import Prompt
from triton_llm.bench.records import RequestRecord
from triton_llm.errors import ServerUnavailableError, UsageError


def base_url(url: str) -> str:
    """``host:port`` or ``http(s)://host:port[/path]`` -> a URL without a trailing slash."""
    url = url.rstrip("/")
    return url if url.startswith(("http://", "https://")) else f"http://{url}"


def status_kind(status: int) -> str:
    """The record's error kind for an HTTP error status."""
    if status in (502, 503, 504):
        return "unavailable"
    if status == 408:
        return "timeout"
    return "rejected" if 400 <= status < 500 else "server_error"


def error_text(body: str) -> str:
    """The message of an error body: JSON ``error`` (bare, or as an SSE ``data:`` event) or the text."""
    text = body.strip()
    text = text[5:].strip() if text.startswith("data:") else text
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return text[:300]
    error = obj.get("error", obj) if isinstance(obj, dict) else obj
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)[:300]


class _SseDriver:
    """Shared session, POST and event loop; subclasses build bodies and read events."""

    path = ""

    def __init__(self, options: DriverOptions) -> None:
        self.options = options
        self.base = base_url(options.url)
        self.model = options.model
        self._session: Any = None

    def _open(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),  # no client-side cap on requests in flight
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.options.timeout, sock_read=self.options.timeout
                ),
            )
        return self._session

    async def _get_json(self, url: str) -> tuple[int, Any]:
        import aiohttp

        try:
            async with self._open().get(url) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text) if text else None
                except json.JSONDecodeError:
                    return response.status, text
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise ServerUnavailableError(
                f"cannot reach {url}: {e}", hint="check --url and that the server is running"
            ) from e

    def body(self, prompt: Prompt) -> dict[str, Any]:
        raise NotImplementedError

    def read_event(self, data: str, when: float, record: RequestRecord) -> bool:
        """Record one event's payload; True when it is the stream's last."""
        raise NotImplementedError

    async def send(self, prompt: Prompt, record: RequestRecord) -> None:
        import aiohttp

        body = {**self.body(prompt), **(self.options.extra_body or {})}
        try:
            async with self._open().post(self.base + self.path, json=body) as response:
                if response.status != 200:
                    record.error = status_kind(response.status)
                    record.error_message = f"HTTP {response.status}: {error_text(await response.text())}"
                    return
                async for line in response.content:
                    when = time.perf_counter()
                    if not line.startswith(b"data:"):
                        continue
                    if self.read_event(line[5:].strip().decode("utf-8"), when, record):
                        break
                record.end = time.perf_counter() if record.end is None else record.end
        except asyncio.TimeoutError:
            record.error = "timeout"
            record.error_message = f"no response within {self.options.timeout:g}s"
        except aiohttp.ClientConnectionError as e:
            record.error, record.error_message = "unavailable", str(e) or type(e).__name__
        except (aiohttp.ClientPayloadError, json.JSONDecodeError, UnicodeDecodeError, KeyError) as e:
            record.error, record.error_message = "protocol", f"bad response: {e}"
        if record.error is not None:
            record.end = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class TritonSseDriver(_SseDriver):
    """Triton's HTTP ``POST /v2/models/<model>/generate_stream`` (one SSE event per response)."""

    async def check(self) -> str:
        self.model = self.model or "ensemble"
        self.path = f"/v2/models/{self.model}/generate_stream"
        status, _ = await self._get_json(f"{self.base}/v2/health/ready")
        if status != 200:
            raise ServerUnavailableError(f"Triton at {self.base} is not ready (HTTP {status})")
        status, _ = await self._get_json(f"{self.base}/v2/models/{self.model}/ready")
        if status != 200:
            raise ServerUnavailableError(
                f"model {self.model!r} is not ready on {self.base} (HTTP {status})", hint="check --model"
            )
        return self.model

    def body(self, prompt: Prompt) -> dict[str, Any]:
        out: dict[str, Any] = {"text_input": prompt.text, "max_tokens": prompt.max_tokens, "stream": True}
        if self.options.chat_template is not None:
            out["apply_chat_template"] = self.options.chat_template
        if self.options.end_id is not None:
            out["end_id"] = self.options.end_id
        return out

    def read_event(self, data: str, when: float, record: RequestRecord) -> bool:
        obj = json.loads(data)
        if "error" in obj:
            record.error, record.error_message = "server_error", str(obj["error"])
            return True
        text = obj.get("text_output", "")
        count = obj.get("num_output_tokens")
        tokens = int(count[0] if isinstance(count, list) else count) if count is not None else int(bool(text))
        if tokens:
            record.add_chunk(when, tokens)
        return False


class OpenAISseDriver(_SseDriver):
    """``POST /v1/chat/completions`` or ``/v1/completions`` with ``stream: true``.

    Each content delta is one response; ``usage.completion_tokens`` (requested with
    ``stream_options.include_usage``) replaces the delta count when the server sends it.
    """

    def __init__(self, options: DriverOptions, *, chat: bool) -> None:
        super().__init__(options)
        self.chat = chat
        if not self.base.endswith("/v1"):
            self.base += "/v1"
        self.path = "/chat/completions" if chat else "/completions"

    async def check(self) -> str:
        status, listing = await self._get_json(f"{self.base}/models")
        if status != 200 or not isinstance(listing, dict):
            raise ServerUnavailableError(f"GET {self.base}/models answered HTTP {status}", hint="check --url")
        names = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
        if self.model is None:
            if len(names) != 1:
                raise UsageError(f"the server lists models {names}: pick one with --model", field="--model")
            self.model = names[0]
        elif self.model not in names:
            raise UsageError(
                f"--model {self.model!r} is not served at {self.base} (models: {names})",
                field="--model",
                value=self.model,
            )
        return str(self.model)

    def body(self, prompt: Prompt) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "max_tokens": prompt.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.chat:
            out["messages"] = [{"role": "user", "content": prompt.text}]
        else:
            out["prompt"] = prompt.text
        return out

    def read_event(self, data: str, when: float, record: RequestRecord) -> bool:
        if data == "[DONE]":
            record.end = when
            return True
        obj = json.loads(data)
        if "error" in obj:
            record.error, record.error_message = "server_error", json.dumps(obj["error"])[:300]
            return True
        for choice in obj.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content") if self.chat else choice.get("text")
            if piece:
                record.add_chunk(when, 1)
        usage = obj.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            record.output_tokens = usage["completion_tokens"]
        return False
