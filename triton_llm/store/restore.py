"""Restore an entry into a local directory: parallel ranged reads, sha256 verified while streaming.

Each file is written to a unique ``*.incomplete`` file, every part's sha256 is checked as its
bytes arrive, and only a fully verified file is renamed to its final name. The destination is
locked (``flock``) for the whole restore, so concurrent restores of one directory are safe.
A verified restore leaves ``.triton-llm-entry.json`` recording the manifest digest and each
file's size, mtime and inode; a later restore whose marker still matches does nothing.
Files are not fsynced (that would bound restores by disk speed): instead the marker records
the kernel boot id, so after a reboot (the only way page-cache data is lost) the local files
are re-hashed before they are trusted again.

Memory bound: ``max_concurrency * io_buffer_size`` bytes of buffers, whatever the entry size.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from triton_llm._progress import ProgressBar, progress
from triton_llm.errors import IntegrityError, NotFoundError, StoreError
from triton_llm.settings import TransferSettings
from triton_llm.store._io import sha256_range
from triton_llm.store._parallel import ThreadBuffers, run_all
from triton_llm.store.base import ObjectStore
from triton_llm.store.entries import find_entry, read_manifest
from triton_llm.store.manifest import FileEntry, Manifest, data_key, part_ranges

MARKER_NAME = ".triton-llm-entry.json"
LOCK_NAME = ".triton-llm-entry.lock"


@dataclass(frozen=True)
class RestoreResult:
    """``skipped``: the destination already matched; ``downloaded`` bytes fetched this time."""

    manifest: Manifest
    skipped: bool
    downloaded: int = 0


@contextmanager
def _locked(dest: Path) -> Iterator[None]:
    fd = os.open(dest / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def boot_id() -> str:
    """This boot's id (Linux), or "" where unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat_record(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def marker_matches(dest: Path, manifest: Manifest) -> bool:
    """True if ``dest`` holds a marker for this exact manifest and every file's stat is unchanged."""
    try:
        marker = json.loads((dest / MARKER_NAME).read_text())
        if marker.get("manifest_sha256") != manifest.digest() or marker.get("boot_id") != boot_id():
            return False
        recorded = marker["files"]
        if set(recorded) != {f.path for f in manifest.files}:
            return False
        return all(_stat_record(dest / f.path) == recorded[f.path] for f in manifest.files)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_marker(dest: Path, manifest: Manifest) -> None:
    marker = {
        "stage": manifest.stage,
        "key": manifest.key,
        "manifest_sha256": manifest.digest(),
        "boot_id": boot_id(),
        "files": {f.path: _stat_record(dest / f.path) for f in manifest.files},
    }
    tmp = dest / f".{MARKER_NAME}.{uuid.uuid4().hex[:8]}.incomplete"
    tmp.write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, dest / MARKER_NAME)


def _remove_stale_temps(dest: Path) -> None:
    """Drop ``.*.incomplete`` files left by a killed restore (we hold the lock: none is live)."""
    for dirpath, _, names in os.walk(dest):
        for name in names:
            if name.startswith(".") and name.endswith(".incomplete"):
                (Path(dirpath) / name).unlink(missing_ok=True)


def _mismatch(manifest: Manifest, f: FileEntry, what: str) -> IntegrityError:
    return IntegrityError(
        f"{f.path} of {manifest.stage}/{manifest.key}: {what}; the file was not restored",
        key=manifest.key,
        path=f.path,
        hint="the stored entry is corrupt: delete it and publish it again",
    )


def _verify_local(dest: Path, manifest: Manifest, *, transfer: TransferSettings) -> list[FileEntry]:
    """Hash local copies (parts in parallel); return the files that are missing or differ."""
    buffers = ThreadBuffers(transfer.io_buffer_size)
    bad: list[FileEntry] = []
    lock = threading.Lock()
    tasks = []
    for f in manifest.files:
        path = dest / f.path
        if path.is_symlink() or not path.is_file() or path.stat().st_size != f.size:
            bad.append(f)
            continue
        for (off, length), want in zip(part_ranges(f.size, f.part_size), f.part_sha256, strict=True):

            def check(
                f: FileEntry = f, path: Path = path, off: int = off, length: int = length, want: str = want
            ) -> None:
                if sha256_range(path, offset=off, length=length, buf=buffers.get()) != want:
                    with lock:
                        if f not in bad:
                            bad.append(f)

            tasks.append(check)
    run_all(tasks, workers=max(1, min(transfer.max_concurrency, os.cpu_count() or 1)))
    return bad


