"""Pure layout and manifest rules: no I/O."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from triton_llm.errors import ConfigError, IntegrityError, UsageError
from triton_llm.store.manifest import (
    FileEntry,
    Manifest,
    check_relpath,
    check_stage_key,
    parse_manifest,
    parse_manifest_key,
    part_ranges,
)
from triton_llm.store.uri import parse_store_uri


def _manifest(**over: object) -> Manifest:
    base: dict[str, object] = {
        "stage": "engine",
        "key": "abc123",
        "upload_id": "u1",
        "files": [
            FileEntry(path="a/b.bin", size=10, sha256="0" * 64, part_size=4, part_sha256=["1" * 64] * 3)
        ],
        "created": "2026-01-01T00:00:00+00:00",
    }
    base.update(over)
    return Manifest(**base)  # type: ignore[arg-type]  # base holds values of mixed types


@pytest.mark.parametrize(
    ("size", "part", "expected"),
    [(0, 5, [(0, 0)]), (5, 5, [(0, 5)]), (6, 5, [(0, 5), (5, 1)]), (10, 4, [(0, 4), (4, 4), (8, 2)])],
)
def test_part_ranges_cover_the_file_exactly(size: int, part: int, expected: list[tuple[int, int]]) -> None:
    assert part_ranges(size, part) == expected


@pytest.mark.parametrize(
    ("stage", "key"),
    [
        ("Engine", "k"),
        ("eng1ne", "k"),
        ("", "k"),
        ("engine", "../x"),
        ("engine", "a/b"),
        ("engine", ".hidden"),
        ("engine", ""),
    ],
)
def test_bad_stage_or_key_is_rejected(stage: str, key: str) -> None:
    with pytest.raises(UsageError):
        check_stage_key(stage, key)


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b", "./a"])
def test_unsafe_relpaths_are_integrity_errors(path: str) -> None:
    with pytest.raises(IntegrityError):
        check_relpath(path)


def test_manifest_round_trips_and_digest_is_stable() -> None:
    m = _manifest(fingerprint_inputs={"z": 1, "a": [1, 2]}, versions={"trtllm": "1.2.1"})
    again = parse_manifest(m.to_bytes(), stage="engine", key="abc123")
    assert again == m
    assert again.digest() == m.digest()
    assert m.total_size == 10


def test_manifest_stored_under_another_key_is_rejected() -> None:
    with pytest.raises(IntegrityError, match="names engine/abc123"):
        parse_manifest(_manifest().to_bytes(), stage="engine", key="other")


def test_manifest_with_wrong_part_count_is_rejected() -> None:
    bad = _manifest(
        files=[FileEntry(path="x", size=10, sha256="0" * 64, part_size=4, part_sha256=["1" * 64])]
    )
    with pytest.raises(IntegrityError, match="wrong part count for x"):
        parse_manifest(bad.to_bytes(), stage="engine", key="abc123")


def test_garbage_manifest_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="manifest of engine/k is invalid"):
        parse_manifest(b"{not json", stage="engine", key="k")


def test_only_top_level_manifest_keys_count() -> None:
    assert parse_manifest_key("engine/abc/manifest.json") == ("engine", "abc")
    assert parse_manifest_key("engine/abc/data/u/manifest.json") is None
    assert parse_manifest_key("engine/abc/other.json") is None


def test_store_uris() -> None:
    assert parse_store_uri("s3://bkt/a/b/") == ("s3", "bkt", "a/b")
    assert parse_store_uri("file:///var/x%20y") == ("file", "", "/var/x y")
    for bad in ("s3:///nobucket", "file://host/x", "gs://b/x", "relative/dir"):
        with pytest.raises(ConfigError):
            parse_store_uri(bad)


DATA = Path(__file__).parent / "data"


def test_a_manifest_written_before_the_dataclass_rewrite_keeps_its_bytes_and_digest() -> None:
    """Digests name manifests: ``manifest-v1.json`` was written by the pydantic-based Manifest
    (non-ASCII, nested, float, bool and null inputs; an empty file); it must round-trip byte-exact."""
    stored = (DATA / "manifest-v1.json").read_bytes()
    m = parse_manifest(stored, stage="engine", key="cafe" * 16)
    assert m.to_bytes() == stored
    assert m.digest() == hashlib.sha256(stored).hexdigest()
    assert m.digest() == "a95898af290f806b8a8c43b46a296874c47584797d7c1248338249282df13d26"
    assert [f.size for f in m.files] == [10240, 0, 6]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.update(extra=1), "unknown field(s) extra"),
        (lambda d: d.pop("upload_id"), "missing field(s) upload_id"),
        (lambda d: d.update(format="1"), "format: expected int"),
        (lambda d: d.update(format=True), "format: expected int"),
        (lambda d: d.update(files={}), "files: expected list"),
        (lambda d: d.update(versions=[]), "versions: expected dict"),
        (lambda d: d["files"][0].update(size=-1), "size of a/b.bin: expected >= 0"),
        (lambda d: d["files"][0].update(size="10"), "size: expected int"),
        (lambda d: d["files"][0].update(part_size=0), "part_size of a/b.bin: expected >= 1"),
        (lambda d: d["files"][0].update(part_sha256=[1, 2, 3]), "part_sha256 of a/b.bin: expected strings"),
        (lambda d: d["files"][0].pop("sha256"), "FileEntry: missing field(s) sha256"),
        (lambda d: d["files"].append("x"), "FileEntry: expected an object"),
    ],
)
def test_schema_violations_are_integrity_errors(edit: Any, needle: str) -> None:
    data = json.loads(_manifest().to_bytes())
    edit(data)
    with pytest.raises(IntegrityError, match="manifest of engine/abc123 is invalid") as caught:
        parse_manifest(json.dumps(data).encode(), stage="engine", key="abc123")
    assert needle in str(caught.value)


@pytest.mark.parametrize("data", [b"", b"[]", b"\xff\xfe", b"[" * 100_000])
def test_non_object_or_undecodable_manifest_is_an_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError, match="manifest of engine/k is invalid"):
        parse_manifest(data, stage="engine", key="k")


def test_to_dict_is_the_stored_object_and_can_leave_out_files() -> None:
    m = _manifest(versions={"v": "1"})
    assert m.to_dict() == json.loads(m.to_bytes())
    assert list(m.to_dict(files=False)) == [
        "format", "stage", "key", "upload_id", "fingerprint_inputs", "versions", "created"
    ]  # fmt: skip
    assert Manifest.from_dict(m.to_dict()) == m
