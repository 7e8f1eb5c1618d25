"""The frontend's settings, validated once at start-up (no web framework imported here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PORT = 9000


class FrontendConfig(BaseModel):
    """Where to listen, which Triton to call, and the in-flight bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    triton_url: str = Field("127.0.0.1:8001", description="Triton gRPC endpoint host:port")
    triton_model: str = Field("ensemble", description="Triton model to call: ensemble or tensorrt_llm_bls")
    model_name: str = Field("ensemble", min_length=1, description="the model id clients send (/v1/models)")
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    max_inflight: int = Field(128, ge=1, description="requests generating at once; more get 429")
    timeout: float = Field(600.0, gt=0, description="seconds to wait for each response from Triton")
