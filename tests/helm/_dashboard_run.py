"""The chart's Grafana dashboard evaluated for real: Prometheus 2.42 scraping a served twin under load.

One owner for the test (``tests/helm/test_dashboard_run.py``) and the docs picture::

    .venv/bin/python -m tests.helm._dashboard_run --png docs/img/dashboard-twin.png

:func:`twin_run` starts Debian's ``prometheus`` with a 1 s scrape of Triton's ``/metrics``, runs
``triton-llm bench`` (the CLI) against the served ``ensemble`` at a few concurrency steps, then evaluates
every target ``expr`` of every panel with ``/api/v1/query_range`` over the run window, substituting the
dashboard's variables as Grafana would:

- ``$namespace`` is a query variable (``label_values(METRIC, LABEL)``): resolved through Prometheus's
  ``/api/v1/label/LABEL/values?match[]=METRIC`` over the window, as Grafana's Prometheus datasource does;
- ``$__rate_interval`` is Grafana's ``max($__interval + scrape interval, 4 * scrape interval)``, with
  ``$__interval`` = the query step (the datasource's scrape interval is the step's floor);
- anything else is a :class:`DashboardFinding` (a variable we cannot substitute honestly).

The ``namespace`` and ``pod`` labels the queries select on are not exported by Triton: in a cluster the
Prometheus Operator adds them when it turns the chart's ServiceMonitor/PodMonitor into scrape configs
(relabelling ``__meta_kubernetes_namespace`` -> ``namespace``, ``__meta_kubernetes_pod_name`` -> ``pod``;
prometheus-operator ``pkg/prometheus/promcfg.go``, ``generateServiceMonitorConfig``). Here they are
static target labels of the one scrape job, with the values below.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fixtures.processes import stop

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "helm" / "triton-llm" / "dashboards" / "triton-llm.json"
PROMETHEUS = "/usr/bin/prometheus"
SCRAPE_S = 1
NAMESPACE = "llm"  # the target labels a ServiceMonitor/PodMonitor would attach (see the module docstring)
POD = "triton-llm-0"
# Two concurrency steps of the CLI's closed loop, short prompts and outputs: enough traffic on the CPU
# twin for every panel, inside the test's time budget.
CONCURRENCY = (1, 4)
STEP_SECONDS = 15.0
# Panels that cannot show data on the twin, with the reason (the test proves each reason still holds).
FIRST_RESPONSE = "nv_inference_first_response_histogram_ms"
TWIN_GAPS = {
    "Time to first token": f"the twin's Triton 2.51 (nvidia-pytriton 0.7.0) has no {FIRST_RESPONSE}: it "
    "exists from Triton 2.52 (core c815a13) with --metrics-config=histogram_latencies=true, which the "
    "launcher passes",
    "Time per output token (mean)": f"needs {FIRST_RESPONSE}_sum, which the twin's Triton 2.51 lacks",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$([A-Za-z_]\w*)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)\s*$")


class DashboardFinding(RuntimeError):
    """The dashboard cannot be evaluated as written (a variable, a query Prometheus rejects)."""


@dataclass(frozen=True)
class Series:
    """One result series of a target: its labels and (unix seconds, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]

    @property
    def finite(self) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.points if math.isfinite(v)]


@dataclass(frozen=True)
class TargetResult:
    """A panel target: its ``expr`` as written, as sent to Prometheus, and what came back."""

    ref_id: str
    legend: str
    expr: str
    query: str
    series: list[Series]


@dataclass(frozen=True)
class PanelResult:
    panel: dict[str, Any]
    targets: list[TargetResult]

    @property
    def title(self) -> str:
        return str(self.panel["title"])


@dataclass(frozen=True)
class TwinRun:
    """The evaluated dashboard and the window and load it was evaluated over."""

    start: float
    end: float
    step_s: int
    variables: dict[str, str]
    load: str
    panels: list[PanelResult] = field(default_factory=list)


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    """The dashboard JSON the chart ships (``helm/triton-llm/dashboards/``)."""
    return dict(json.loads(path.read_text()))


def rate_interval(step_s: int, scrape_s: int = SCRAPE_S) -> int:
    """Grafana's ``$__rate_interval`` in seconds for a query step and the datasource's scrape interval."""
    return max(step_s + scrape_s, 4 * scrape_s)


