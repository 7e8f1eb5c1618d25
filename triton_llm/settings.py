"""Typed settings, resolved once at start-up: flags > environment > settings file > defaults.

Environment variables are ``TRITON_LLM_<FIELD>`` (nested fields joined by ``__``, e.g.
``TRITON_LLM_TRANSFER__MAX_CONCURRENCY=16``). The settings file is YAML, found at
``$TRITON_LLM_CONFIG`` or ``~/.config/triton-llm/config.yaml``. Nothing here reads the
environment at import time; call :func:`load_settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from triton_llm.errors import ConfigError

ENV_PREFIX = "TRITON_LLM_"
MiB = 1 << 20


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user cache dir: ``$XDG_CACHE_HOME/triton-llm`` or ``~/.cache/triton-llm``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "triton-llm"


class TransferSettings(BaseModel):
    """Object-store transfer tuning.

    Memory bound: ``max_concurrency * io_buffer_size`` bytes of buffers (4 MiB with the
    defaults), independent of file size: one buffer per worker. Uploads use ``sendfile``; restores
    over plain HTTP splice bodies into the files (up to 1 MiB of kernel pipe per worker) and hash
    the written pages through an mmap window of at most 8 MiB per worker (page cache, not heap).
    """

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(16, ge=1, le=128, description="parallel part transfers")
    part_size: int = Field(64 * MiB, ge=5 * MiB, description="multipart part size, bytes")
    multipart_threshold: int = Field(64 * MiB, ge=5 * MiB, description="files above use multipart")
    io_buffer_size: int = Field(256 * 1024, ge=64 * 1024, description="streaming buffer per worker")
    retries: int = Field(5, ge=0, le=20, description="retries for transient errors")
    retry_backoff: float = Field(0.5, ge=0, le=30, description="first retry wait, seconds (doubles)")


class Settings(BaseModel):
    """Everything configurable outside a recipe."""

    model_config = ConfigDict(extra="forbid")

    store: str = Field("", description="object store URI: s3://bucket/prefix or file:///dir")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="local cache root")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint URL")
    engines_dir: Path | None = Field(None, description="extra directory searched for recipes")
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    progress: Literal["auto", "bar", "plain", "off"] = Field(
        "auto", description="progress output: bars on a terminal, plain lines otherwise (auto)"
    )
    transport: dict[str, Any] = Field(
        default_factory=dict, description="MPI/NCCL/UCX transport settings (see triton_llm.launch.transport)"
    )

    _environ: dict[str, str] | None = PrivateAttr(default=None)

    @field_validator("progress", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML 1.1 reads an unquoted ``progress: off`` in the settings file as ``false``."""
        return "off" if value is False else value

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment these settings were resolved from (the process's when not given).

        Feature code reads other tools' variables (``HF_HUB_OFFLINE``, ``CUDA_VERSION``, ...) and
        builds child-process environments from this, never from ``os.environ``.
        """
        return os.environ if self._environ is None else self._environ

    def store_uri(self) -> str:
        """The configured store, or the embedded default ``file://<cache_dir>/store``."""
        return self.store or (self.cache_dir / "store").as_uri()


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping):
            merged[k] = _merge(dict(merged[k]), v)
        elif v is not None:
            merged[k] = v
    return merged


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve settings from flags, environment and file, and validate them once.

    Raises:
        ConfigError: a value has the wrong type, or a key is unknown; names the field.
    """
    env = os.environ if environ is None else environ
    if config_file is None:
        config_file = Path(env.get(ENV_PREFIX + "CONFIG") or Path.home() / ".config/triton-llm/config.yaml")
    data: dict[str, Any] = {}
    if config_file.is_file():
        import yaml  # only when there is a file to read: keeps CLI start-up short

        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(
                f"settings file {config_file} is not valid YAML: {e}", path=str(config_file)
            ) from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"settings file {config_file} must hold a mapping", path=str(config_file))
        data = loaded
    data = _merge(data, _env_overrides(env))
    data = _merge(data, dict(flags or {}))
    if "cache_dir" not in data:
        data["cache_dir"] = default_cache_dir(env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid setting {field}={first.get('input')!r}: {first['msg']}",
            field=field,
            value=first.get("input"),
            hint=f"set it with a flag, {ENV_PREFIX}{field.upper().replace('.', '__')} or the settings file",
        ) from e
    settings._environ = dict(env)
    return settings
