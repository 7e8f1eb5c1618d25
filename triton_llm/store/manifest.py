"""Entry manifests and the store layout: pure functions, no I/O.

Layout of one entry under the store root::

    <stage>/<key>/manifest.json               written last; no manifest = no entry
    <stage>/<key>/data/<upload-id>/<relpath>  the files, one unique sub-prefix per upload

Each file lists its size, its whole-file sha256 and the sha256 of every ``part_size`` slice,
so a restore verifies parts in parallel while they stream in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, TypeVar, cast

from triton_llm.errors import IntegrityError, UsageError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_STAGE_RE = re.compile(r"^[a-z]+$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
_SKIP_SUFFIXES = (".incomplete", ".triton-llm-entry.json", ".triton-llm-entry.lock")


class ManifestSchemaError(ValueError):
    """A manifest (or one of its file entries) breaks the schema; :func:`parse_manifest` reports
    it as an :class:`IntegrityError`."""


_E = TypeVar("_E")


def _check_schema(obj: Any, types: dict[str, type]) -> None:
    """The one schema check of :class:`FileEntry` and :class:`Manifest`: each field has exactly
    its JSON type (no coercion: a stored manifest is written by us, so anything else is corrupt).

    Raises:
        ManifestSchemaError: names the first field of the wrong type.
    """
    for name, expected in types.items():
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ManifestSchemaError(f"{name}: expected {expected.__name__}, got {value!r}")


def _from_dict(cls: type[_E], data: Any) -> _E:
    """``cls(**data)`` for a decoded JSON object: exactly the declared keys, defaults allowed."""
    if not isinstance(data, dict):
        raise ManifestSchemaError(f"{cls.__name__}: expected an object, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cast(Any, cls))}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ManifestSchemaError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    missing = [
        n for n, f in fields.items()
        if n not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]  # fmt: skip
    if missing:
        raise ManifestSchemaError(f"{cls.__name__}: missing field(s) {', '.join(missing)}")
    return cls(**data)


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """One file of an entry.

    Attributes:
        path: relative POSIX path inside the entry.
        size: bytes, >= 0.
        sha256: hex sha256 of the whole file.
        part_size: size of the slices digested in ``part_sha256``, >= 1.
        part_sha256: hex sha256 of each ``part_size`` slice, in order.
    """

    path: str
    size: int
    sha256: str
    part_size: int
    part_sha256: list[str]

    def __post_init__(self) -> None:
        _check_schema(self, {"path": str, "size": int, "sha256": str, "part_size": int, "part_sha256": list})
        if self.size < 0:
            raise ManifestSchemaError(f"size of {self.path}: expected >= 0, got {self.size}")
        if self.part_size < 1:
            raise ManifestSchemaError(f"part_size of {self.path}: expected >= 1, got {self.part_size}")
        if not all(isinstance(h, str) for h in self.part_sha256):
            raise ManifestSchemaError(f"part_sha256 of {self.path}: expected strings")

    @classmethod
    def from_dict(cls, data: Any) -> FileEntry:
        """A file entry from its decoded JSON object.

        Raises:
            ManifestSchemaError: a key is missing or unknown, or a value has the wrong type.
        """
        return _from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this file entry."""
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "part_size": self.part_size,
            "part_sha256": list(self.part_sha256),
        }


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The record that makes an entry exist; written last, with a conditional create.

    Attributes:
        format: manifest format version.
        stage, key: the entry's name.
        upload_id: the data lives under ``<stage>/<key>/data/<upload_id>/``.
        files: every file of the entry.
        fingerprint_inputs: the inputs the key was computed from.
        versions: tool versions.
        created: UTC ISO-8601 creation time.
    """

    format: int = MANIFEST_FORMAT
    stage: str
    key: str
    upload_id: str
    files: list[FileEntry]
    fingerprint_inputs: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    created: str

    def __post_init__(self) -> None:
        _check_schema(
            self,
            {"format": int, "stage": str, "key": str, "upload_id": str, "files": list, "created": str,
             "fingerprint_inputs": dict, "versions": dict},
        )  # fmt: skip
        if not all(isinstance(f, FileEntry) for f in self.files):
            raise ManifestSchemaError("files: expected FileEntry items")

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """A manifest from its decoded JSON object.

        Raises:
            ManifestSchemaError: a key is missing or unknown, or a value has the wrong type.
        """
        if isinstance(data, dict) and isinstance(data.get("files"), list):
            data = {**data, "files": [FileEntry.from_dict(f) for f in data["files"]]}
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        """A manifest from its stored JSON bytes (see :func:`parse_manifest` for the full check).

        Raises:
            ManifestSchemaError: not JSON, or the schema is broken.
        """
        try:
            decoded = json.loads(data)
        except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ManifestSchemaError(f"invalid JSON: {e}") from None
        return cls.from_dict(decoded)

    def to_dict(self, *, files: bool = True) -> dict[str, Any]:
        """The JSON object of this manifest (without ``files`` when ``files`` is False)."""
        out: dict[str, Any] = {
            "format": self.format,
            "stage": self.stage,
            "key": self.key,
            "upload_id": self.upload_id,
        }
        if files:
            out["files"] = [f.to_dict() for f in self.files]
        out.update(fingerprint_inputs=self.fingerprint_inputs, versions=self.versions, created=self.created)
        return out

    @property
    def total_size(self) -> int:
        """Sum of all file sizes, bytes."""
        return sum(f.size for f in self.files)

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes, as stored."""
        return (json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n").encode()

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
        manifest = Manifest.from_json(data)
    except ManifestSchemaError as e:
        raise IntegrityError(f"manifest of {stage}/{key} is invalid: {e}", key=key) from e
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
