"""Per-request records: what each driver measured, and the latencies derived from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    """One request's measurements. Times are ``time.perf_counter()`` seconds.

    ``start`` is taken just before the driver builds and sends the request; each entry of
    ``chunks`` is ``(arrival time, tokens in that response)`` for every response that carried
    output. ``output_tokens`` is the server's count (``num_output_tokens`` or OpenAI
    ``usage``) when it reports one, else the sum over chunks.
    """

    step: int
    index: int
    start: float
    input_tokens: int | None = None
    max_tokens: int | None = None
    end: float | None = None
    chunks: list[tuple[float, int]] = field(default_factory=list)
    output_tokens: int = 0
    error: str | None = None  # an error kind (see drivers.ERROR_KINDS); None when it succeeded
    error_message: str | None = None
    scheduled: float | None = None  # open loop: when the Poisson schedule wanted it sent

    def add_chunk(self, when: float, tokens: int) -> None:
        self.chunks.append((when, tokens))
        self.output_tokens += tokens

    @property
    def ok(self) -> bool:
        return self.error is None and self.end is not None

    @property
    def send_lag(self) -> float | None:
        """Seconds the send came after its scheduled time (open loop): the client falling behind."""
        return None if self.scheduled is None else self.start - self.scheduled

    @property
    def ttft(self) -> float | None:
        """Seconds from send to the first response carrying output."""
        return self.chunks[0][0] - self.start if self.chunks else None

    @property
    def e2e(self) -> float | None:
        """Seconds from send to the final response."""
        return None if self.end is None else self.end - self.start

    @property
    def itl(self) -> float | None:
        """Mean seconds per output token after the first response (also called TPOT).

        ``(last output arrival - first output arrival) / (output tokens - tokens of the first
        response)``, AIPerf's inter-token latency with the last output arrival instead of the
        stream's end (an empty final response adds no token).
        """
        if len(self.chunks) < 2:
            return None
        decode_tokens = self.output_tokens - self.chunks[0][1]
        if decode_tokens < 1:
            return None
        return (self.chunks[-1][0] - self.chunks[0][0]) / decode_tokens

    def to_json(self, origin: float) -> dict[str, Any]:
        """A JSON-ready dict with times in seconds from ``origin`` (the run's start)."""
        out = asdict(self)
        out["start"] = self.start - origin
        out["end"] = None if self.end is None else self.end - origin
        out["chunks"] = [[t - origin, n] for t, n in self.chunks]
        out["scheduled"] = None if self.scheduled is None else self.scheduled - origin
        out["ttft"], out["itl"], out["e2e"] = self.ttft, self.itl, self.e2e
        return out
