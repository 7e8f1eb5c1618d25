"""Protocol drivers: each sends one request and fills its :class:`RequestRecord` as responses arrive.

``grpc`` (Triton KServe gRPC streaming through :mod:`triton_llm.client`), ``http`` (Triton's
``/v2/models/<model>/generate_stream`` SSE), ``openai-chat`` and ``openai-completions``
(OpenAI SSE with ``stream_options.include_usage``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from triton_llm.bench.prompts import Prompt
from triton_llm.bench.records import RequestRecord
from triton_llm.errors import UsageError

PROTOCOLS = ("grpc", "http", "openai-chat", "openai-completions")
DEFAULT_URLS = {
    "grpc": "127.0.0.1:8001",
    "http": "127.0.0.1:8000",
    "openai-chat": "http://127.0.0.1:9000",
    "openai-completions": "http://127.0.0.1:9000",
}
# Error kinds a record can carry.
ERROR_KINDS = ("unavailable", "timeout", "rejected", "server_error", "protocol")


@dataclass(frozen=True)
class DriverOptions:
    """What every request of a run shares."""

    url: str
    model: str | None
    timeout: float = 60.0
    end_id: int | None = None  # Triton protocols: an id the model never samples fixes the output length
    chat_template: bool | None = False  # Triton protocols: apply_chat_template (None: server default)
    extra_body: dict[str, Any] | None = None  # HTTP protocols: merged into each JSON request


class Driver(Protocol):
    """Sends requests of one protocol; ``send`` never raises for a failed request."""

    async def check(self) -> str:
        """Fail loudly (ServerUnavailableError, UsageError) unless the endpoint serves the model;
        returns the model name to use."""
        ...

    async def send(self, prompt: Prompt, record: RequestRecord) -> None:
        """Send ``prompt``, record each response's arrival and tokens, then ``end`` or ``error``."""
        ...

    async def close(self) -> None: ...


def make_driver(protocol: str, options: DriverOptions) -> Driver:
    """The driver for ``protocol``.

    Raises:
        UsageError: unknown protocol, or an option the protocol cannot carry.
    """
    if protocol == "grpc":
        if options.extra_body is not None:
            raise UsageError("--extra-body applies to HTTP protocols only", field="--extra-body")
        from triton_llm.bench.drivers.grpc import GrpcStreamDriver

        return GrpcStreamDriver(options)
    if protocol == "http":
        from triton_llm.bench.drivers.http import TritonSseDriver

        return TritonSseDriver(options)
    if protocol in ("openai-chat", "openai-completions"):
        if options.end_id is not None:
            raise UsageError("--end-id applies to the Triton protocols (grpc, http)", field="--end-id")
        from triton_llm.bench.drivers.http import OpenAISseDriver

        return OpenAISseDriver(options, chat=protocol == "openai-chat")
    raise UsageError(f"--protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}", field="--protocol")
