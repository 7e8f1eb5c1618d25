"""Entry manifests and the store layout: pure functions, no I/O.

Layout of one entry under the store root::

    <stage>/<key>/manifest.json               written last; no manifest = no entry
    <stage>/<key>/data/<upload-id>/<relpath>  the files, one unique sub-prefix per upload

Each file lists its size, its whole-file sha256 and the sha256 of every ``part_size`` slice,
so a restore verifies parts in parallel while they stream in.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triton_llm.errors import IntegrityError, UsageError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_STAGE_RE = re.compile(r"^[a-z]+$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
_SKIP_SUFFIXES = (".incomplete", ".triton-llm-entry.json", ".triton-llm-entry.lock")


class FileEntry(BaseModel):
    """One file of an entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="relative POSIX path inside the entry")
    size: int = Field(ge=0)
    sha256: str = Field(description="hex sha256 of the whole file")
    part_size: int = Field(ge=1, description="size of the slices digested in part_sha256")
    part_sha256: list[str] = Field(description="hex sha256 of each part_size slice, in order")


class Manifest(BaseModel):
    """The record that makes an entry exist; written last, with a conditional create."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = MANIFEST_FORMAT
    stage: str
    key: str
    upload_id: str = Field(description="the data lives under <stage>/<key>/data/<upload_id>/")
    files: list[FileEntry]
    fingerprint_inputs: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(description="UTC ISO-8601 creation time")

    @property
    def total_size(self) -> int:
        """Sum of all file sizes, bytes."""
        return sum(f.size for f in self.files)

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes, as stored."""
        return (json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1) + "\n").encode()

    def digest(self) -> str:
        """Hex sha256 of :meth:`to_bytes`; names this exact manifest."""
        return hashlib.sha256(self.to_bytes()).hexdigest()


def check_stage_key(stage: str, key: str) -> None:
    """Reject stage or key names that would escape the layout.

    Raises:
        UsageError: ``stage`` is not ``[a-z]+`` or ``key`` is not a plain name.
    """
    if not _STAGE_RE.match(stage):
        raise UsageError(
            f"invalid store stage {stage!r}: use lowercase letters only", field="stage", value=stage
        )
    if not _KEY_RE.match(key):
        raise UsageError(
            f"invalid store key {key!r}: use letters, digits, '.', '_' or '-' (max 200)", key=key, value=key
        )


def check_relpath(path: str) -> str:
    """Validate a relative file path of an entry and return it unchanged.

    Raises:
        IntegrityError: the path is absolute, empty, or climbs out with ``..``.
    """
    p = PurePosixPath(path)
    if (
        not path
        or p.is_absolute()
        or "\\" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise IntegrityError(f"unsafe file path {path!r} in manifest", path=path)
    return path


def skip_local_name(name: str) -> bool:
    """True for our own temp, marker and lock files, which never belong to an entry."""
    return name.endswith(_SKIP_SUFFIXES)


def manifest_key(stage: str, key: str) -> str:
    """``<stage>/<key>/manifest.json``"""
    return f"{stage}/{key}/{MANIFEST_NAME}"


def data_key(manifest: Manifest, relpath: str) -> str:
    """The object key of one file of an entry."""
    return upload_prefix(manifest.stage, manifest.key, manifest.upload_id) + relpath


def upload_prefix(stage: str, key: str, upload_id: str) -> str:
    """``<stage>/<key>/data/<upload-id>/``"""
    return f"{stage}/{key}/data/{upload_id}/"


def parse_manifest_key(object_key: str) -> tuple[str, str] | None:
    """``(stage, key)`` if ``object_key`` is a manifest key, else ``None``."""
    parts = object_key.split("/")
    if (
        len(parts) == 3
        and parts[2] == MANIFEST_NAME
        and _STAGE_RE.match(parts[0])
        and _KEY_RE.match(parts[1])
    ):
        return parts[0], parts[1]
    return None


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of each part; one empty part for an empty file."""
    if size == 0:
        return [(0, 0)]
    return [(off, min(part_size, size - off)) for off in range(0, size, part_size)]


def utc_now_iso() -> str:
    """The current UTC time, ISO-8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_manifest(data: bytes, *, stage: str, key: str) -> Manifest:
    """Parse and check a stored manifest.

    Raises:
        IntegrityError: not valid JSON/schema, or it names another stage/key, or a bad path.
    """
    try:
        manifest = Manifest.model_validate_json(data)
    except ValidationError as e:
        raise IntegrityError(f"manifest of {stage}/{key} is invalid: {e.errors()[0]['msg']}", key=key) from e
    if (manifest.stage, manifest.key) != (stage, key):
        raise IntegrityError(
            f"manifest stored at {stage}/{key} names {manifest.stage}/{manifest.key}", key=key
        )
    for f in manifest.files:
        check_relpath(f.path)
        if len(f.part_sha256) != len(part_ranges(f.size, f.part_size)):
            raise IntegrityError(
                f"manifest of {stage}/{key}: wrong part count for {f.path}", key=key, path=f.path
            )
    return manifest
