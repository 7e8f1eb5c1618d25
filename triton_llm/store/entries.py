"""Publish entries (data first, manifest last with a conditional create) and look them up.

Two builders racing on one key never corrupt it: each uploads under its own
``data/<upload-id>/`` sub-prefix, and only one conditional manifest create can win. The loser
gets the winner's manifest back and removes its own upload. An upload killed midway leaves
data without a manifest, which no reader ever sees.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm._progress import progress
from triton_llm.errors import NotFoundError, StoreError, UsageError
from triton_llm.settings import TransferSettings
from triton_llm.store._parallel import ThreadBuffers, run_all
from triton_llm.store.base import ObjectStore
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


def _hash_files(files: list[tuple[str, Path]], transfer: TransferSettings) -> list[FileEntry]:
    """Whole-file and per-part sha256 of every file, hashed in parallel (hashlib drops the GIL)."""
    buffers = ThreadBuffers(max(transfer.io_buffer_size, 4 << 20))
    sizes = {rel: path.stat().st_size for rel, path in files}
    whole: dict[str, str] = {}
    parts: dict[tuple[str, int], str] = {}
    tasks = []

    def digest(path: Path, offset: int, length: int) -> str:
        h = hashlib.sha256()
        buf = buffers.get()
        with open(path, "rb", buffering=0) as f:
            done = 0
            while done < length:
                n = os.preadv(f.fileno(), [buf[: min(len(buf), length - done)]], offset + done)
                if n == 0:
                    raise StoreError(f"{path} shrank while it was being published", path=str(path))
                h.update(buf[:n])
                done += n
        return h.hexdigest()

    for rel, path in files:
        size = sizes[rel]
        tasks.append(lambda rel=rel, path=path, size=size: whole.__setitem__(rel, digest(path, 0, size)))
        for i, (off, length) in enumerate(part_ranges(size, part_size_for(size, transfer))):
            tasks.append(lambda k=(rel, i), p=path, o=off, n=length: parts.__setitem__(k, digest(p, o, n)))
    run_all(tasks, workers=max(1, min(transfer.max_concurrency, os.cpu_count() or 1)))
    entries = []
    for rel, _ in files:
        size = sizes[rel]
        psize = part_size_for(size, transfer)
        digests = [parts[(rel, i)] for i in range(len(part_ranges(size, psize)))]
        entries.append(
            FileEntry(path=rel, size=size, sha256=whole[rel], part_size=psize, part_sha256=digests)
        )
    return entries


def _upload(
    store: ObjectStore,
    prefix: str,
    files: list[tuple[str, Path]],
    entries: list[FileEntry],
    *,
    transfer: TransferSettings,
    desc: str,
) -> None:
    """Upload every file under ``prefix``: small ones whole, large ones as parallel multipart parts."""
    tasks = []
    multipart: list[tuple[str, str, list[str]]] = []
    total = sum(e.size for e in entries)
    with progress(desc, total=total) as bar:
        try:
            for (_, path), entry in zip(files, entries, strict=True):
                key = prefix + entry.path
                if entry.size <= transfer.multipart_threshold:
                    tasks.append(lambda k=key, p=path, n=entry.size: (store.put_file(k, p), bar.update(n)))
                    continue
                upload_id = store.start_multipart(key)
                etags = [""] * len(part_ranges(entry.size, entry.part_size))
                multipart.append((key, upload_id, etags))
                for i, (off, length) in enumerate(part_ranges(entry.size, entry.part_size)):

                    def put(
                        k: str = key,
                        u: str = upload_id,
                        i: int = i,
                        p: Path = path,
                        o: int = off,
                        n: int = length,
                        tags: list[str] = etags,
                    ) -> None:
                        tags[i] = store.put_part(k, u, i + 1, p, offset=o, length=n)
                        bar.update(n)

                    tasks.append(put)
            run_all(tasks, workers=transfer.max_concurrency)
            for key, upload_id, etags in multipart:
                store.complete_multipart(key, upload_id, etags)
        except BaseException:
            for key, upload_id, _ in multipart:
                store.abort_multipart(key, upload_id)
            raise


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

    Files are hashed first (whole-file and per-part sha256, in parallel), then uploaded with up
    to ``transfer.max_concurrency`` parts in flight; each part streams from the file, so memory
    stays near ``max_concurrency * max(io_buffer_size, 4 MiB)`` whatever the file sizes.
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
    entries = _hash_files(files, transfer)
    upload_id = f"{utc_now_iso().replace(':', '').replace('+0000', 'Z')}-{uuid.uuid4().hex[:12]}"
    prefix = upload_prefix(stage, key, upload_id)
    try:
        _upload(store, prefix, files, entries, transfer=transfer, desc=f"upload {stage}/{key[:12]}")
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

    run_all([lambda i=i, s=s, k=k: read(i, s, k) for i, (s, k) in enumerate(names)], workers=8)
    return [out[i] for i in sorted(out)]


def list_entries(store: ObjectStore, *, stage: str | None = None) -> list[Manifest]:
    """Every entry (with a manifest) in the store, or in one stage, sorted by stage and key."""
    return _read_all(store, _manifest_keys(store, stage))


def find_entry(store: ObjectStore, key: str) -> Manifest:
    """The entry whose key is ``key`` or starts with it (at least 8 characters), in any stage.

    Raises:
        NotFoundError: no entry matches.
        UsageError: the prefix is too short or matches several entries.
    """
    names = _manifest_keys(store, None)
    exact = [n for n in names if n[1] == key]
    if not exact and len(key) < 8:
        raise UsageError(f"key prefix {key!r} is too short: give at least 8 characters", key=key)
    matches = exact or [n for n in names if n[1].startswith(key)]
    if not matches:
        raise NotFoundError(
            f"no entry {key!r} in {store.uri}", key=key, hint="list entries with `triton-llm store ls`"
        )
    if len(matches) > 1:
        listing = ", ".join(f"{s}/{k[:16]}" for s, k in matches[:5])
        raise UsageError(
            f"key {key!r} matches {len(matches)} entries ({listing}); give more characters", key=key
        )
    found = _read_all(store, matches)
    if not found:
        raise NotFoundError(f"entry {key!r} vanished from {store.uri}", key=key)
    return found[0]
