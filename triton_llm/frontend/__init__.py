"""OpenAI-compatible HTTP frontend over Triton (``triton-llm frontend``, also started by ``serve``).

``/v1/models``, ``/v1/completions`` and ``/v1/chat/completions`` (SSE streaming included)
call the ensemble through :mod:`triton_llm.client`'s asyncio gRPC streaming client. The
chat template and every server-side limit stay in the model repository's preprocessing.
"""

from triton_llm.frontend.config import DEFAULT_PORT, FrontendConfig
from triton_llm.frontend.server import run_frontend
from triton_llm.frontend.sidecar import frontend_command, frontend_process, local_address

__all__ = [
    "DEFAULT_PORT",
    "FrontendConfig",
    "frontend_command",
    "frontend_process",
    "local_address",
    "run_frontend",
]
