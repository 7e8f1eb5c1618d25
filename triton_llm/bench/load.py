"""Load schedules: closed-loop concurrency steps and open-loop Poisson request rates (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from triton_llm.errors import UsageError


@dataclass(frozen=True)
class Step:
    """One load level of a sweep, run for a fixed request count or a fixed duration.

    Exactly one of ``concurrency`` (closed loop: that many requests always in flight) and
    ``rate`` (open loop: Poisson arrivals per second, no cap on requests in flight) is set,
    and exactly one of ``requests`` and ``duration``.
    """

    concurrency: int | None = None
    rate: float | None = None
    requests: int | None = None
    duration: float | None = None

    @property
    def load(self) -> float:
        """The step's load on one axis: concurrency, or requests per second."""
        return float(self.concurrency if self.concurrency is not None else self.rate or 0.0)

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency is not None else f"rate={self.rate:g}/s"


def plan_steps(
    *,
    concurrency: list[int] | None = None,
    rates: list[float] | None = None,
    requests: int | None = None,
    duration: float | None = None,
) -> list[Step]:
    """The sweep's steps in the order given.

    Raises:
        UsageError: both or neither of concurrency/rates; both or neither of requests/duration;
            a value that is not positive. The error names the flag.
    """
    if concurrency and rates:
        raise UsageError("--concurrency and --request-rate are exclusive: pick one", field="--request-rate")
    if requests is not None and duration is not None:
        raise UsageError("--requests and --duration are exclusive: pick one", field="--duration")
    if requests is None and duration is None:
        raise UsageError("give --requests N or --duration SECONDS per step", field="--requests")
    if requests is not None and requests < 1:
        raise UsageError(f"--requests must be >= 1 (got {requests})", field="--requests", value=requests)
    if duration is not None and not duration > 0:
        raise UsageError(f"--duration must be > 0 (got {duration})", field="--duration", value=duration)
    if rates:
        return [Step(rate=r, requests=requests, duration=duration) for r in rates]
    return [Step(concurrency=c, requests=requests, duration=duration) for c in concurrency or [1]]


def poisson_arrivals(
    rate: float, *, count: int | None = None, duration: float | None = None, seed: int = 0
) -> list[float]:
    """Send times (seconds from the step's start) of a Poisson process of ``rate`` per second.

    Inter-arrival gaps are exponential with mean ``1/rate``; the first request goes at 0.
    Stops after ``count`` arrivals, or before ``duration`` seconds.
    """
    if not rate > 0:
        raise UsageError(f"--request-rate must be > 0 (got {rate})", field="--request-rate", value=rate)
    if count is None and duration is None:
        raise ValueError("poisson_arrivals needs count or duration")
    rng = random.Random(seed)
    times: list[float] = []
    t = 0.0
    while (count is None or len(times) < count) and (duration is None or t < duration):
        times.append(t)
        t += rng.expovariate(rate)
    return times


def parse_positive_list(text: str, *, flag: str, kind: type = int) -> list:
    """``"1,2,4"`` -> ``[1, 2, 4]``; every value must be > 0.

    Raises:
        UsageError: an empty item, a value of the wrong type, or one that is not > 0.
    """
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = kind(item)
        except ValueError:
            raise UsageError(
                f"{flag}: {item!r} is not a {'number' if kind is float else 'whole number'} (in {text!r})",
                field=flag,
                value=text,
            ) from None
        if not value > 0:
            raise UsageError(
                f"{flag}: every value must be > 0 (got {item} in {text!r})", field=flag, value=text
            )
        values.append(value)
    return values
