"""One error hierarchy for triton-llm.

Every error carries structured fields (``key``, ``path``, ``field``, ``value``) and says
whether retrying can help. The CLI maps each class to an exit code and a one-line message
that names the fix; ``--debug`` shows the traceback.
"""

from __future__ import annotations

from typing import Any


class TritonLLMError(Exception):
    """Base error. ``retryable`` says whether the same call may succeed later."""

    retryable: bool = False
    exit_code: int = 1

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        path: str | None = None,
        field: str | None = None,
        value: Any = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.path = path
        self.field = field
        self.value = value
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(TritonLLMError):
    """Bad command-line usage or input that no retry can fix."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe or override breaks a rule; ``field``/``value`` name the offender."""


class RecipeErrors(RecipeError):
    """Several recipe problems found in one pass; all are reported at once."""

    def __init__(self, errors: list[RecipeError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"recipe has {len(errors)} problem(s):\n{lines}")


class ConfigError(UsageError):
    """Settings (flags, environment, settings file) are invalid."""


class NotFoundError(TritonLLMError):
    """A named recipe, store entry, model or file does not exist."""

    exit_code = 2


class AccessError(TritonLLMError):
    """Credentials are missing or lack permission (a gated or private model); set them and retry."""

    exit_code = 2


class IncompatibleError(TritonLLMError):
    """An engine or checkpoint does not fit the requested hardware or toolchain."""

    exit_code = 2


class StoreError(TritonLLMError):
    """Object store failure that is not known to be transient."""


class TransientStoreError(StoreError):
    """Network trouble or a 5xx answer: retrying can help."""

    retryable = True


class IntegrityError(StoreError):
    """A stored or restored file does not match its manifest; it is never served."""


class BuildError(TritonLLMError):
    """A build stage (fetch, checkpoint, engine) failed."""


class ServeError(TritonLLMError):
    """The server could not be started, or stopped unexpectedly."""


class ClientError(TritonLLMError):
    """A request to a Triton server failed."""


class ServerUnavailableError(ClientError):
    """The server cannot be reached or is not ready: retrying can help."""

    retryable = True


class RequestRejectedError(ClientError):
    """The server rejected the request's inputs (empty prompt, bad max_tokens, ...): fix them."""

    exit_code = 2


class LaunchError(TritonLLMError):
    """The MPI group could not be planned or started, or a rank failed."""


class LaunchPlanError(LaunchError):
    """A launch topology does not fit (slots, ranks, engine files, pod variables): bad input."""

    exit_code = 2


class RolloutError(TritonLLMError):
    """A replica-level rollout step failed (helm, a readiness gate or the smoke prompt)."""

    def __init__(self, message: str, *, retryable: bool = False, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retryable = retryable
