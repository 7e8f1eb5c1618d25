"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with the HTTP status.

Statuses: 400 bad input (ours or the server's checks), 404 unknown model or path, 429 the
in-flight bound is reached, 502 Triton failed the request, 503 Triton unreachable or not ready.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from triton_llm.errors import ClientError, RequestRejectedError, ServerUnavailableError


@dataclass
class APIError(Exception):
    """An error answer: HTTP status plus OpenAI's error object fields."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def encode(self) -> bytes:
        return json.dumps(self.body(), ensure_ascii=False).encode("utf-8")


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """400: the request itself is wrong; retrying it unchanged cannot help."""
    return APIError(400, message, param=param, code=code)


def unsupported(param: str, what: str) -> APIError:
    """400 for an OpenAI feature this deployment cannot serve."""
    return APIError(400, f"{what} is not supported by this server", param=param, code="unsupported_parameter")


def model_not_found(model: str, served: str) -> APIError:
    """404: the request names a model this frontend does not serve."""
    return APIError(
        404,
        f"The model {model!r} does not exist; this server serves {served!r} (GET /v1/models)",
        param="model",
        code="model_not_found",
    )


def too_many_requests(limit: int) -> APIError:
    """429: ``limit`` requests are already in flight; the client should retry after a pause."""
    return APIError(
        429,
        f"{limit} requests are already in flight (--max-inflight); retry after a short pause",
        type="rate_limit_error",
        code="rate_limit_exceeded",
    )


def from_client_error(error: ClientError) -> APIError:
    """Map a :mod:`triton_llm.client` error to its status: 400, 503, or 502 for any other failure."""
    if isinstance(error, RequestRejectedError):
        # Triton prefixes the model's message ("in ensemble 'ensemble', bad request: ..."): keep the cause.
        message = error.message.rsplit("bad request: ", 1)[-1]
        return APIError(400, message, code="rejected_by_server")
    if isinstance(error, ServerUnavailableError):
        return APIError(503, str(error), type="server_error", code="triton_unavailable")
    return APIError(502, str(error), type="server_error", code="triton_error")
