"""``s3://bucket/prefix`` through botocore (boto3's core), for AWS S3 and any S3-compatible server.

Credentials come only from the standard AWS chain (environment, profile, instance role);
the endpoint from ``Settings.s3_endpoint_url``, else ``AWS_ENDPOINT_URL(_S3)`` as boto3 reads it.
Every call retries transient failures (connection errors, 5xx, throttling) with backoff;
botocore's own retries are off so that ``TransferSettings.retries`` is the one limit.
Ranged reads resume where a broken stream stopped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from triton_llm.errors import IntegrityError, NotFoundError, StoreError, TransientStoreError
from triton_llm.store._retry import RetryPolicy, with_retries
from triton_llm.store.base import Consume, ObjectInfo

T = TypeVar("T")

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "ConditionalRequestConflict",
    "OperationAborted",
}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


class _FileSlice:
    """A seekable read-only view of ``path[offset:offset+length]`` for a request body."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._start, self._len, self._pos = offset, length, 0

    def read(self, n: int = -1) -> bytes:
        left = self._len - self._pos
        n = left if n is None or n < 0 else min(n, left)
        data = os.pread(self._f.fileno(), n, self._start + self._pos) if n else b""
        self._pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._len}[whence]
        self._pos = max(0, min(self._len, base + pos))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return self._len

    def close(self) -> None:
        self._f.close()


