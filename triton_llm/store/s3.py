"""``s3://bucket/prefix`` on AWS S3 or any S3-compatible server, over our own small S3 client.

Requests are SigV4-signed (:mod:`._sigv4`) and sent on a pool of kept-alive HTTP connections
(:mod:`._http`); endpoint, region, credentials, CA bundle and proxy come from the standard AWS
sources (:mod:`._aws`; botocore's credential chain is loaded only when the environment holds no
keys). No SDK is imported on the hot path, so a pull starts in a fraction of boto3's start-up.
Every call retries transient failures (connection errors, 5xx, throttling) with backoff per
``TransferSettings.retries``; ranged reads resume where a broken stream stopped.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.client
import re
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from triton_llm.errors import IntegrityError, NotFoundError, StoreError, TransientStoreError
from triton_llm.store import _aws
from triton_llm.store._http import Body, ConnectionPool, FileBody, FileWriteError, Response
from triton_llm.store._retry import RetryPolicy, with_retries
from triton_llm.store._sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, canonical_query, sign, uri_encode
from triton_llm.store.base import ObjectInfo, Verify

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
_ERROR_BODY_LIMIT = 64 * 1024
# Buckets usable as a TLS host name label (no dots): others are addressed path-style.
_VIRTUAL_HOST_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class S3HttpError(Exception):
    """An S3 error answer: HTTP status plus the error document's code, message and region."""

    def __init__(self, status: int, code: str, message: str, region: str | None) -> None:
        super().__init__(f"{code or status} {message}".rstrip())
        self.status, self.code, self.message, self.region = status, code, message, region


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, name: str) -> str | None:
    for el in root.iter():
        if _tag(el) == name:
            return el.text or ""
    return None


