"""Looking entries up by key: a full key is one direct manifest read, a prefix lists (real S3 server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.s3 import S3Recorder
from tests.store.conftest import SMALL_PARTS, make_tree
from triton_llm.errors import NotFoundError, UsageError
from triton_llm.settings import Settings
from triton_llm.store import ObjectStore, find_entry, open_store, publish

ENGINE = "e1" * 32
CHECKPOINT = "c1" * 32


@pytest.fixture
def recorded(s3_store_uri: str, s3_recorder: S3Recorder, tmp_path: Path) -> tuple[ObjectStore, str]:
    """A store on moto, seen through the recording proxy, holding one engine and one checkpoint."""
    settings = Settings(transfer=SMALL_PARTS, s3_endpoint_url=s3_recorder.endpoint)
    store = open_store(s3_store_uri, settings=settings, retry_backoff=0.01)
    src = make_tree(tmp_path / "src", seed=7, big=1000)
    for stage, key in (("engine", ENGINE), ("checkpoint", CHECKPOINT)):
        publish(store, src, stage=stage, key=key, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)
    s3_recorder.requests.clear()
    return store, s3_store_uri.split("/")[2]


def test_a_full_key_is_read_directly_never_listed(
    recorded: tuple[ObjectStore, str], s3_recorder: S3Recorder
) -> None:
    store, bucket = recorded
    assert find_entry(store, ENGINE).stage == "engine"
    assert find_entry(store, CHECKPOINT).stage == "checkpoint"
    assert s3_recorder.listings(bucket) == []
    assert {m for m, _ in s3_recorder.requests} == {"GET"}
    assert all(p.endswith("/manifest.json") for _, p in s3_recorder.requests)


def test_a_missing_full_key_is_not_found_without_a_listing(
    recorded: tuple[ObjectStore, str], s3_recorder: S3Recorder
) -> None:
    store, bucket = recorded
    with pytest.raises(NotFoundError, match="no entry") as err:
        find_entry(store, "ab" * 32)
    assert s3_recorder.listings(bucket) == []
    # the hint names a command that exists
    assert "triton-llm engine ls" in str(err.value)


def test_a_prefix_lists_once_and_must_be_unambiguous(
    recorded: tuple[ObjectStore, str], s3_recorder: S3Recorder
) -> None:
    store, bucket = recorded
    assert find_entry(store, ENGINE[:10]).key == ENGINE
    assert len(s3_recorder.listings(bucket)) == 1
    with pytest.raises(UsageError, match="too short"):
        find_entry(store, "e1e1e1")
