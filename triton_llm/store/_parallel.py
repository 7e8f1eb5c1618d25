"""A bounded worker pool that stops at the first failure, and per-thread reusable buffers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait


def run_all(tasks: Sequence[Callable[[], None]], *, workers: int) -> None:
    """Run ``tasks`` on at most ``workers`` threads; re-raise the first error.

    After an error, tasks not yet started are cancelled and running ones finish before this
    returns, so the caller may clean up files the tasks were writing.
    """
    if not tasks:
        return
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="store") as pool:
        futures: list[Future[None]] = [pool.submit(task) for task in tasks]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if failed:
            for f in pending:
                f.cancel()
            wait(futures)
            raise failed[0].exception()  # type: ignore[misc]


class ThreadBuffers:
    """One reusable ``bytearray`` of ``size`` bytes per thread (the transfer memory bound)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._local = threading.local()

    def get(self) -> memoryview:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = memoryview(bytearray(self.size))
        return buf
