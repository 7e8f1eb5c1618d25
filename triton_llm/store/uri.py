"""Open a store from its URI: ``s3://bucket/prefix`` or ``file:///abs/dir``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from triton_llm.errors import ConfigError
from triton_llm.settings import Settings
from triton_llm.store._retry import RetryPolicy
from triton_llm.store.base import ObjectStore


def parse_store_uri(uri: str) -> tuple[str, str, str]:
    """Split a store URI into ``(scheme, bucket_or_empty, path_or_prefix)``.

    Raises:
        ConfigError: unknown scheme, missing bucket, or a relative file path.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(
                f"store URI {uri!r} has no bucket", field="store", value=uri, hint="use s3://bucket/prefix"
            )
        return "s3", parsed.netloc, parsed.path.strip("/")
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise ConfigError(f"store URI {uri!r} must be file:///absolute/dir", field="store", value=uri)
        return "file", "", unquote(parsed.path)
    raise ConfigError(
        f"unsupported store URI {uri!r}",
        field="store",
        value=uri,
        hint="use s3://bucket/prefix or file:///abs/dir",
    )


def open_store(uri: str, *, settings: Settings, retry_backoff: float | None = None) -> ObjectStore:
    """Open the object store at ``uri``.

    Args:
        uri: ``s3://bucket/prefix`` or ``file:///abs/dir`` (e.g. ``settings.store_uri()``).
        settings: endpoint override (``s3_endpoint_url``) and transfer settings (retries, concurrency).
        retry_backoff: first retry wait in seconds (default ``settings.transfer.retry_backoff``);
            doubles each retry, with jitter.

    Returns:
        A store; S3 credentials come only from the standard AWS chain.

    Raises:
        ConfigError: the URI is malformed.
    """
    scheme, bucket, path = parse_store_uri(uri)
    backoff = settings.transfer.retry_backoff if retry_backoff is None else retry_backoff
    retry = RetryPolicy(retries=settings.transfer.retries, backoff=backoff)
    if scheme == "file":
        from triton_llm.store.local import LocalStore

        return LocalStore(Path(path), retry=retry)
    from triton_llm.store.s3 import S3Store

    return S3Store(
        bucket,
        path,
        endpoint_url=settings.s3_endpoint_url,
        max_connections=max(10, 2 * settings.transfer.max_concurrency),
        retry=retry,
        environ=settings.environ,
    )