class _Download:
    """Download files of one manifest into ``*.incomplete`` temps, verify parts, rename when whole."""

    def __init__(
        self, store: ObjectStore, dest: Path, manifest: Manifest, transfer: TransferSettings
    ) -> None:
        self.store, self.dest, self.manifest, self.transfer = store, dest, manifest, transfer
        self.buffers = ThreadBuffers(transfer.io_buffer_size)
        self.lock = threading.Lock()
        self.open: dict[str, tuple[int, Path, int]] = {}  # path -> (fd, tmp, parts left)

    def _open(self, f: FileEntry) -> None:
        final = self.dest / f.path
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.incomplete")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)  # read too: parts are hashed via mmap
        self.open[f.path] = (fd, tmp, len(f.part_sha256))
        os.ftruncate(fd, f.size)

    def _part(self, f: FileEntry, index: int, offset: int, length: int, bar: ProgressBar) -> None:
        fd = self.open[f.path][0]
        h = hashlib.sha256()

        def verify(pos: int, data: memoryview) -> None:
            h.update(data)
            bar.update(len(data))

        try:
            size = self.store.read_into(
                data_key(self.manifest, f.path),
                offset=offset,
                length=length,
                fd=fd,
                buf=self.buffers.get(),
                verify=verify,
            )
        except NotFoundError as e:
            raise _mismatch(self.manifest, f, "its stored object is missing") from e
        except IntegrityError as e:  # the store saw the object end early
            raise _mismatch(self.manifest, f, e.message) from e
        if size != f.size:
            raise _mismatch(self.manifest, f, f"stored size {size} != manifest size {f.size}")
        if h.hexdigest() != f.part_sha256[index]:
            raise _mismatch(self.manifest, f, f"sha256 mismatch in bytes {offset}-{offset + length - 1}")
        with self.lock:
            fd, tmp, left = self.open[f.path]
            self.open[f.path] = (fd, tmp, left - 1)
            if left > 1:
                return
            del self.open[f.path]
        os.close(fd)
        os.replace(tmp, self.dest / f.path)

    def run(self, files: list[FileEntry]) -> int:
        total = sum(f.size for f in files)
        tasks = []
        try:
            with progress(f"download {self.manifest.stage}/{self.manifest.key[:12]}", total=total) as bar:
                for f in files:
                    self._open(f)
                    for i, (off, length) in enumerate(part_ranges(f.size, f.part_size)):
                        tasks.append(lambda f=f, i=i, o=off, n=length: self._part(f, i, o, n, bar))
                run_all(tasks, workers=self.transfer.max_concurrency)
        except OSError as e:
            raise StoreError(f"cannot write into {self.dest}: {e}", path=str(self.dest)) from e
        finally:
            for fd, tmp, _ in self.open.values():
                os.close(fd)
                tmp.unlink(missing_ok=True)
            self.open.clear()
        return total


def restore(
    store: ObjectStore, dest: Path, *, stage: str, key: str, transfer: TransferSettings
) -> RestoreResult:
    """Restore the entry ``<stage>/<key>`` into ``dest``, verifying every byte.

    Args:
        store: the source store.
        dest: destination directory (created); files not in the manifest are left alone.
        stage: the entry's stage.
        key: the entry key.
        transfer: concurrency and buffer size (parts follow the manifest's part size); transient
            errors are retried per the store's policy (``Settings.transfer.retries``), and a
            dropped stream resumes where it stopped.

    Returns:
        The manifest, whether the restore was skipped (the local copy already matched), and
        how many bytes were downloaded.

    Raises:
        NotFoundError: no such entry.
        IntegrityError: a stored file does not match the manifest; it is not left in ``dest``.
        StoreError / TransientStoreError: the transfer failed.
    """
    manifest = read_manifest(store, stage=stage, key=key)
    if manifest is None:
        raise NotFoundError(
            f"no {stage} entry {key} in {store.uri}",
            key=key,
            hint="build or publish it first, or check the store URI",
        )
    dest.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        if marker_matches(dest, manifest):
            return RestoreResult(manifest, skipped=True)
        (dest / MARKER_NAME).unlink(missing_ok=True)
        _remove_stale_temps(dest)
        todo = _verify_local(dest, manifest, transfer=transfer)
        for f in todo:  # nothing unverified stays under a final name
            if (dest / f.path).is_symlink() or (dest / f.path).is_file():
                (dest / f.path).unlink()
        downloaded = _Download(store, dest, manifest, transfer).run(todo)
        _write_marker(dest, manifest)
    return RestoreResult(manifest, skipped=False, downloaded=downloaded)


def pull(store: ObjectStore, key: str, dest: Path, *, transfer: TransferSettings) -> RestoreResult:
    """Restore the entry named by ``key`` (a full key or a unique prefix, any stage) into ``dest``.

    Raises:
        As :func:`~triton_llm.store.entries.find_entry` and :func:`restore`.
    """
    manifest = find_entry(store, key)
    return restore(store, dest, stage=manifest.stage, key=manifest.key, transfer=transfer)
