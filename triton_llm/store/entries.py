"""Publish entries (data first, manifest last with a conditional create) and look them up.

Two builders racing on one key never corrupt it: each uploads under its own
``data/<upload-id>/`` sub-prefix, and only one conditional manifest create can win. The loser
gets the winner's manifest back and removes its own upload. An upload killed midway leaves
data without a manifest, which no reader ever sees.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm._progress import ProgressBar, progress
from triton_llm.errors import NotFoundError, StoreError, UsageError
from triton_llm.settings import TransferSettings
from triton_llm.store._io import sha256_range
from triton_llm.store._parallel import ThreadBuffers, run_all
from triton_llm.store.base import ObjectStore
from triton_llm.store.keys import ENTRY_STAGES, MIN_PREFIX, is_full_key
from triton_llm.store.manifest import (
    FileEntry,
    Manifest,
    check_stage_key,
    manifest_key,
    parse_manifest,
    parse_manifest_key,
    part_ranges,
    skip_local_name,
    upload_prefix,
    utc_now_iso,
)

MAX_PARTS = 10_000  # the S3 multipart limit


@dataclass(frozen=True)
class PublishResult:
    """``manifest`` is the entry now stored; ``won`` is False if another publisher got there first."""

    manifest: Manifest
    won: bool


def part_size_for(size: int, transfer: TransferSettings) -> int:
    """The part size used for a file of ``size`` bytes: the setting, grown to stay within 10,000 parts."""
    return max(transfer.part_size, -(-size // MAX_PARTS))


def scan_dir(src_dir: Path) -> list[tuple[str, Path]]:
    """Every regular file under ``src_dir`` as ``(relpath, path)``, sorted; our temp/marker files skipped.

    Raises:
        UsageError: ``src_dir`` is not a directory or holds no files.
    """
    if not src_dir.is_dir():
        raise UsageError(f"nothing to publish: {src_dir} is not a directory", path=str(src_dir))
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(src_dir, followlinks=True):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if skip_local_name(name) or not path.is_file():
                continue
            out.append((path.relative_to(src_dir).as_posix(), path))
    if not out:
        raise UsageError(f"nothing to publish: {src_dir} holds no files", path=str(src_dir))
    return sorted(out)


@dataclass(frozen=True)
class _Source:
    rel: str
    path: Path
    size: int
    part_size: int

    def parts(self) -> list[tuple[int, int]]:
        return part_ranges(self.size, self.part_size)


def _hash_tasks(
    sources: list[_Source], transfer: TransferSettings
) -> tuple[list[Callable[[], None]], Callable[[], list[FileEntry]]]:
    """Tasks computing whole-file and per-part sha256 (hashlib drops the GIL), and a collector."""
    buffers = ThreadBuffers(transfer.io_buffer_size)
    whole: dict[str, str] = {}
    parts: dict[tuple[str, int], str] = {}

    def digest(path: Path, offset: int, length: int) -> str:
        found = sha256_range(path, offset=offset, length=length, buf=buffers.get())
        if found is None:
            raise StoreError(f"{path} shrank while it was being published", path=str(path))
        return found

    def hash_whole(src: _Source) -> None:
        whole[src.rel] = digest(src.path, 0, src.size)

    def hash_part(src: _Source, index: int, offset: int, length: int) -> None:
        parts[(src.rel, index)] = digest(src.path, offset, length)

    tasks: list[Callable[[], None]] = []
    for src in sources:
        tasks.append(functools.partial(hash_whole, src))
        for i, (off, length) in enumerate(src.parts()):
            tasks.append(functools.partial(hash_part, src, i, off, length))

    def collect() -> list[FileEntry]:
        return [
            FileEntry(
                path=s.rel,
                size=s.size,
                sha256=whole[s.rel],
                part_size=s.part_size,
                part_sha256=[parts[(s.rel, i)] for i in range(len(s.parts()))],
            )
            for s in sources
        ]

    return tasks, collect


def _upload_tasks(
    store: ObjectStore, prefix: str, sources: list[_Source], *, transfer: TransferSettings, bar: ProgressBar
) -> tuple[list[Callable[[], None]], list[tuple[str, str, list[str]]]]:
    """Tasks uploading every file under ``prefix`` (small ones whole, large ones as multipart parts),
    and the started multipart uploads ``(key, upload_id, etags)`` to complete afterwards."""
    tasks: list[Callable[[], None]] = []
    multipart: list[tuple[str, str, list[str]]] = []
    for src in sources:
        key = prefix + src.rel
        if src.size <= transfer.multipart_threshold:

            def put_whole(k: str = key, s: _Source = src) -> None:
                store.put_file(k, s.path)
                bar.update(s.size)

            tasks.append(put_whole)
            continue
        upload_id = store.start_multipart(key)
        etags = [""] * len(src.parts())
        multipart.append((key, upload_id, etags))
        for i, (off, length) in enumerate(src.parts()):

            def put(
                k: str = key,
                u: str = upload_id,
                i: int = i,
                p: Path = src.path,
                o: int = off,
                n: int = length,
                tags: list[str] = etags,
            ) -> None:
                tags[i] = store.put_part(k, u, i + 1, p, offset=o, length=n)
                bar.update(n)

            tasks.append(put)
    return tasks, multipart


def _interleave(a: list[Callable[[], None]], b: list[Callable[[], None]]) -> list[Callable[[], None]]:
    out: list[Callable[[], None]] = []
    for i in range(max(len(a), len(b))):
        out.extend(x[i] for x in (a, b) if i < len(x))
    return out


def _hash_and_upload(
    store: ObjectStore, prefix: str, files: list[tuple[str, Path]], *, transfer: TransferSettings, desc: str
) -> list[FileEntry]:
    """Hash and upload every file at once (one bounded pool); returns the manifest's file entries."""
    sources = []
    for rel, path in files:
        size = path.stat().st_size
        sources.append(_Source(rel, path, size, part_size_for(size, transfer)))
    hash_tasks, collect = _hash_tasks(sources, transfer)
    multipart: list[tuple[str, str, list[str]]] = []
    with progress(desc, total=sum(s.size for s in sources)) as bar:
        try:
            upload_tasks, multipart = _upload_tasks(store, prefix, sources, transfer=transfer, bar=bar)
            run_all(_interleave(upload_tasks, hash_tasks), workers=transfer.max_concurrency)
            for key, upload_id, etags in multipart:
                store.complete_multipart(key, upload_id, etags)
        except BaseException:
            for key, upload_id, _ in multipart:
                store.abort_multipart(key, upload_id)
            raise
    return collect()


