"""Local file I/O shared by publish and restore: the one hashing loop, and whole writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_range(path: Path, *, offset: int, length: int, buf: memoryview) -> str | None:
    """Hex sha256 of ``path[offset:offset + length]``, read through ``buf``; ``None`` if the file ends early.

    hashlib releases the GIL on large updates, so several threads hash in parallel.
    """
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        done = 0
        while done < length:
            n = os.preadv(f.fileno(), [buf[: min(len(buf), length - done)]], offset + done)
            if n == 0:
                return None
            h.update(buf[:n])
            done += n
    return h.hexdigest()


def pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