def substitute(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with every ``$var``, ``${var}`` and ``[[var]]`` replaced.

    Raises:
        DashboardFinding: a variable with no value in ``variables``.
    """

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in variables:
            raise DashboardFinding(f"variable ${name} has no value to substitute in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


# --- Prometheus ------------------------------------------------------------------------------------


class Prometheus:
    """A running ``prometheus`` on a free 127.0.0.1 port (see :func:`prometheus`)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str, params: Sequence[tuple[str, str]]) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise DashboardFinding(
                f"Prometheus rejected {dict(params)}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query_range(self, query: str, *, start: float, end: float, step_s: int) -> list[Series]:
        """``/api/v1/query_range``; a bad query raises :class:`DashboardFinding` with Prometheus's error."""
        data = self._get(
            "/api/v1/query_range",
            [("query", query), ("start", f"{start:.3f}"), ("end", f"{end:.3f}"), ("step", f"{step_s}s")],
        )
        return [
            Series(labels=dict(r["metric"]), points=[(float(t), float(v)) for t, v in r["values"]])
            for r in data["result"]
        ]

    def label_values(self, label: str, *, match: str, start: float, end: float) -> list[str]:
        data = self._get(
            f"/api/v1/label/{label}/values",
            [("match[]", match), ("start", f"{start:.3f}"), ("end", f"{end:.3f}")],
        )
        return [str(v) for v in data]

    def wait_scraped(self, metric: str, *, timeout: float = 60.0) -> None:
        """Wait until ``metric`` has been ingested (the first scrapes are in)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._get("/api/v1/query", [("query", f"count({metric})")])["result"]:
                return
            time.sleep(0.5)
        raise TimeoutError(f"Prometheus at {self.url} never ingested {metric}")


def scrape_config(metrics_target: str) -> dict[str, Any]:
    """One job scraping Triton's ``/metrics`` every :data:`SCRAPE_S` s, with a cluster's target labels."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
        "scrape_configs": [
            {
                "job_name": "triton",
                "scrape_timeout": f"{SCRAPE_S}s",
                "static_configs": [
                    {"targets": [metrics_target], "labels": {"namespace": NAMESPACE, "pod": POD}}
                ],
            }
        ],
    }


@contextmanager
def prometheus(metrics_target: str, workdir: Path) -> Iterator[Prometheus]:
    """Run Debian's Prometheus scraping ``metrics_target`` (host:port); always stopped on exit."""
    from triton_llm.launch.tritonserver import free_port

    if not Path(PROMETHEUS).is_file():
        raise FileNotFoundError(f"{PROMETHEUS} is missing: run `make apt` (Debian package prometheus)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps(scrape_config(metrics_target)))  # JSON is YAML
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited {proc.returncode}: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"prometheus not ready on {url}") from None
                time.sleep(0.2)
        yield Prometheus(url)
    finally:
        stop(proc, grace=30)
        log.close()


# --- load and evaluation ---------------------------------------------------------------------------


def bench_argv(grpc_url: str, tokenizer: Path, out: Path) -> list[str]:
    """The ``triton-llm bench`` run that loads the twin (the CLI, as users run it)."""
    return [
        str(Path(sys.executable).with_name("triton-llm")),
        "bench",
        "--url", grpc_url,
        "--concurrency", ",".join(str(c) for c in CONCURRENCY),
        "--duration", f"{STEP_SECONDS:g}",
        "--input-tokens", "32",
        "--max-tokens", "16",
        "--tokenizer", str(tokenizer),
        "--metrics-url", "none",
        "--out", str(out),
        "--no-plot",
    ]  # fmt: skip


def resolve_variables(
    prom: Prometheus, dashboard: dict[str, Any], *, start: float, end: float, step_s: int
) -> dict[str, str]:
    """The value Grafana would give each template variable over the window (its first option).

    Raises:
        DashboardFinding: a variable kind or query we cannot resolve, or one with no values.
    """
    values = {"__rate_interval": f"{rate_interval(step_s)}s", "__interval": f"{step_s}s"}
    for var in dashboard.get("templating", {}).get("list", []):
        name, kind = var["name"], var.get("type")
        if kind == "datasource":
            values[name] = "prometheus"  # only datasource uids use it; the queries all go to this one
            continue
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(str(query)) if kind == "query" else None
        if match is None:
            raise DashboardFinding(
                f"template variable ${name} ({kind}: {query!r}) is not label_values(metric, label)"
            )
        found = prom.label_values(match.group(2), match=match.group(1), start=start, end=end)
        if not found:
            raise DashboardFinding(f"template variable ${name}: {query} has no values over the run")
        values[name] = sorted(found)[0]
    return values


def evaluate(
    prom: Prometheus, dashboard: dict[str, Any], *, start: float, end: float, step_s: int
) -> tuple[dict[str, str], list[PanelResult]]:
    """Every panel's every target evaluated over ``[start, end]``."""
    variables = resolve_variables(prom, dashboard, start=start, end=end, step_s=step_s)
    panels = []
    for panel in dashboard["panels"]:
        targets = []
        for target in panel.get("targets", []):
            query = substitute(target["expr"], variables)
            targets.append(
                TargetResult(
                    ref_id=target.get("refId", "?"),
                    legend=target.get("legendFormat", ""),
                    expr=target["expr"],
                    query=query,
                    series=prom.query_range(query, start=start, end=end, step_s=step_s),
                )
            )
        panels.append(PanelResult(panel=panel, targets=targets))
    return variables, panels


