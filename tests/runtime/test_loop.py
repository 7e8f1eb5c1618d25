"""GeneratorLoop: a background thread with thread-safe submit/cancel and in-flight batching."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from triton_llm.runtime import GenerationRequest, GeneratorLoop, InvalidRequestError, TokenEvent


def _collect(q: queue.Queue, timeout: float = 120.0) -> tuple[list[int], TokenEvent]:
    tokens: list[int] = []
    while True:
        ev = q.get(timeout=timeout)
        tokens.extend(ev.new_token_ids)
        if ev.finished:
            return tokens, ev


def test_loop_joins_requests_in_flight_and_cancels(idle_generator, prompt_ids, solo_outputs) -> None:
    loop = GeneratorLoop(idle_generator)
    try:
        qa: queue.Queue = queue.Queue()
        loop.submit(GenerationRequest("a", prompt_ids[0], 24), qa)
        first = qa.get(timeout=60)  # a is decoding now
        got_b: list[TokenEvent] = []
        done_b = threading.Event()

        def on_b(ev: TokenEvent) -> None:
            got_b.append(ev)
            if ev.finished:
                done_b.set()

        loop.submit(GenerationRequest("b", prompt_ids[1], 24), on_b)
        qc: queue.Queue = queue.Queue()
        loop.submit(GenerationRequest("c", prompt_ids[2], 24), qc)
        qc.get(timeout=60)
        loop.cancel("c")
        tokens_c, last_c = _collect(qc)
        assert last_c.finish_reason == "cancelled"
        assert len(tokens_c) <= 2, "a cancel takes effect at the next step (one more token at most)"
        tokens_a, last_a = _collect(qa)
        assert first.new_token_ids + tokens_a == solo_outputs[0] and last_a.finish_reason == "length"
        assert done_b.wait(60)
        assert [t for ev in got_b for t in ev.new_token_ids] == solo_outputs[1]
    finally:
        loop.close()
    assert not idle_generator.has_work()


def test_loop_rejects_bad_and_duplicate_requests_synchronously(idle_generator, prompt_ids) -> None:
    loop = GeneratorLoop(idle_generator)
    try:
        with pytest.raises(InvalidRequestError, match="max_new_tokens"):
            loop.submit(GenerationRequest("bad", [1, 2], 0), queue.Queue())
        q: queue.Queue = queue.Queue()
        loop.submit(GenerationRequest("same", prompt_ids[0], 8), q)
        with pytest.raises(InvalidRequestError, match="already in flight"):
            loop.submit(GenerationRequest("same", prompt_ids[0], 8), queue.Queue())
        tokens, last = _collect(q)
        assert len(tokens) == 8 and last.finish_reason == "length"
    finally:
        loop.close()


def test_close_cancels_running_requests(idle_generator, prompt_ids) -> None:
    loop = GeneratorLoop(idle_generator)
    q: queue.Queue = queue.Queue()
    loop.submit(GenerationRequest("long", prompt_ids[0], 300), q)
    q.get(timeout=60)
    t0 = time.monotonic()
    loop.close()
    assert time.monotonic() - t0 < 30
    _, last = _collect(q, timeout=5)
    assert last.finished and last.finish_reason == "cancelled"
    with pytest.raises(RuntimeError, match="closed"):
        loop.submit(GenerationRequest("late", prompt_ids[0], 2), queue.Queue())
    assert not idle_generator.has_work()


def test_stats_count_queued_and_running_and_cancelled_queued_requests_leave(
    idle_generator, prompt_ids
) -> None:
    """Requests beyond max_batch_size wait in the queue; cancelling them (and the running ones)
    leaves nothing active, as the Triton model's metrics report it."""
    loop = GeneratorLoop(idle_generator)
    try:
        limit = idle_generator.limits.max_batch_size
        queues = [queue.Queue() for _ in range(limit + 2)]
        for i, q in enumerate(queues):
            loop.submit(GenerationRequest(f"s{i}", prompt_ids[i % len(prompt_ids)], 200), q)
        queues[0].get(timeout=120)
        stats = loop.stats()
        assert (stats.running, stats.queued, stats.active) == (limit, 2, limit + 2)
        assert stats.rank_slots == (limit,) and stats.max_batch_size == limit
        for i in range(len(queues)):
            loop.cancel(f"s{i}")
        for q in queues:
            _, last = _collect(q)
            assert last.finish_reason == "cancelled"
        deadline = time.monotonic() + 30
        while loop.stats().active or any(loop.stats().rank_slots):
            assert time.monotonic() < deadline, loop.stats()
            time.sleep(0.01)
    finally:
        loop.close()
    assert not idle_generator.has_work()
