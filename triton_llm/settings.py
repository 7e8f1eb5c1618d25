"""Typed settings, resolved once at start-up: flags > environment > settings file > defaults.

Environment variables are ``TRITON_LLM_<FIELD>`` (nested fields joined by ``__``, e.g.
``TRITON_LLM_TRANSFER__MAX_CONCURRENCY=16``). The settings file is YAML, found at
``$TRITON_LLM_CONFIG`` or ``~/.config/triton-llm/config.yaml``. Nothing here reads the
environment at import time; call :func:`load_settings`.

The classes are frozen dataclasses checked by one routine, :func:`_check_fields`, against a
table of rules per class (type, range, allowed values): every command imports this module, and
pydantic would cost most of a no-op ``engine pull``'s start-up. Unknown keys, wrong types and
out-of-range values are :class:`ConfigError`\\ s naming the field, the value and the variable
that sets it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from triton_llm.errors import ConfigError

ENV_PREFIX = "TRITON_LLM_"
MiB = 1 << 20
PROGRESS_MODES = ("auto", "bar", "plain", "off")
ProgressMode = Literal["auto", "bar", "plain", "off"]


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user cache dir: ``$XDG_CACHE_HOME/triton-llm`` or ``~/.cache/triton-llm``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "triton-llm"


class _Invalid(ValueError):
    """One rule broken; :func:`_check_fields` turns it into a ConfigError naming the field."""


def _as_int(value: Any) -> int:
    """An integer from an int, an integral float, or a string holding either ("16", " 7 ", "7.0")."""
    if isinstance(value, bool):  # YAML `true` is not a count; pydantic took it as 1
        raise _Invalid("Input should be a valid integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                value = float(value.strip())
            except ValueError:
                raise _Invalid(
                    "Input should be a valid integer, unable to parse string as an integer"
                ) from None
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Invalid("Input should be a valid integer, got a number with a fractional part")
    raise _Invalid("Input should be a valid integer")


def _as_float(value: Any) -> float:
    """A float from an int, a float, or a numeric string."""
    if isinstance(value, bool):
        raise _Invalid("Input should be a valid number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _Invalid("Input should be a valid number, unable to parse string as a number") from None
    raise _Invalid("Input should be a valid number")


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("Input should be a valid string")
    return value


def _as_path(value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise _Invalid("Input is not a valid path")
    return Path(value)


def _as_progress(value: Any) -> str:
    if value is False:  # YAML 1.1 reads an unquoted `progress: off` in the settings file as false
        return "off"
    if not isinstance(value, str) or value not in PROGRESS_MODES:
        raise _Invalid("Input should be 'auto', 'bar', 'plain' or 'off'")
    return value


def _as_mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid("Input should be a valid dictionary")
    if not all(isinstance(k, str) for k in value):
        raise _Invalid("Input should be a valid dictionary with string keys")
    return dict(value)


_T = TypeVar("_T")


def _optional(convert: Callable[[Any], _T]) -> Callable[[Any], _T | None]:
    return lambda value: None if value is None else convert(value)


@dataclass(frozen=True)
class _Rule:
    """How one field is checked: convert (or reject) the value, then its inclusive bounds."""

    convert: Callable[[Any], Any]
    ge: float | None = None
    le: float | None = None


def _fail(name: str, value: Any, message: str) -> ConfigError:
    return ConfigError(
        f"invalid setting {name}={value!r}: {message}",
        field=name,
        value=value,
        hint=f"set it with a flag, {ENV_PREFIX}{name.upper().replace('.', '__')} or the settings file",
    )


def _check_fields(obj: Any, rules: Mapping[str, _Rule], *, prefix: str = "") -> None:
    """The one validation routine: convert each field of the frozen dataclass ``obj`` by its
    rule, check its bounds and store the converted value.

    Raises:
        ConfigError: names the first offending field (``transfer.part_size``), its value and the
            environment variable that sets it.
    """
    for name, rule in rules.items():
        value = getattr(obj, name)
        try:
            converted = rule.convert(value)
        except _Invalid as e:
            raise _fail(prefix + name, value, str(e)) from None
        # `not (x >= ge)` rather than `x < ge`, so that NaN fails too
        if rule.ge is not None and not converted >= rule.ge:
            raise _fail(prefix + name, value, f"Input should be greater than or equal to {rule.ge}")
        if rule.le is not None and not converted <= rule.le:
            raise _fail(prefix + name, value, f"Input should be less than or equal to {rule.le}")
        object.__setattr__(obj, name, converted)


_D = TypeVar("_D")


def _from_mapping(cls: type[_D], data: Any, *, prefix: str = "") -> _D:
    """``cls(**data)`` for a settings mapping, with unknown keys reported as ConfigErrors."""
    if not isinstance(data, Mapping):
        raise _fail(
            prefix.rstrip("."), data, f"Input should be a valid dictionary or instance of {cls.__name__}"
        )
    known = {f.name for f in dataclasses.fields(cast(Any, cls)) if f.init}
    for name, value in data.items():
        if name not in known:
            raise _fail(f"{prefix}{name}", value, "Extra inputs are not permitted")
    return cls(**data)


@dataclass(frozen=True, kw_only=True)
class TransferSettings:
    """Object-store transfer tuning.

    Memory bound: ``max_concurrency * io_buffer_size`` bytes of buffers (4 MiB with the
    defaults), independent of file size: one buffer per worker. Uploads use ``sendfile``; restores
    over plain HTTP splice bodies into the files (up to 1 MiB of kernel pipe per worker) and hash
    the written pages through an mmap window of at most 8 MiB per worker (page cache, not heap).

    Attributes:
        max_concurrency: parallel part transfers, 1..128.
        part_size: multipart part size, bytes, >= 5 MiB.
        multipart_threshold: files above use multipart, bytes, >= 5 MiB.
        io_buffer_size: streaming buffer per worker, bytes, >= 64 KiB.
        retries: retries for transient errors, 0..20.
        retry_backoff: first retry wait, seconds (doubles), 0..30.

    Raises:
        ConfigError: a value has the wrong type or is out of range (checked on construction).
    """

    max_concurrency: int = 16
    part_size: int = 64 * MiB
    multipart_threshold: int = 64 * MiB
    io_buffer_size: int = 256 * 1024
    retries: int = 5
    retry_backoff: float = 0.5

    def __post_init__(self) -> None:
        _check_fields(self, _TRANSFER_RULES, prefix="transfer.")


_TRANSFER_RULES = {
    "max_concurrency": _Rule(_as_int, ge=1, le=128),
    "part_size": _Rule(_as_int, ge=5 * MiB),
    "multipart_threshold": _Rule(_as_int, ge=5 * MiB),
    "io_buffer_size": _Rule(_as_int, ge=64 * 1024),
    "retries": _Rule(_as_int, ge=0, le=20),
    "retry_backoff": _Rule(_as_float, ge=0, le=30),
}


def _as_transfer(value: Any) -> TransferSettings:
    if isinstance(value, TransferSettings):
        return value
    return _from_mapping(TransferSettings, value, prefix="transfer.")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything configurable outside a recipe.

    Attributes:
        store: object store URI, ``s3://bucket/prefix`` or ``file:///dir`` ("" = the default).
        cache_dir: local cache root.
        s3_endpoint_url: S3-compatible endpoint URL.
        engines_dir: extra directory searched for recipes.
        transfer: object-store transfer tuning.
        progress: progress output: bars on a terminal, plain lines otherwise (``auto``), or
            ``bar``, ``plain``, ``off``.
        transport: MPI/NCCL/UCX transport settings (see :mod:`triton_llm.launch.transport`).

    Raises:
        ConfigError: a value has the wrong type or is out of range (checked on construction).
    """

    store: str = ""
    cache_dir: Path = field(default_factory=default_cache_dir)
    s3_endpoint_url: str | None = None
    engines_dir: Path | None = None
    transfer: TransferSettings = field(default_factory=TransferSettings)
    progress: ProgressMode = "auto"
    transport: dict[str, Any] = field(default_factory=dict)
    _environ: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_fields(self, _SETTINGS_RULES)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from a merged flags/environment/file mapping; ``environ`` is what
        :attr:`environ` returns (the process's when ``None``).

        Raises:
            ConfigError: a key is unknown, or a value has the wrong type or is out of range.
        """
        settings = _from_mapping(cls, data)
        object.__setattr__(settings, "_environ", None if environ is None else dict(environ))
        return settings

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


_SETTINGS_RULES = {
    "store": _Rule(_as_str),
    "cache_dir": _Rule(_as_path),
    "s3_endpoint_url": _Rule(_optional(_as_str)),
    "engines_dir": _Rule(_optional(_as_path)),
    "transfer": _Rule(_as_transfer),
    "progress": _Rule(_as_progress),
    "transport": _Rule(_as_mapping),
}


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
    return Settings.from_mapping(data, environ=env)
