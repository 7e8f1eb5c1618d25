"""A background thread that drives a :class:`Generator` (in-flight batching).

``submit``, ``cancel`` and ``stats`` are thread-safe; new requests join the running batch
between decode steps, and each request's events go to its own callback or queue.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable

from triton_llm.runtime._types import GenerationRequest, InvalidRequestError, RuntimeStats, TokenEvent
from triton_llm.runtime.generator import Generator

EventSink = Callable[[TokenEvent], None] | queue.Queue


class GeneratorLoop:
    """Owns the generator's thread; call :meth:`close` to stop it (idempotent)."""

    def __init__(self, generator: Generator, *, name: str = "triton-llm-generator") -> None:
        self._gen = generator
        self._lock = threading.Condition()
        self._inbox: list[tuple[GenerationRequest, EventSink]] = []
        self._cancels: list[str] = []
        self._sinks: dict[str, EventSink] = {}
        self._stats = generator.stats()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest, on_event: EventSink) -> None:
        """Queue a request; its events go to ``on_event`` (a callable or a ``queue.Queue``).

        Raises:
            InvalidRequestError: the request breaks a limit (checked here, synchronously).
            RuntimeError: the loop is closed.
        """
        with self._lock:
            if self._stop:
                raise RuntimeError("GeneratorLoop is closed")
            self._gen.validate(request, check_duplicates=False)  # generator state belongs to the loop thread
            rid = request.request_id
            if rid in self._sinks or any(r.request_id == rid for r, _ in self._inbox):
                raise InvalidRequestError(
                    f"request {rid!r}: request_id={rid!r}: a request with this id is already in flight",
                    key=rid,
                    field="request_id",
                    value=rid,
                )
            self._inbox.append((request, on_event))
            self._lock.notify()

    def cancel(self, request_id: str) -> None:
        """Cancel a request; it leaves the batch at the next step with a ``cancelled`` event."""
        with self._lock:
            self._cancels.append(request_id)
            self._lock.notify()

    def stats(self) -> RuntimeStats:
        """The load after the last step; submitted requests not yet in the batch count as queued."""
        with self._lock:
            return dataclasses.replace(self._stats, queued=self._stats.queued + len(self._inbox))

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the thread after the current step; open requests get ``cancelled`` events.

        Also closes the generator, which on rank 0 of a tensor-parallel group releases the
        other ranks from :func:`run_worker`.
        """
        with self._lock:
            self._stop = True
            self._lock.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @staticmethod
    def _deliver(sink: EventSink, event: TokenEvent) -> None:
        if isinstance(sink, queue.Queue):
            sink.put(event)
        else:
            sink(event)

    def _dispatch(self, events: list[TokenEvent]) -> None:
        for ev in events:
            with self._lock:
                sink = self._sinks.get(ev.request_id)
                if sink is not None and ev.finished:
                    del self._sinks[ev.request_id]
            if sink is None:
                continue
            try:
                self._deliver(sink, ev)
            except Exception:
                self._gen.cancel(ev.request_id)

    def _drain(self) -> list[TokenEvent]:
        """Move submissions and cancellations into the generator (lock held)."""
        events: list[TokenEvent] = []
        for request, sink in self._inbox:
            try:
                self._gen.add(request)
            except Exception as e:
                self._deliver(sink, TokenEvent(request.request_id, [], True, "error", str(e)))
                continue
            self._sinks[request.request_id] = sink
        self._inbox.clear()
        for rid in self._cancels:
            self._gen.cancel(rid)
        self._cancels.clear()
        return events

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while (
                        not self._stop and not self._inbox and not self._cancels and not self._gen.has_work()
                    ):
                        self._lock.wait()
                    if self._stop:
                        break
                    self._drain()
                    self._stats = self._gen.stats()  # submissions moved from the inbox to the queue
                try:
                    events = self._gen.step()
                except Exception as e:
                    events = self._gen.abort_all(f"generation step failed: {type(e).__name__}: {e}")
                with self._lock:
                    self._stats = self._gen.stats()
                self._dispatch(events)
        finally:
            with self._lock:
                pending = [(r.request_id, s) for r, s in self._inbox]
                self._inbox.clear()
            for rid in list(self._sinks):
                self._gen.cancel(rid)
            events = self._gen.abort_all("generator loop closed")
            for ev in events:
                ev.finish_reason, ev.error = "cancelled", "generator loop closed"
            self._dispatch(events)
            for rid, sink in pending:
                self._deliver(sink, TokenEvent(rid, [], True, "cancelled", "generator loop closed"))
            self._gen.close()  # with tensor parallelism: releases the ranks in run_worker
            with self._lock:
                self._stats = self._gen.stats()
