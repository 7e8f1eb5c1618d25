"""``file:///abs/dir``: a local directory as an object store.

Writes go to a unique ``*.incomplete`` file next to the target and are renamed into place;
a conditional create links the temp file to the final name, which fails if it exists.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from triton_llm.errors import IntegrityError, NotFoundError, StoreError
from triton_llm.store._io import pwrite_all
from triton_llm.store._retry import RetryPolicy
from triton_llm.store.base import ObjectInfo, Verify

INCOMPLETE = ".incomplete"


def _temp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{INCOMPLETE}")


def copy_range(src_fd: int, dst_fd: int, *, src_offset: int, dst_offset: int, length: int) -> None:
    """Copy bytes between files inside the kernel (``copy_file_range``), falling back to pread/pwrite."""
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(src_fd, dst_fd, length - done, src_offset + done, dst_offset + done)
            if n == 0:
                raise IntegrityError(f"file ended {length - done} bytes early while copying")
            done += n
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while done < length:
        data = os.pread(src_fd, min(8 << 20, length - done), src_offset + done)
        if not data:
            raise IntegrityError(f"file ended {length - done} bytes early while copying")
        os.pwrite(dst_fd, data, dst_offset + done)
        done += len(data)


class LocalStore:
    """An :class:`~triton_llm.store.base.ObjectStore` over a local directory."""

    def __init__(self, root: Path, *, retry: RetryPolicy | None = None) -> None:
        if not root.is_absolute():
            raise StoreError(f"file store path must be absolute: {root}", path=str(root))
        self.root = root
        self.uri = root.as_uri()
        self.retry = retry or RetryPolicy()

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"invalid object key {key!r}", key=key)
        return self.root / key

    def _fail(self, action: str, key: str, e: OSError) -> StoreError:
        return StoreError(
            f"cannot {action} {key} in {self.uri}: {e.strerror or e}",
            key=key,
            path=str(self.root),
            hint="check that the store directory exists and is writable",
        )

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_for(path)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                if not if_absent:
                    os.replace(tmp, path)
                    return True
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
                return True
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as e:
            raise self._fail("write", key, e) from e

    def put_file(self, key: str, path: Path) -> None:
        upload = self.start_multipart(key)
        size = path.stat().st_size
        self.put_part(key, upload, 1, path, offset=0, length=size)
        self.complete_multipart(key, upload, [])

    def start_multipart(self, key: str) -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_for(path)
            tmp.touch(exist_ok=False)
        except OSError as e:
            raise self._fail("write", key, e) from e
        return tmp.name

    def put_part(self, key: str, upload_id: str, number: int, path: Path, *, offset: int, length: int) -> str:
        tmp = self._path(key).with_name(upload_id)
        try:
            with open(path, "rb") as src, open(tmp, "r+b") as dst:
                copy_range(src.fileno(), dst.fileno(), src_offset=offset, dst_offset=offset, length=length)
        except OSError as e:
            raise self._fail("write", key, e) from e
        return str(number)

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        path = self._path(key)
        try:
            # Durable before the manifest (fsynced too) can point at it.
            fd = os.open(path.with_name(upload_id), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(path.with_name(upload_id), path)
        except OSError as e:
            raise self._fail("complete", key, e) from e

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._path(key).with_name(upload_id).unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"no object {key} in {self.uri}", key=key) from e
        except OSError as e:
            raise self._fail("read", key, e) from e

    def read_into(
        self, key: str, *, offset: int, length: int, fd: int, buf: memoryview, verify: Verify
    ) -> int:
        try:
            src = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError as e:
            raise NotFoundError(f"no object {key} in {self.uri}", key=key) from e
        except OSError as e:
            raise self._fail("read", key, e) from e
        try:
            size = os.fstat(src).st_size
            done = 0
            while done < length:
                view = buf[: min(len(buf), length - done)]
                try:
                    n = os.preadv(src, [view], offset + done)
                except OSError as e:
                    raise self._fail("read", key, e) from e
                if n == 0:
                    raise IntegrityError(f"object {key} ends {length - done} bytes early", key=key)
                pwrite_all(fd, view[:n], offset + done)
                verify(done, view[:n])
                done += n
            return size
        finally:
            os.close(src)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            return ObjectInfo(key, self._path(key).stat().st_size)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._fail("stat", key, e) from e

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(INCOMPLETE):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        yield ObjectInfo(key, full.stat().st_size)
                    except FileNotFoundError:
                        continue

    def delete(self, keys: Iterable[str]) -> None:
        dirs: set[Path] = set()
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            dirs.add(path.parent)
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            while d != self.root and d.is_relative_to(self.root):
                try:
                    d.rmdir()
                except OSError:
                    break
                d = d.parent
