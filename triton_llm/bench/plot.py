"""The run's PNG: latency against throughput across the sweep, TTFT and ITL distributions."""

from __future__ import annotations

import os
from pathlib import Path

from triton_llm.bench.runner import BenchRun
from triton_llm.errors import UsageError


def require_matplotlib() -> None:
    """Fail before any load is sent when the PNG cannot be drawn.

    Raises:
        UsageError: matplotlib is not installed; names the extra and --no-plot.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise UsageError(
            "the PNG needs matplotlib", hint="pip install 'triton-llm[bench]', or pass --no-plot"
        ) from e


def plot_run(run: BenchRun, path: Path, *, title: str = "") -> Path:
    """Three panels: p50/p99 TTFT and ITL vs output tokens/s per step (each point labelled
    with its load), TTFT histogram per step, ITL histogram per step. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_sweep, ax_ttft, ax_itl) = plt.subplots(1, 3, figsize=(16, 4.8))
    xs = [s.output_tokens_per_s for s in run.summaries]
    for metric, q, style in (("ttft", 50, "o-"), ("ttft", 99, "o--"), ("itl", 50, "s-"), ("itl", 99, "s--")):
        ys = [s.latency[metric].at(q) * 1000 for s in run.summaries]
        ax_sweep.plot(xs, ys, style, label=f"{metric.upper()} p{q}")
    for s, x in zip(run.summaries, xs, strict=True):
        ax_sweep.annotate(
            s.label, (x, s.latency["ttft"].p50 * 1000), textcoords="offset points", xytext=(3, 4), fontsize=7
        )
    ax_sweep.set(xlabel="output tokens/s", ylabel="latency (ms)", title="latency vs throughput")
    ax_sweep.set_yscale("log")
    ax_sweep.legend(fontsize=8)
    for ax, metric, name in ((ax_ttft, "ttft", "TTFT"), (ax_itl, "itl", "ITL")):
        for s, records in zip(run.summaries, run.records, strict=True):
            values = [v * 1000 for v in (getattr(r, metric) for r in records if r.ok) if v is not None]
            if values:
                ax.hist(values, bins=30, histtype="step", label=s.label)
        ax.set(xlabel=f"{name} (ms)", ylabel="requests", title=f"{name} distribution per step")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.incomplete.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
