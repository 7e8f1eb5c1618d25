"""Load generation against a Triton LLM endpoint, with an SLO report (``triton-llm bench``).

Pure plans (load steps, Poisson arrivals, prompt lengths, SLO bounds, statistics) are kept
apart from the effects (protocol drivers, the sweep runner, /metrics scraping, the report
files). Times are ``time.perf_counter()`` seconds throughout. Names are re-exported lazily
so that building the CLI parser does not import asyncio and the drivers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PROTOCOLS": "drivers",
    "DriverOptions": "drivers",
    "make_driver": "drivers",
    "Step": "load",
    "plan_steps": "load",
    "poisson_arrivals": "load",
    "LengthDist": "prompts",
    "Prompt": "prompts",
    "jsonl_prompts": "prompts",
    "parse_length": "prompts",
    "synthetic_prompts": "prompts",
    "RequestRecord": "records",
    "BenchConfig": "run",
    "run_bench": "run",
    "BenchRun": "runner",
    "run_sweep": "runner",
    "Bound": "slo",
    "parse_slo": "slo",
    "Distribution": "stats",
    "StepSummary": "stats",
    "percentile": "stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
