"""Publish/restore round trips, listing and lookup, on a local dir and on a real moto S3 server."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from tests.store.conftest import SMALL_PARTS, make_tree, tree_bytes
from triton_llm.errors import NotFoundError, UsageError
from triton_llm.store import ObjectStore, find_entry, list_entries, publish, read_manifest, restore
from triton_llm.store.manifest import manifest_key

KEY = "0123456789abcdef" * 4


def _publish(store: ObjectStore, src: Path, *, stage: str = "engine", key: str = KEY) -> bool:
    result = publish(
        store,
        src,
        stage=stage,
        key=key,
        fingerprint_inputs={"model": "m", "tp": 2},
        versions={"trtllm": "1.2.1"},
        transfer=SMALL_PARTS,
    )
    return result.won


def test_round_trip_restores_identical_bytes(store: ObjectStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", seed=1)
    assert _publish(store, src)
    m = read_manifest(store, stage="engine", key=KEY)
    assert m is not None
    assert {f.path: f.size for f in m.files} == {p: len(b) for p, b in tree_bytes(src).items()}
    assert m.fingerprint_inputs == {"model": "m", "tp": 2} and m.versions == {"trtllm": "1.2.1"}
    big = next(f for f in m.files if f.path == "rank0/weights.bin")
    assert len(big.part_sha256) == 3  # 12 MiB in 5 MiB parts

    result = restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert not result.skipped and result.downloaded == m.total_size
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)
    assert not list((tmp_path / "dst").rglob("*.incomplete"))


def test_publishing_an_existing_key_returns_it_without_uploading(store: ObjectStore, tmp_path: Path) -> None:
    assert _publish(store, make_tree(tmp_path / "a", seed=1))
    first = read_manifest(store, stage="engine", key=KEY)
    again = publish(
        store,
        make_tree(tmp_path / "b", seed=2),
        stage="engine",
        key=KEY,
        fingerprint_inputs={},
        versions={},
        transfer=SMALL_PARTS,
    )
    assert not again.won and again.manifest == first
    assert len({o.key.split("/")[3] for o in store.list(f"engine/{KEY}/data/")}) == 1


def test_entry_without_manifest_is_invisible(store: ObjectStore, tmp_path: Path) -> None:
    assert _publish(store, make_tree(tmp_path / "src", seed=1))
    store.delete([manifest_key("engine", KEY)])
    assert read_manifest(store, stage="engine", key=KEY) is None
    assert list_entries(store) == []
    with pytest.raises(NotFoundError, match="no engine entry"):
        restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    with pytest.raises(NotFoundError):
        find_entry(store, KEY[:10])


def test_noop_restore_is_skipped_and_a_changed_file_is_reverified(store: ObjectStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", seed=3)
    _publish(store, src)
    dst = tmp_path / "dst"
    assert not restore(store, dst, stage="engine", key=KEY, transfer=SMALL_PARTS).skipped
    again = restore(store, dst, stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert again.skipped and again.downloaded == 0

    weights = dst / "rank0" / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[7 * 1024 * 1024] ^= 0xFF  # same size, different content, new mtime
    weights.write_bytes(bytes(data))
    fixed = restore(store, dst, stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert not fixed.skipped and fixed.downloaded == len(data)  # only the changed file is fetched again
    assert tree_bytes(dst) == tree_bytes(src)

    (dst / "config.json").unlink()
    assert restore(store, dst, stage="engine", key=KEY, transfer=SMALL_PARTS).downloaded > 0
    assert tree_bytes(dst) == tree_bytes(src)


def test_marker_from_another_boot_is_rehashed_not_trusted(store: ObjectStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", seed=8)
    _publish(store, src)
    dst = tmp_path / "dst"
    restore(store, dst, stage="engine", key=KEY, transfer=SMALL_PARTS)
    marker_path = dst / ".triton-llm-entry.json"
    marker = json.loads(marker_path.read_text())
    marker["boot_id"] = "another-boot"
    marker_path.write_text(json.dumps(marker))
    again = restore(store, dst, stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert not again.skipped and again.downloaded == 0  # verified by hashing, nothing fetched
    assert restore(store, dst, stage="engine", key=KEY, transfer=SMALL_PARTS).skipped


def test_concurrent_restores_of_one_destination_are_safe(store: ObjectStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", seed=4)
    _publish(store, src)
    results: list[bool] = []
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            results.append(
                restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS).skipped
            )
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [False, True, True]
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)


def test_list_and_find_entries(store: ObjectStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", seed=5, big=1000)
    keys = {"checkpoint": "aaaaaaaa11" + "0" * 54, "engine": "aaaaaaaa22" + "0" * 54}
    for stage, key in keys.items():
        _publish(store, src, stage=stage, key=key)
    _publish(store, src, stage="engine", key="bbbbbbbb" + "1" * 56)

    assert [(m.stage, m.key) for m in list_entries(store)] == sorted(
        [*keys.items(), ("engine", "bbbbbbbb" + "1" * 56)]
    )
    assert [m.key for m in list_entries(store, stage="checkpoint")] == [keys["checkpoint"]]
    assert find_entry(store, "aaaaaaaa1").stage == "checkpoint"
    assert find_entry(store, keys["engine"]).stage == "engine"
    with pytest.raises(UsageError, match="matches 2 entries"):
        find_entry(store, "aaaaaaaa")
    with pytest.raises(UsageError, match="too short"):
        find_entry(store, "bbbb")
    with pytest.raises(NotFoundError):
        find_entry(store, "cccccccc")


def test_publish_of_an_empty_or_missing_dir_is_a_usage_error(store: ObjectStore, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for src in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(UsageError, match="nothing to publish"):
            _publish(store, src)


def test_local_store_leaves_no_temp_files(tmp_path: Path) -> None:
    from triton_llm.settings import Settings
    from triton_llm.store import open_store

    store = open_store((tmp_path / "store").as_uri(), settings=Settings())
    _publish(store, make_tree(tmp_path / "src", seed=6))
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".incomplete")]
    assert leftovers == []
    assert os.path.isfile(tmp_path / "store" / manifest_key("engine", KEY))