def _error_from(resp: Response) -> S3HttpError:
    data = resp.read(_ERROR_BODY_LIMIT) if resp.status != 304 else b""
    code = message = ""
    region = resp.header("x-amz-bucket-region")
    if data.strip():
        try:
            root = ET.fromstring(data)
            code, message = _find(root, "Code") or "", _find(root, "Message") or ""
            region = region or _find(root, "Region")
        except ET.ParseError:
            message = data[:200].decode(errors="replace")
    return S3HttpError(resp.status, code, message, region)


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
        environ: Mapping[str, str],
    ) -> None:
        env = environ
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.retry = retry or RetryPolicy()
        self._env = env
        self._custom = _aws.endpoint_url(endpoint_url, env)
        self._region = _aws.region(env)
        self._credentials = _aws.credential_source(env)
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._connect()

    def _connect(self) -> None:
        """(Re)build the connection pool for the current endpoint and region."""
        if self._custom:
            scheme, host, port, base = _aws.parse_endpoint(self._custom)
            self._path_style = True  # S3-compatible servers rarely resolve bucket.host names
        else:
            scheme, port, base = "https", 443, ""
            self._path_style = not _VIRTUAL_HOST_BUCKET.fullmatch(self.bucket)
            host = f"s3.{self._region}.amazonaws.com"
            if not self._path_style:
                host = f"{self.bucket}.{host}"
        if scheme == "https" and self._ssl is None:
            self._ssl = _aws.ssl_context(self._env)
        self._base = base
        self._host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
        self.endpoint = self._custom or f"https://s3.{self._region}.amazonaws.com"
        self._pool = ConnectionPool(
            scheme,
            host,
            port,
            ssl_context=self._ssl,
            proxy=_aws.proxy_for(scheme, host, self._env),
            connect_timeout=10,
            read_timeout=60,
            max_idle=self._max_connections,
        )

    # -- requests ------------------------------------------------------------------------
    def _path(self, key: str | None) -> str:
        bucket = f"/{self.bucket}" if self._path_style else ""
        if key is None:
            return self._base + (bucket or "/")
        return self._base + uri_encode(f"{bucket}/{self.prefix}{key}", keep_slash=True)

    def _request(
        self,
        method: str,
        key: str | None,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Body = None,
        ok: tuple[int, ...] = (200, 204, 206),
    ) -> Response:
        """Send a signed request; a status outside ``ok`` raises :class:`S3HttpError`.

        A wrong-region answer from AWS switches to the bucket's region and sends the request again.
        """
        for attempt in range(2):
            path = self._path(key)
            qs = canonical_query(query or {})
            payload = (
                UNSIGNED_PAYLOAD
                if isinstance(body, FileBody)
                else hashlib.sha256(body).hexdigest()
                if body
                else EMPTY_SHA256
            )
            signed = sign(
                method,
                path,
                qs,
                {"host": self._host_header, **{k.lower(): v for k, v in (headers or {}).items()}},
                credentials=self._credentials(),
                region=self._region,
                now=datetime.now(timezone.utc),
                payload_sha256=payload,
            )
            resp = self._pool.request(method, f"{path}?{qs}" if qs else path, signed, body)
            if resp.status in ok:
                return resp
            try:
                error = _error_from(resp)
            finally:
                resp.release()
            moved = error.region and error.region != self._region and error.status in (301, 307, 400)
            if attempt == 0 and moved and error.region:
                with self._lock:  # parallel parts may all learn the bucket's region at once
                    if error.region != self._region:
                        self._region = error.region
                        if not self._custom:
                            self._connect()
                continue
            raise error
        raise AssertionError("unreachable")

    def _xml(self, method: str, key: str | None, **kwargs: object) -> ET.Element:
        resp = self._request(method, key, **kwargs)  # type: ignore[arg-type]
        try:
            data = resp.read()
        finally:
            resp.release()
        try:
            root = ET.fromstring(data)
        except ET.ParseError as e:
            raise StoreError(
                f"{self.endpoint} answered {method} {key or self.bucket} with no S3 XML: {data[:120]!r}",
                key=key,
                hint="check that the endpoint is an S3 server (not a proxy or web page)",
            ) from e
        if _tag(root) == "Error":  # e.g. CompleteMultipartUpload fails with a 200 answer
            raise S3HttpError(500, _find(root, "Code") or "", _find(root, "Message") or "", None)
        return root

    # -- error mapping -------------------------------------------------------------------
    def _map(self, e: Exception, action: str, key: str) -> Exception:
        where = f"s3://{self.bucket}/{self.prefix}{key} (endpoint {self.endpoint})"
        if isinstance(e, ssl.SSLCertVerificationError):
            return StoreError(
                f"cannot {action} {where}: {e}",
                key=key,
                hint="set AWS_CA_BUNDLE to the CA that signed the endpoint",
            )
        if isinstance(e, (OSError, http.client.HTTPException)):
            return TransientStoreError(f"cannot {action} {where}: {type(e).__name__}: {e}", key=key)
        if not isinstance(e, S3HttpError):
            return e
        code, status = e.code, e.status
        msg = f"cannot {action} {where}: {code or status} {e.message}".rstrip()
        if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
            return TransientStoreError(msg, key=key)
        if code == "NoSuchBucket":
            return StoreError(msg, key=key, hint="check the bucket name in the store URI and the endpoint")
        if code in ("NoSuchKey", "NotFound") or status == 404:
            return NotFoundError(msg, key=key)
        if status == 403 or code in _CREDENTIAL_CODES:
            return StoreError(
                msg, key=key, hint="check the AWS credentials chain and that they may access this bucket"
            )
        return StoreError(msg, key=key, hint="check the store URI and the S3 endpoint")

    def _call(self, action: str, key: str, fn: Callable[[], T]) -> T:
        def once() -> T:
            try:
                return fn()
            except (OSError, http.client.HTTPException, S3HttpError) as e:
                raise self._map(e, action, key) from e

        return with_retries(once, policy=self.retry, what=f"{action} {key}")

    # -- primitives ----------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        headers = {"if-none-match": "*"} if if_absent else {}

        def put() -> bool:
            try:
                self._request("PUT", key, headers=headers, body=data).release()
            except S3HttpError as e:
                if if_absent and (e.status == 412 or e.code == "PreconditionFailed"):
                    return False
                raise
            return True

        return self._call("write", key, put)

    def put_file(self, key: str, path: Path) -> None:
        body = FileBody(path, 0, path.stat().st_size)
        self._call("upload", key, lambda: self._request("PUT", key, body=body).release())

    def start_multipart(self, key: str) -> str:
        root = self._call("start upload", key, lambda: self._xml("POST", key, query={"uploads": ""}))
        upload_id = _find(root, "UploadId")
        if not upload_id:
            raise StoreError(f"{self.endpoint} started an upload of {key} without an UploadId", key=key)
        return upload_id

    def put_part(self, key: str, upload_id: str, number: int, path: Path, *, offset: int, length: int) -> str:
        def put() -> str:
            query = {"partNumber": str(number), "uploadId": upload_id}
            resp = self._request("PUT", key, query=query, body=FileBody(path, offset, length))
            resp.release()
            return resp.header("etag") or ""

        return self._call("upload part of", key, put)

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        doc = ET.Element("CompleteMultipartUpload")
        for i, etag in enumerate(etags):
            part = ET.SubElement(doc, "Part")
            ET.SubElement(part, "PartNumber").text = str(i + 1)
            ET.SubElement(part, "ETag").text = etag
        body = ET.tostring(doc)
        self._call(
            "complete upload", key, lambda: self._xml("POST", key, query={"uploadId": upload_id}, body=body)
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        # best effort: an AbortIncompleteMultipartUpload lifecycle rule cleans up what is left
        with contextlib.suppress(OSError, http.client.HTTPException, S3HttpError, StoreError):
            self._request("DELETE", key, query={"uploadId": upload_id}).release()

    def get_bytes(self, key: str) -> bytes:
        def get() -> bytes:
            resp = self._request("GET", key)
            try:
                return resp.read()
            finally:
                resp.release()

        return self._call("read", key, get)

    def read_into(
        self, key: str, *, offset: int, length: int, fd: int, buf: memoryview, verify: Verify
    ) -> int:
        if length == 0:
            info = self.head(key)
            if info is None:
                raise NotFoundError(f"no object {key} in {self.uri}", key=key)
            return info.size
        state = {"done": 0, "size": -1}

        def get() -> int:
            done = state["done"]
            resp = self._request(
                "GET", key, headers={"range": f"bytes={offset + done}-{offset + length - 1}"}
            )
            try:
                content_range = resp.header("content-range")
                if content_range:  # 206, or 200 from servers such as rclone
                    state["size"] = int(content_range.rsplit("/", 1)[-1])
                elif offset + done == 0:  # a whole-object answer is fine when we start at 0
                    state["size"] = int(resp.header("content-length") or -1)
                else:
                    raise StoreError(
                        f"{self.endpoint} ignored the Range header for {key}",
                        key=key,
                        hint="use an S3 server that supports ranged GETs",
                    )
                sent = int(resp.header("content-length") or length - done)  # < asked: the object is shorter
                end = min(length, done + sent)

                def written(pos: int, data: memoryview) -> None:
                    verify(done + pos, data)
                    state["done"] = done + pos + len(data)

                resp.save(fd, offset=offset + done, length=end - done, buf=buf, on_data=written)
            finally:
                resp.release()
            if state["done"] < end:  # the connection dropped mid-body: resume on retry
                raise TransientStoreError(
                    f"connection closed after {state['done'] - done} of {sent} bytes of {key}", key=key
                )
            if state["done"] < length:
                raise IntegrityError(f"object {key} ends {length - state['done']} bytes early", key=key)
            return state["size"]

        try:
            return self._call("read", key, get)
        except FileWriteError as e:
            raise e.error  # noqa: B904 - the local file's own error (e.g. a full disk), unchanged
        except StoreError as e:
            if "InvalidRange" in e.message:
                raise IntegrityError(f"object {key} is shorter than expected", key=key) from e
            raise

    def head(self, key: str) -> ObjectInfo | None:
        def head() -> ObjectInfo | None:
            try:
                resp = self._request("HEAD", key)
            except S3HttpError as e:
                if e.status != 404:
                    raise
                try:  # a HEAD answer has no body: tell a missing bucket apart from a missing key
                    self._request("HEAD", None).release()
                except S3HttpError as b:
                    if b.status == 404:
                        raise S3HttpError(
                            404, "NoSuchBucket", "The specified bucket does not exist", None
                        ) from b
                    raise
                return None
            resp.release()
            return ObjectInfo(key, int(resp.header("content-length") or 0))

        return self._call("stat", key, head)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": self.prefix + prefix}
            if token:
                query["continuation-token"] = token
            root = self._call("list", prefix, functools.partial(self._xml, "GET", None, query=query))
            for el in root:
                if _tag(el) == "Contents":
                    fields = {_tag(c): c.text or "" for c in el}
                    yield ObjectInfo(fields["Key"][len(self.prefix) :], int(fields.get("Size") or 0))
            token = _find(root, "NextContinuationToken")
            if (_find(root, "IsTruncated") or "").lower() != "true" or not token:
                return

    def delete(self, keys: Iterable[str]) -> None:
        batch = [self.prefix + k for k in keys]
        for i in range(0, len(batch), 1000):
            doc = ET.Element("Delete")
            ET.SubElement(doc, "Quiet").text = "true"
            for k in batch[i : i + 1000]:
                ET.SubElement(ET.SubElement(doc, "Object"), "Key").text = k
            body = ET.tostring(doc)
            md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
            self._call(
                "delete",
                batch[i],
                functools.partial(
                    self._xml, "POST", None, query={"delete": ""}, headers={"content-md5": md5}, body=body
                ),
            )
