"""Service-level objectives: ``--slo ttft_p99=200ms,itl_p99=50ms`` and which load meets them (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from triton_llm.bench.records import RequestRecord
from triton_llm.bench.stats import METRICS, PERCENTILES, StepSummary
from triton_llm.errors import UsageError


@dataclass(frozen=True)
class Bound:
    """``metric`` at percentile ``q`` must be at most ``limit`` seconds."""

    metric: str
    q: int
    limit: float

    def __str__(self) -> str:
        return f"{self.metric}_p{self.q}<={self.limit * 1000:g}ms"


def parse_slo(text: str) -> list[Bound]:
    """``"ttft_p99=200ms,itl_p99=0.05s,e2e_p90=2000"``: metrics ttft, itl, e2e; percentiles
    p50, p90, p99; values in ms (bare numbers too) or s.

    Raises:
        UsageError: an unknown metric or percentile, a bad value, or a repeated key.
    """
    bounds: list[Bound] = []
    keys = ", ".join(f"{m}_p{q}" for m in METRICS for q in PERCENTILES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        m = re.fullmatch(r"([a-z0-9]+)_p(\d+)\s*=\s*(\d+(?:\.\d+)?)\s*(ms|s)?", item)
        if not m or m.group(1) not in METRICS or int(m.group(2)) not in PERCENTILES:
            raise UsageError(
                f"--slo: {item!r} is not KEY=VALUE with KEY one of {keys} and VALUE in ms or s (e.g. 200ms)",
                field="--slo",
                value=text,
            )
        value = float(m.group(3)) / (1 if m.group(4) == "s" else 1000)
        if not value > 0:
            raise UsageError(f"--slo: {item!r}: the bound must be > 0", field="--slo", value=text)
        if any(b.metric == m.group(1) and b.q == int(m.group(2)) for b in bounds):
            raise UsageError(f"--slo: {m.group(1)}_p{m.group(2)} is given twice", field="--slo", value=text)
        bounds.append(Bound(m.group(1), int(m.group(2)), value))
    if not bounds:
        raise UsageError("--slo: no bounds given (e.g. --slo ttft_p99=200ms)", field="--slo", value=text)
    return bounds


def request_is_good(record: RequestRecord, bounds: list[Bound]) -> bool:
    """A request counts toward goodput when it succeeded and each bounded latency of its own
    is within the bound (as AIPerf's goodput does)."""
    if not record.ok:
        return False
    for b in bounds:
        value = getattr(record, b.metric)
        if value is not None and value > b.limit:
            return False
    return True


def step_meets(summary: StepSummary, bounds: list[Bound]) -> bool:
    """A step meets the SLO when it had no errors and every bounded percentile is within its bound."""
    if summary.errors or summary.completed == 0:
        return False
    return all(summary.latency[b.metric].at(b.q) <= b.limit for b in bounds)


def apply_slo(summary: StepSummary, records: list[RequestRecord], bounds: list[Bound]) -> None:
    """Fill the summary's goodput count and SLO verdict."""
    summary.good = sum(request_is_good(r, bounds) for r in records)
    summary.slo_met = step_meets(summary, bounds)


def highest_passing(summaries: list[StepSummary]) -> StepSummary | None:
    """The step with the highest load that met the SLO (None if none did)."""
    passing = [s for s in summaries if s.slo_met]
    return max(passing, key=lambda s: s.load) if passing else None
