"""Transient errors are retried then reported; permanent ones say what to fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.s3 import RcloneS3, free_port, s3_client
from tests.store.conftest import SMALL_PARTS, make_tree, tree_bytes
from triton_llm.errors import StoreError, TransientStoreError
from triton_llm.settings import Settings, TransferSettings
from triton_llm.store import list_entries, open_store, publish, read_manifest, restore


def test_unreachable_endpoint_is_retried_then_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    settings = Settings(
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}", transfer=TransferSettings(retries=3)
    )
    store = open_store("s3://some-bucket/p", settings=settings, retry_backoff=0.01)
    start = time.monotonic()
    with pytest.raises(TransientStoreError, match="after 4 attempt") as err:
        read_manifest(store, stage="engine", key="k")
    assert err.value.retryable
    assert time.monotonic() - start < 10


def test_missing_bucket_is_permanent_and_names_the_fix(s3_store_uri: str) -> None:
    store = open_store("s3://no-such-bucket-here/x", settings=Settings(), retry_backoff=0.01)
    with pytest.raises(StoreError, match="NoSuchBucket") as err:
        list_entries(store)
    assert not err.value.retryable
    assert "bucket name" in str(err.value)


def test_missing_credentials_name_the_chain(s3_store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = open_store(s3_store_uri, settings=Settings(), retry_backoff=0.01)
    with pytest.raises(StoreError, match="no usable AWS credentials") as err:
        read_manifest(store, stage="engine", key="k")
    assert not err.value.retryable and "AWS_PROFILE" in str(err.value)


def _rclone_env(monkeypatch: pytest.MonkeyPatch, server: RcloneS3, secret: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_rclone_round_trip_and_wrong_secret(
    rclone_s3: RcloneS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client(rclone_s3.endpoint).create_bucket(Bucket="rt-bucket")
    _rclone_env(monkeypatch, rclone_s3, "wrong-secret")
    store = open_store("s3://rt-bucket/p", settings=Settings(transfer=SMALL_PARTS), retry_backoff=0.01)
    with pytest.raises(StoreError, match="credentials") as err:
        read_manifest(store, stage="engine", key="k")
    assert not err.value.retryable

    _rclone_env(monkeypatch, rclone_s3, rclone_s3.secret_key)
    store = open_store("s3://rt-bucket/p", settings=Settings(transfer=SMALL_PARTS), retry_backoff=0.01)
    src = make_tree(tmp_path / "src", seed=21)
    key = "c0ffee00" * 8
    assert publish(
        store, src, stage="engine", key=key, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS
    ).won
    restore(store, tmp_path / "dst", stage="engine", key=key, transfer=SMALL_PARTS)
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)
    # rclone stores real files: the manifest is a file on disk.
    assert (rclone_s3.root / "rt-bucket" / "p" / "engine" / key / "manifest.json").is_file()


def test_rclone_ignores_if_none_match(rclone_s3: RcloneS3) -> None:
    """Documents a server limitation: publish's read-back is what keeps races sane there."""
    client = s3_client(rclone_s3.endpoint)
    client.create_bucket(Bucket="inm-bucket")
    client.put_object(Bucket="inm-bucket", Key="x", Body=b"1")
    client.put_object(Bucket="inm-bucket", Key="x", Body=b"2", IfNoneMatch="*")
    assert client.get_object(Bucket="inm-bucket", Key="x")["Body"].read() == b"2"
