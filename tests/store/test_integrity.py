"""Corrupt stored data is detected on restore and never served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.conftest import SMALL_PARTS, flip_byte, make_tree, tamper, tree_bytes
from triton_llm.errors import IntegrityError
from triton_llm.store import ObjectStore, publish, read_manifest, restore
from triton_llm.store.manifest import data_key

KEY = "feedface" * 8


def _published(store: ObjectStore, tmp_path: Path) -> Path:
    src = make_tree(tmp_path / "src", seed=11)
    publish(store, src, stage="checkpoint", key=KEY, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)
    return src


def _final_names(dst: Path) -> set[str]:
    return {p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()}


@pytest.mark.parametrize("offset", [0, 6 * 1024 * 1024 + 3, 12 * 1024 * 1024 - 1])
def test_flipped_byte_is_an_integrity_error_and_nothing_is_left(
    store: ObjectStore, store_uri: str, tmp_path: Path, offset: int
) -> None:
    _published(store, tmp_path)
    m = read_manifest(store, stage="checkpoint", key=KEY)
    assert m is not None
    tamper(store_uri, data_key(m, "rank0/weights.bin"), flip_byte(offset))
    dst = tmp_path / "dst"
    with pytest.raises(IntegrityError, match=r"rank0/weights.bin of checkpoint/feedface") as err:
        restore(store, dst, stage="checkpoint", key=KEY, transfer=SMALL_PARTS)
    assert err.value.path == "rank0/weights.bin" and err.value.key == KEY
    names = _final_names(dst)
    assert "rank0/weights.bin" not in names
    assert not [n for n in names if n.endswith(".incomplete")]
    assert ".triton-llm-entry.json" not in names


@pytest.mark.parametrize("change", ["truncate", "extend"])
def test_size_mismatch_is_an_integrity_error(
    store: ObjectStore, store_uri: str, tmp_path: Path, change: str
) -> None:
    _published(store, tmp_path)
    m = read_manifest(store, stage="checkpoint", key=KEY)
    assert m is not None
    tamper(
        store_uri,
        data_key(m, "tokenizer.json"),
        (lambda b: b[:-10]) if change == "truncate" else (lambda b: b + b"x"),
    )
    dst = tmp_path / "dst"
    with pytest.raises(IntegrityError, match=r"tokenizer\.json of checkpoint/feedface") as err:
        restore(store, dst, stage="checkpoint", key=KEY, transfer=SMALL_PARTS)
    assert err.value.path == "tokenizer.json"
    assert "tokenizer.json" not in _final_names(dst)


def test_a_changed_local_file_is_removed_if_the_refetch_fails(
    store: ObjectStore, store_uri: str, tmp_path: Path
) -> None:
    src = _published(store, tmp_path)
    dst = tmp_path / "dst"
    restore(store, dst, stage="checkpoint", key=KEY, transfer=SMALL_PARTS)
    (dst / "rank0" / "weights.bin").write_bytes(b"local edit")
    m = read_manifest(store, stage="checkpoint", key=KEY)
    assert m is not None
    tamper(store_uri, data_key(m, "rank0/weights.bin"), flip_byte(5))
    with pytest.raises(IntegrityError):
        restore(store, dst, stage="checkpoint", key=KEY, transfer=SMALL_PARTS)
    left = tree_bytes(dst)
    assert "rank0/weights.bin" not in left
    assert all(left[p] == b for p, b in tree_bytes(src).items() if p in left)


def test_missing_data_object_is_an_integrity_error(store: ObjectStore, tmp_path: Path) -> None:
    _published(store, tmp_path)
    m = read_manifest(store, stage="checkpoint", key=KEY)
    assert m is not None
    store.delete([data_key(m, "config.json")])
    with pytest.raises(IntegrityError, match=r"config\.json of checkpoint/.*missing"):
        restore(store, tmp_path / "dst", stage="checkpoint", key=KEY, transfer=SMALL_PARTS)