def _cleanup(store: ObjectStore, prefix: str) -> None:
    """Delete everything under ``prefix`` (best effort)."""
    with contextlib.suppress(StoreError):
        store.delete([o.key for o in store.list(prefix)])


def publish(
    store: ObjectStore,
    src_dir: Path,
    *,
    stage: str,
    key: str,
    fingerprint_inputs: dict[str, Any],
    versions: dict[str, Any],
    transfer: TransferSettings,
) -> PublishResult:
    """Upload ``src_dir`` as the entry ``<stage>/<key>``, unless it already exists.

    Files are hashed (whole-file and per-part sha256) and uploaded at the same time, with at most
    ``transfer.max_concurrency`` tasks in flight; parts stream from the files, so memory stays
    near ``max_concurrency * io_buffer_size`` plus the HTTP client's send buffers.
    Transient errors are retried per the store's policy (``Settings.transfer.retries``).

    Args:
        store: the target store.
        src_dir: directory whose regular files (recursively) make up the entry.
        stage: ``[a-z]+``, e.g. ``checkpoint`` or ``engine``.
        key: the entry key (a fingerprint).
        fingerprint_inputs: the inputs the key was computed from; stored in the manifest.
        versions: tool versions; stored in the manifest.
        transfer: part size, concurrency and buffer size.

    Returns:
        The stored manifest and whether this call created it (False: it existed or another
        publisher won the race; its manifest is returned).

    Raises:
        UsageError: bad stage/key or nothing to publish.
        StoreError / TransientStoreError: the upload failed; no entry is visible.
    """
    check_stage_key(stage, key)
    existing = read_manifest(store, stage=stage, key=key)
    if existing is not None:
        return PublishResult(existing, won=False)
    files = scan_dir(src_dir)
    upload_id = f"{utc_now_iso().replace(':', '').replace('+0000', 'Z')}-{uuid.uuid4().hex[:12]}"
    prefix = upload_prefix(stage, key, upload_id)
    try:
        entries = _hash_and_upload(store, prefix, files, transfer=transfer, desc=f"upload {stage}/{key[:12]}")
    except BaseException:
        _cleanup(store, prefix)
        raise
    manifest = Manifest(
        stage=stage,
        key=key,
        upload_id=upload_id,
        files=entries,
        fingerprint_inputs=fingerprint_inputs,
        versions=versions,
        created=utc_now_iso(),
    )
    created = store.put_bytes(manifest_key(stage, key), manifest.to_bytes(), if_absent=True)
    # Read back: a server that ignores If-None-Match (rclone serve s3 does) lets the last writer
    # win; whoever reads back another manifest lost. Both data prefixes are complete, so the
    # entry is consistent either way.
    winner = read_manifest(store, stage=stage, key=key)
    if created and winner is not None and winner.digest() == manifest.digest():
        return PublishResult(manifest, won=True)
    _cleanup(store, prefix)
    if winner is None:
        raise StoreError(
            f"{stage}/{key}: the manifest create was refused but no manifest is readable", key=key
        )
    return PublishResult(winner, won=False)


