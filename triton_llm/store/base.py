"""The :class:`ObjectStore` protocol: the few primitives every backend provides.

Keys are ``/``-separated and relative to the store root (the URI's bucket+prefix or directory).
Entries, manifests and parallel transfers are built on top of these, in ``entries`` and
``restore``; backends know nothing about them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from triton_llm.store._retry import RetryPolicy

Verify = Callable[[int, memoryview], None]
"""``verify(pos, data)``: ``data`` are the bytes just written at ``pos`` within the requested range.

Calls come in order with increasing ``pos``; a retried range resumes where it stopped. ``data``
is valid only during the call (it is a reused buffer or a view of the written file).
"""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object."""

    key: str
    size: int


class ObjectStore(Protocol):
    """A flat key → bytes store with conditional create, ranged reads and multipart upload."""

    uri: str
    retry: RetryPolicy

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Store ``data``; with ``if_absent`` only if ``key`` does not exist. Returns whether it wrote."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Upload a whole (small) file in one request."""
        ...

    def start_multipart(self, key: str) -> str:
        """Begin a multipart upload; returns its upload id."""
        ...

    def put_part(self, key: str, upload_id: str, number: int, path: Path, *, offset: int, length: int) -> str:
        """Upload part ``number`` (1-based) from ``path[offset:offset+length]``; returns its etag."""
        ...

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        """Make the uploaded parts, in order, the object ``key``."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop an unfinished multipart upload (best effort)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object. Raises NotFoundError if it does not exist."""
        ...

    def read_into(
        self, key: str, *, offset: int, length: int, fd: int, buf: memoryview, verify: Verify
    ) -> int:
        """Write bytes ``[offset, offset + length)`` of ``key`` into ``fd`` at the same offset.

        ``fd`` is a regular file open for reading and writing; ``buf`` is this call's scratch buffer
        (the memory bound), and ``verify`` sees every piece once it is written. Returns the object's
        size. Raises IntegrityError if the object ends early, NotFoundError if it is missing;
        OSError from writing ``fd`` passes through unchanged.
        """
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size of ``key``, or ``None`` if it does not exist."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Delete these objects; missing ones are ignored."""
        ...
