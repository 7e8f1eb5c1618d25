"""Per-step statistics: latency percentiles, throughput, errors by kind (pure)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from triton_llm.bench.records import RequestRecord

PERCENTILES = (50, 90, 99)
METRICS = ("ttft", "itl", "e2e")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile with linear interpolation between ranks (numpy's default method)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Distribution:
    """Percentiles, mean and extremes of one latency (seconds) over a step's successful requests."""

    count: int
    mean: float
    min: float
    max: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: list[float]) -> Distribution:
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(
            len(values),
            sum(values) / len(values),
            min(values),
            max(values),
            *(percentile(values, q) for q in PERCENTILES),
        )

    def at(self, q: int) -> float:
        return float(getattr(self, f"p{q}"))


@dataclass
class StepSummary:
    """What one load step measured. ``window`` runs from the first send to the last response."""

    step: int
    label: str
    load: float
    requests: int
    completed: int
    errors: dict[str, int]
    window: float
    input_tokens: int
    output_tokens: int
    latency: dict[str, Distribution]
    send_lag: Distribution | None = None  # open loop: how late sends left vs the schedule
    good: int | None = None  # requests meeting every --slo bound (None without --slo)
    slo_met: bool | None = None
    server: dict[str, Any] = field(default_factory=dict)

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.window if self.window > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.window if self.window > 0 else 0.0

    @property
    def goodput(self) -> float | None:
        """Requests per second that met every --slo bound."""
        if self.good is None:
            return None
        return self.good / self.window if self.window > 0 else 0.0


def summarize_step(step: int, label: str, load: float, records: list[RequestRecord]) -> StepSummary:
    """Percentiles over the successful requests; throughput over the step's window."""
    done = [r for r in records if r.ok]
    starts = [r.start for r in records]
    ends = [r.end for r in records if r.end is not None]
    window = (max(ends) - min(starts)) if starts and ends else 0.0
    latency = {
        name: Distribution.of([v for v in (getattr(r, name) for r in done) if v is not None])
        for name in METRICS
    }
    lags = [r.send_lag for r in records if r.send_lag is not None]
    return StepSummary(
        step=step,
        label=label,
        load=load,
        requests=len(records),
        completed=len(done),
        errors=dict(Counter(r.error for r in records if r.error is not None)),
        window=window,
        input_tokens=sum(r.input_tokens or 0 for r in done),
        output_tokens=sum(r.output_tokens for r in done),
        latency=latency,
        send_lag=Distribution.of(lags) if lags else None,
    )
