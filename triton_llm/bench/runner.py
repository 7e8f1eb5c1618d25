"""Run a sweep: for each step, drive the load, scrape the server's metrics, summarize."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from triton_llm._progress import progress
from triton_llm.bench.drivers import Driver
from triton_llm.bench.load import Step, poisson_arrivals
from triton_llm.bench.metrics import MetricsWindow
from triton_llm.bench.prompts import Prompt
from triton_llm.bench.records import RequestRecord
from triton_llm.bench.slo import Bound, apply_slo
from triton_llm.bench.stats import StepSummary, summarize_step


@dataclass
class BenchRun:
    """A finished sweep: its settings, every request and each step's summary."""

    settings: dict[str, Any]
    origin: float  # perf_counter at the run's start; records' times are relative to it in JSON
    steps: list[Step] = field(default_factory=list)
    records: list[list[RequestRecord]] = field(default_factory=list)
    summaries: list[StepSummary] = field(default_factory=list)


async def _closed_loop(
    driver: Driver, step: Step, index: int, prompts: Iterator[Prompt], done: Callable[[], None]
) -> list[RequestRecord]:
    """``step.concurrency`` workers, each sending its next request as soon as the last one ends."""
    records: list[RequestRecord] = []
    counter = itertools.count()
    deadline = None if step.duration is None else time.perf_counter() + step.duration

    async def worker() -> None:
        while True:
            n = next(counter)
            if step.requests is not None and n >= step.requests:
                return
            if deadline is not None and time.perf_counter() >= deadline:
                return
            prompt = next(prompts)
            record = RequestRecord(
                step=index, index=n, start=0.0, input_tokens=prompt.input_tokens, max_tokens=prompt.max_tokens
            )
            records.append(record)
            record.start = time.perf_counter()
            await driver.send(prompt, record)
            done()

    await asyncio.gather(*(worker() for _ in range(step.concurrency or 1)))
    return records


async def _open_loop(
    driver: Driver, step: Step, index: int, prompts: Iterator[Prompt], done: Callable[[], None], seed: int
) -> list[RequestRecord]:
    """Requests sent at Poisson arrival times, however many are still in flight."""
    arrivals = poisson_arrivals(
        step.rate or 1.0, count=step.requests, duration=step.duration, seed=seed + index
    )
    records: list[RequestRecord] = []
    tasks = []
    start = time.perf_counter()

    async def one(record: RequestRecord, prompt: Prompt) -> None:
        record.start = time.perf_counter()
        await driver.send(prompt, record)
        done()

    for n, offset in enumerate(arrivals):
        delay = start + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        prompt = next(prompts)
        record = RequestRecord(
            step=index, index=n, start=0.0, input_tokens=prompt.input_tokens, max_tokens=prompt.max_tokens
        )
        record.scheduled = start + offset
        records.append(record)
        tasks.append(asyncio.create_task(one(record, prompt)))
    await asyncio.gather(*tasks)
    return records


async def run_sweep(
    driver: Driver,
    steps: list[Step],
    prompts: list[Prompt],
    *,
    settings: dict[str, Any],
    slo: list[Bound] | None = None,
    metrics_url: str | None = None,
    warmup: int = 0,
    seed: int = 0,
    on_step: Callable[[StepSummary], None] | None = None,
) -> BenchRun:
    """Run every step in order against a checked driver and summarize each."""
    cycle = itertools.cycle(prompts)
    for n in range(warmup):
        await driver.send(next(cycle), RequestRecord(step=-1, index=n, start=time.perf_counter()))
    run = BenchRun(settings=settings, origin=time.perf_counter())
    for index, step in enumerate(steps):
        window = MetricsWindow(metrics_url)
        await asyncio.to_thread(window.start)
        with progress(f"step {index + 1}/{len(steps)} {step.label}", total=step.requests, unit="req") as bar:

            def done() -> None:
                bar.update(1)

            if step.concurrency is not None:
                records = await _closed_loop(driver, step, index, cycle, done)
            else:
                records = await _open_loop(driver, step, index, cycle, done, seed)
        summary = summarize_step(index, step.label, step.load, records)
        summary.server = await asyncio.to_thread(window.stop)
        if slo:
            apply_slo(summary, records, slo)
        run.steps.append(step)
        run.records.append(records)
        run.summaries.append(summary)
        if on_step is not None:
            on_step(summary)
    return run