def twin_run(grpc_url: str, metrics_url: str, *, tokenizer: Path, workdir: Path) -> TwinRun:
    """Scrape the served twin with Prometheus, load it with ``triton-llm bench``, evaluate the dashboard."""
    target = urllib.parse.urlsplit(metrics_url).netloc
    with prometheus(target, workdir / "prometheus") as prom:
        prom.wait_scraped("nv_inference_count")
        start = time.time() - 2 * SCRAPE_S
        argv = bench_argv(grpc_url, tokenizer, workdir / "bench")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"triton-llm bench failed ({done.returncode}): {done.stderr[-2000:]}")
        time.sleep(4 * SCRAPE_S)  # the queue drains and the last scrapes land
        end = time.time()
        step_s = SCRAPE_S
        variables, panels = evaluate(prom, load_dashboard(), start=start, end=end, step_s=step_s)
    load = (
        f"triton-llm bench --concurrency {','.join(map(str, CONCURRENCY))} --duration {STEP_SECONDS:g} "
        "--input-tokens 32 --max-tokens 16 (gRPC streaming, ensemble)"
    )
    return TwinRun(start=start, end=end, step_s=step_s, variables=variables, load=load, panels=panels)


# --- the picture -----------------------------------------------------------------------------------


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or str(labels)


def render(run: TwinRun, png: Path, *, dashboard: dict[str, Any] | None = None) -> None:
    """Draw every panel's series in the dashboard's own grid (gridPos: 24 columns, rows of 30 px)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    dashboard = dashboard or load_dashboard()
    rows = max(p.panel["gridPos"]["y"] + p.panel["gridPos"]["h"] for p in run.panels)
    width_in, row_in, top_in = 13.0, 0.30, 0.55
    fig = plt.figure(figsize=(width_in, rows * row_in + top_in), dpi=80)
    height_in = rows * row_in + top_in
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(run.start))
    fig.suptitle(
        f"{dashboard['title']} dashboard - CPU twin (smollm2-135m), {when}, {run.load}; "
        f"namespace={run.variables.get('namespace')}",
        fontsize=9,
        y=1 - 0.15 / height_in,
    )
    for result in run.panels:
        grid = result.panel["gridPos"]
        pad_x, pad_top, pad_bottom = 0.045, 0.32, 0.55
        left = grid["x"] / 24 + pad_x
        width = grid["w"] / 24 - pad_x - 0.012
        bottom_in = height_in - top_in - (grid["y"] + grid["h"]) * row_in + pad_bottom
        h_in = grid["h"] * row_in - pad_bottom - pad_top
        ax = fig.add_axes((left, bottom_in / height_in, width, h_in / height_in))
        unit = result.panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        for target in result.targets:
            for series in target.series:
                points = series.finite
                if points:
                    ax.plot(
                        [t - run.start for t, _ in points],
                        [v for _, v in points],
                        linewidth=1.2,
                        label=_legend(target.legend, series.labels),
                    )
        ax.set_title(f"{result.title}  [{unit}]", fontsize=9, loc="left")
        ax.set_xlim(0, run.end - run.start)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlabel("seconds into the run", fontsize=7)
        if unit == "percentunit":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        elif unit in ("ms", "reqps"):
            suffix = " ms" if unit == "ms" else "/s"
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p, s=suffix: f"{v:g}{s}"))
        if ax.lines:
            ax.legend(fontsize=7, loc="upper right", ncol=3)
        else:
            reason = TWIN_GAPS.get(result.title, "")
            note = "no data on the twin" + (":\n" + textwrap.fill(reason, 60) if reason else "")
            ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, fontsize=8)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Serve smollm2-135m on the CPU twin, run the dashboard against it, write the PNG."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--png", type=Path, default=REPO_ROOT / "docs" / "img" / "dashboard-twin.png")
    args = parser.parse_args(argv)

    from triton_llm.engine.local import ensure_local_engine
    from triton_llm.launch.tritonserver import TritonServer
    from triton_llm.repository import render_engine
    from triton_llm.settings import load_settings

    engine = ensure_local_engine(
        "smollm2-135m", settings=load_settings({}), backend="cpu", say=lambda _: None
    )
    with tempfile.TemporaryDirectory(prefix="dashboard-run-") as name:
        tmp = Path(name)
        repo = render_engine(engine, tmp / "repo")
        with TritonServer(repo, environ=os.environ, log_path=tmp / "server.log") as server:
            server.wait_ready(600)
            run = twin_run(
                server.grpc_url,
                f"http://127.0.0.1:{server.metrics_port}/metrics",
                tokenizer=Path(engine.tokenizer_dir),
                workdir=tmp,
            )
    for panel in run.panels:
        for target in panel.targets:
            points = sum(len(s.finite) for s in target.series)
            print(f"{panel.title} / {target.ref_id}: {len(target.series)} series, {points} points")
    render(run, args.png)
    print(f"wrote {args.png} ({args.png.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