class S3Store:
    """An :class:`~triton_llm.store.base.ObjectStore` over one bucket and key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        max_connections: int = 16,
        retry: RetryPolicy | None = None,
    ) -> None:
        import botocore.session
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.retry = retry or RetryPolicy()
        custom = bool(
            endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            connect_timeout=10,
            read_timeout=60,
            tcp_keepalive=True,
            # We verify sha256 ourselves; skip botocore's extra CRC passes over every byte.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={
                # Custom endpoints (minio, rclone, moto...) rarely resolve bucket.host names.
                **({"addressing_style": "path"} if custom else {}),
                # No extra sha256 pass over every uploaded byte for the signature: the
                # manifest's digests are checked on every restore (and TLS covers https).
                "payload_signing_enabled": False,
            },
        )
        # botocore directly: the same credential chain and AWS_ENDPOINT_URL handling as boto3,
        # without importing boto3's resource layer (faster CLI start-up).
        session = botocore.session.get_session()
        self._client = session.create_client("s3", endpoint_url=endpoint_url or None, config=config)
        self.endpoint = self._client.meta.endpoint_url

    # -- error mapping -------------------------------------------------------------------
    def _map(self, e: Exception, action: str, key: str) -> Exception:
        from http.client import HTTPException

        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            IncompleteReadError,
            NoCredentialsError,
            PartialCredentialsError,
            ResponseStreamingError,
        )
        from urllib3.exceptions import HTTPError as Urllib3Error

        where = f"s3://{self.bucket}/{self.prefix}{key} (endpoint {self.endpoint})"
        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return StoreError(
                f"cannot {action} {where}: no usable AWS credentials",
                key=key,
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role",
            )
        transient = (ConnectionError, HTTPClientError, ResponseStreamingError, IncompleteReadError, OSError,
                     HTTPException, Urllib3Error)  # fmt: skip
        if isinstance(e, transient):
            return TransientStoreError(f"cannot {action} {where}: {type(e).__name__}: {e}", key=key)
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            msg = f"cannot {action} {where}: {code or status} {err.get('Message', '')}".rstrip()
            if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
                return TransientStoreError(msg, key=key)
            if code == "NoSuchBucket":
                return StoreError(
                    msg, key=key, hint="check the bucket name in the store URI and the endpoint"
                )
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                return NotFoundError(msg, key=key)
            if status == 403 or code in _CREDENTIAL_CODES:
                return StoreError(
                    msg, key=key, hint="check the AWS credentials chain and that they may access this bucket"
                )
            return StoreError(msg, key=key, hint="check the store URI and the S3 endpoint")
        if isinstance(e, BotoCoreError):
            return StoreError(f"cannot {action} {where}: {e}", key=key, hint="check the S3 endpoint URL")
        return e

    def _call(self, action: str, key: str, fn: Callable[[], T]) -> T:
        def once() -> T:
            try:
                return fn()
            except Exception as e:
                mapped = self._map(e, action, key)
                if mapped is e:
                    raise
                raise mapped from e

        return with_retries(once, policy=self.retry, what=f"{action} {key}")

    # -- primitives ----------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + key, "Body": data}
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        from botocore.exceptions import ClientError

        def put() -> bool:
            try:
                self._client.put_object(**kwargs)
            except ClientError as e:
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if if_absent and (
                    status == 412 or e.response.get("Error", {}).get("Code") == "PreconditionFailed"
                ):
                    return False
                raise
            return True

        return self._call("write", key, put)

    def put_file(self, key: str, path: Path) -> None:
        size = path.stat().st_size

        def put() -> None:
            body = _FileSlice(path, 0, size)
            try:
                self._client.put_object(
                    Bucket=self.bucket, Key=self.prefix + key, Body=body, ContentLength=size
                )
            finally:
                body.close()

        self._call("upload", key, put)

    def start_multipart(self, key: str) -> str:
        resp = self._call(
            "start upload",
            key,
            lambda: self._client.create_multipart_upload(Bucket=self.bucket, Key=self.prefix + key),
        )
        return str(resp["UploadId"])

    def put_part(self, key: str, upload_id: str, number: int, path: Path, *, offset: int, length: int) -> str:
        def put() -> str:
            body = _FileSlice(path, offset, length)
            try:
                resp = self._client.upload_part(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=length,
                )
            finally:
                body.close()
            return str(resp["ETag"])

        return self._call("upload part of", key, put)

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [{"ETag": etag, "PartNumber": i + 1} for i, etag in enumerate(etags)]
        self._call(
            "complete upload",
            key,
            lambda: self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.prefix + key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            ),
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        # best effort: an AbortIncompleteMultipartUpload lifecycle rule cleans up what is left
        with contextlib.suppress(Exception):
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.prefix + key, UploadId=upload_id)

    def get_bytes(self, key: str) -> bytes:
        def get() -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

        return self._call("read", key, get)

    def read_range(self, key: str, *, offset: int, length: int, buf: memoryview, consume: Consume) -> int:
        if length == 0:
            info = self.head(key)
            if info is None:
                raise NotFoundError(f"no object {key} in {self.uri}", key=key)
            return info.size
        state = {"done": 0, "size": -1}

        def get() -> int:
            done = state["done"]
            rng = f"bytes={offset + done}-{offset + length - 1}"
            resp = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key, Range=rng)
            content_range = resp.get("ContentRange")
            if content_range:
                state["size"] = int(str(content_range).rsplit("/", 1)[-1])
            elif offset + done == 0:  # a whole-object answer is fine when we start at 0
                state["size"] = int(resp.get("ContentLength", -1))
            else:
                resp["Body"].close()
                raise StoreError(
                    f"{self.endpoint} ignored the Range header for {key}",
                    key=key,
                    hint="use an S3 server that supports ranged GETs",
                )
            body = resp["Body"]
            raw = getattr(body, "_raw_stream", None)
            fp = getattr(raw, "_fp", None)
            # Fast path: read straight from the http.client response into our buffer,
            # skipping urllib3's per-read allocation and copy (no content-encoding here).
            fast = fp is not None and hasattr(fp, "readinto") and not raw.headers.get("content-encoding")
            sent = int(resp.get("ContentLength", length - done))  # < asked: the object is shorter
            end = min(length, done + sent)
            ok = False
            try:
                while state["done"] < end:
                    view = buf[: min(len(buf), end - state["done"])]
                    if fast:
                        n = fp.readinto(view)
                    else:
                        data = body.read(len(view))
                        n = len(data)
                        view[:n] = data
                    if n == 0:
                        break
                    consume(state["done"], view[:n])
                    state["done"] += n
                ok = True
            finally:
                if ok and fast and fp.isclosed():
                    raw.release_conn()
                else:
                    body.close()
            if state["done"] < end:  # the connection dropped mid-body: resume on retry
                raise TransientStoreError(
                    f"connection closed after {state['done'] - done} of {sent} bytes of {key}", key=key
                )
            if state["done"] < length:
                raise IntegrityError(f"object {key} ends {length - state['done']} bytes early", key=key)
            return state["size"]

        try:
            return self._call("read", key, get)
        except StoreError as e:
            if "InvalidRange" in e.message:
                raise IntegrityError(f"object {key} is shorter than expected", key=key) from e
            raise

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        def head() -> ObjectInfo | None:
            try:
                resp = self._client.head_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as e:
                if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    # head has no body: tell a missing bucket apart from a missing key
                    self._client.head_bucket(Bucket=self.bucket)
                    return None
                raise
            return ObjectInfo(key, int(resp["ContentLength"]))

        return self._call("stat", key, head)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
            if token:
                kwargs["ContinuationToken"] = token
            resp = self._call("list", prefix, lambda kw=kwargs: self._client.list_objects_v2(**kw))
            for obj in resp.get("Contents", []):
                yield ObjectInfo(obj["Key"][len(self.prefix) :], int(obj["Size"]))
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                return

    def delete(self, keys: Iterable[str]) -> None:
        batch = [self.prefix + k for k in keys]
        for i in range(0, len(batch), 1000):
            objects = [{"Key": k} for k in batch[i : i + 1000]]
            self._call(
                "delete",
                batch[i],
                lambda o=objects: self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": o, "Quiet": True}
                ),
            )
