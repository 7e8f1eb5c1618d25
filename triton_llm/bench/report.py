"""The run's outputs: a table for the terminal, a JSON of every request, the SLO verdict."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from triton_llm.bench.runner import BenchRun
from triton_llm.bench.slo import Bound, highest_passing
from triton_llm.bench.stats import METRICS, PERCENTILES, StepSummary


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:.1f}"


def _server_cells(summary: StepSummary, model: str) -> tuple[str, str]:
    """Mean queue and compute-infer ms of the served model (tensorrt_llm when it is there)."""
    models = summary.server.get("models") or {}
    row = models.get("tensorrt_llm") or models.get(model)
    if not row:
        return "-", "-"
    return f"{row.get('queue_ms', math.nan):.1f}", f"{row.get('compute_infer_ms', math.nan):.1f}"


def format_table(run: BenchRun) -> str:
    """One row per step: latency percentiles (ms), throughput, errors, goodput, server figures."""
    head = ["step", "ok", "err"]
    head += [f"{m}_p{q}" for m in METRICS for q in PERCENTILES]
    head += ["out tok/s", "req/s"]
    slo = any(s.good is not None for s in run.summaries)
    if slo:
        head += ["goodput/s", "SLO"]
    head += ["srv queue", "srv infer"]
    rows = [head]
    for s in run.summaries:
        errors = ",".join(f"{k}:{v}" for k, v in sorted(s.errors.items())) or "0"
        row = [s.label, str(s.completed), errors]
        row += [_ms(s.latency[m].at(q)) for m in METRICS for q in PERCENTILES]
        row += [f"{s.output_tokens_per_s:.1f}", f"{s.requests_per_s:.2f}"]
        if slo:
            row += [f"{s.goodput or 0:.2f}", "pass" if s.slo_met else "FAIL"]
        row += list(_server_cells(s, str(run.settings.get("model"))))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        "latencies in ms (itl = TPOT: mean time per output token after the first response); "
        "srv = server's mean queue / compute-infer ms per request from /metrics"
    )
    missing = [s.label for s in run.summaries if s.server.get("error")]
    if missing:
        lines.append(f"server metrics unavailable: {run.summaries[0].server.get('error')}")
    elif run.summaries and not any(s.server.get("trt_llm_exported") for s in run.summaries):
        lines.append("the server exports no nv_trt_llm_* metrics")
    return "\n".join(lines)


def slo_verdict(run: BenchRun, bounds: list[Bound]) -> tuple[bool, str]:
    """(met by some step, one line naming the highest load that met every bound)."""
    best = highest_passing(run.summaries)
    wanted = ", ".join(str(b) for b in bounds)
    if best is None:
        return False, f"SLO ({wanted}): no step met it"
    return (
        True,
        f"SLO ({wanted}): highest load that meets it: {best.label} ({best.goodput or 0:.2f} good req/s)",
    )


def _clean(value: Any) -> Any:
    """NaN -> None, recursively, so the JSON is strict."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def run_to_json(run: BenchRun) -> dict[str, Any]:
    """The whole run: settings, per step its load, summary and every request record."""
    steps = []
    for step, summary, records in zip(run.steps, run.summaries, run.records, strict=True):
        summary_json = asdict(summary)
        summary_json.update(
            output_tokens_per_s=summary.output_tokens_per_s,
            requests_per_s=summary.requests_per_s,
            goodput_per_s=summary.goodput,
        )
        steps.append(
            {
                "step": asdict(step),
                "summary": summary_json,
                "requests": [r.to_json(run.origin) for r in records],
            }
        )
    return _clean({"settings": run.settings, "steps": steps})


def write_json(run: BenchRun, path: Path) -> Path:
    """Write the run's JSON atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.incomplete")
    tmp.write_text(json.dumps(run_to_json(run), indent=1, allow_nan=False))
    tmp.replace(path)
    return path
