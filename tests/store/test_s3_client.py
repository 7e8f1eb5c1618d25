"""Our S3 client's transport behaviour against real sockets: proxies, stale connections, regions."""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.fixtures.s3 import RcloneS3, S3Recorder, s3_client
from tests.store.conftest import SMALL_PARTS, make_tree, tree_bytes
from triton_llm.errors import StoreError
from triton_llm.settings import Settings, TransferSettings
from triton_llm.store import ObjectStore, open_store, publish, restore

KEY = "5eed" * 16


@pytest.mark.parametrize("bypass", [False, True])
def test_http_proxy_from_the_environment_is_used_unless_bypassed(
    s3_store_uri: str, s3_recorder: S3Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bypass: bool
) -> None:
    monkeypatch.setenv("HTTP_PROXY", s3_recorder.endpoint)
    if bypass:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    store = open_store(s3_store_uri, settings=Settings(transfer=SMALL_PARTS), retry_backoff=0.01)
    src = make_tree(tmp_path / "src", seed=3, big=1000)
    publish(store, src, stage="engine", key=KEY, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)
    restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)
    if bypass:
        assert s3_recorder.requests == []
    else:  # absolute-form targets, as a plain HTTP proxy expects
        assert s3_recorder.requests and all(
            p.startswith("http://127.0.0.1:") for _, p in s3_recorder.requests
        )


class _OneShotServer:
    """Answers each connection's first request with 200 "ok" over HTTP/1.1, then closes it silently."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self.sock.close()


def test_a_kept_alive_connection_the_server_closed_is_replaced_without_a_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    server = _OneShotServer()
    try:
        settings = Settings(s3_endpoint_url=server.endpoint, transfer=TransferSettings(retries=0))
        store = open_store("s3://bkt/p", settings=settings)
        assert store.get_bytes("a") == b"ok"
        assert store.get_bytes("b") == b"ok"  # the pooled connection is dead: resent on a new one
    finally:
        server.close()
    assert server.connections == 2


class _RegionCheck(BaseHTTPRequestHandler):
    """Answers like AWS: a request signed for another region gets the bucket's region back."""

    protocol_version = "HTTP/1.1"
    bucket_region = "eu-central-1"
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        region = re.search(r"Credential=[^/]+/\d+/([^/]+)/", self.headers["Authorization"]).group(1)  # type: ignore[union-attr]
        type(self).seen.append(region)
        if region == self.bucket_region:
            status, body = 200, b"payload"
        else:
            status = 400
            body = (
                "<Error><Code>AuthorizationHeaderMalformed</Code><Message>wrong region</Message>"
                f"<Region>{self.bucket_region}</Region></Error>"
            ).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def region_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _RegionCheck.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RegionCheck)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_wrong_region_answer_switches_to_the_bucket_region_once(region_server: str) -> None:
    store = open_store("s3://bkt/p", settings=Settings(s3_endpoint_url=region_server))
    assert store.get_bytes("a") == b"payload"
    assert store.get_bytes("b") == b"payload"
    assert _RegionCheck.seen == ["us-east-1", "eu-central-1", "eu-central-1"]


def test_the_region_comes_from_the_aws_config_profile(
    region_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    (tmp_path / "config").write_text("[default]\nregion = us-west-2\n[profile eu]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "eu")
    assert (
        open_store("s3://bkt/p", settings=Settings(s3_endpoint_url=region_server)).get_bytes("a")
        == b"payload"
    )
    assert _RegionCheck.seen == ["eu-central-1"]


def test_credentials_from_a_profile_come_through_the_standard_chain(
    rclone_s3: RcloneS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No keys in the environment: botocore's chain reads the profile; rclone checks the signatures."""
    s3_client(rclone_s3.endpoint).create_bucket(Bucket="profile-bucket")
    (tmp_path / "credentials").write_text(
        f"[builder]\naws_access_key_id = {rclone_s3.access_key}\n"
        f"aws_secret_access_key = {rclone_s3.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_PROFILE", "builder")
    settings = Settings(transfer=SMALL_PARTS, s3_endpoint_url=rclone_s3.endpoint)
    store = open_store("s3://profile-bucket/p", settings=settings, retry_backoff=0.01)
    src = make_tree(tmp_path / "src", seed=4, big=1000)
    publish(store, src, stage="engine", key=KEY, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)
    restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)


def _file_splice(monkeypatch: pytest.MonkeyPatch, error: int) -> list[int]:
    """Make splice() into regular files fail with ``error`` (as on a filesystem without splice
    support, or a full disk); socket -> pipe splices still work. Returns the refused calls."""
    real, refused = os.splice, []

    def splice(src: int, dst: int, count: int, *args: object, **kwargs: object) -> int:
        if stat.S_ISREG(os.fstat(dst).st_mode):
            refused.append(count)
            raise OSError(error, os.strerror(error))
        return real(src, dst, count, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "splice", splice)
    return refused


@pytest.fixture
def published(s3_store_uri: str, tmp_path: Path) -> tuple[ObjectStore, Path]:
    store = open_store(s3_store_uri, settings=Settings(transfer=SMALL_PARTS), retry_backoff=0.01)
    src = make_tree(tmp_path / "src", seed=9)
    publish(store, src, stage="engine", key=KEY, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)
    return store, src


def test_a_filesystem_that_refuses_splice_gets_plain_writes(
    published: tuple[ObjectStore, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, src = published
    refused = _file_splice(monkeypatch, errno.EINVAL)
    restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert refused  # plain HTTP bodies do go through splice
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)


def test_a_full_disk_is_a_local_error_not_a_retried_network_one(
    published: tuple[ObjectStore, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = published
    refused = _file_splice(monkeypatch, errno.ENOSPC)
    with pytest.raises(StoreError, match=r"cannot write into.*No space left") as err:
        restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert not err.value.retryable
    assert len(refused) <= SMALL_PARTS.max_concurrency  # no part was retried
    assert not [p for p in (tmp_path / "dst").rglob("*") if p.name.endswith(".incomplete")]


def test_hashing_through_a_small_sliding_window_verifies_every_byte(
    published: tuple[ObjectStore, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triton_llm.store import _http

    store, src = published
    monkeypatch.setattr(_http._Window, "SIZE", 64 * 1024)  # many remaps per 5 MiB part
    restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)