def read_manifest(store: ObjectStore, *, stage: str, key: str) -> Manifest | None:
    """The manifest of ``<stage>/<key>``, or ``None`` if there is no such entry.

    Raises:
        IntegrityError: the stored manifest is unreadable.
    """
    check_stage_key(stage, key)
    try:
        data = store.get_bytes(manifest_key(stage, key))
    except NotFoundError:
        return None
    return parse_manifest(data, stage=stage, key=key)


def _manifest_keys(store: ObjectStore, stage: str | None) -> list[tuple[str, str]]:
    if stage is not None:
        check_stage_key(stage, "x")
    found = [parse_manifest_key(o.key) for o in store.list(f"{stage}/" if stage else "")]
    return sorted({f for f in found if f is not None})


def _read_all(store: ObjectStore, names: list[tuple[str, str]]) -> list[Manifest]:
    out: dict[int, Manifest] = {}
    lock = threading.Lock()

    def read(i: int, stage: str, key: str) -> None:
        m = read_manifest(store, stage=stage, key=key)
        if m is not None:
            with lock:
                out[i] = m

    run_all([functools.partial(read, i, s, k) for i, (s, k) in enumerate(names)], workers=8)
    return [out[i] for i in sorted(out)]


def list_entries(store: ObjectStore, *, stage: str | None = None) -> list[Manifest]:
    """Every entry (with a manifest) in the store, or in one stage, sorted by stage and key."""
    return _read_all(store, _manifest_keys(store, stage))


def find_entry(store: ObjectStore, key: str) -> Manifest:
    """The entry whose key is ``key`` or starts with it (at least 8 characters), in any stage.

    A full key (64 hex digits) costs one direct manifest read per stage of
    :data:`~triton_llm.store.keys.ENTRY_STAGES`, never a listing; a prefix lists the store once.

    Raises:
        NotFoundError: no entry matches.
        UsageError: the prefix is too short or matches several entries.
    """
    if is_full_key(key):
        found = _read_all(store, [(stage, key) for stage in ENTRY_STAGES])
    else:
        names = _manifest_keys(store, None)
        exact = [n for n in names if n[1] == key]
        if not exact and len(key) < MIN_PREFIX:
            raise UsageError(
                f"key prefix {key!r} is too short: give at least {MIN_PREFIX} characters", key=key
            )
        matches = exact or [n for n in names if n[1].startswith(key)]
        _check_unique(key, matches)
        found = _read_all(store, matches)
    if not found:
        raise NotFoundError(
            f"no entry {key!r} in {store.uri}", key=key, hint="list entries with `triton-llm engine ls`"
        )
    _check_unique(key, [(m.stage, m.key) for m in found])
    return found[0]


def _check_unique(key: str, matches: list[tuple[str, str]]) -> None:
    if len(matches) > 1:
        listing = ", ".join(f"{s}/{k[:16]}" for s, k in matches[:5])
        raise UsageError(
            f"key {key!r} matches {len(matches)} entries ({listing}); give more characters", key=key
        )
