"""Triton's ``/metrics`` over a step's window: scrape before and after (and sample gauges during).

Metric names are Triton's (``src/metrics.cc`` in triton-inference-server/core) and the
TensorRT-LLM 1.2 backend's custom families (``nv_trt_llm_*`` and the ``nv_llm_*_token_len``
histograms; the table is the ``metrics`` key of triton_llm/repository/tensorrtllm_backend_1_2.json,
which the CPU model exports too); a family the server does not export is reported as missing,
never as zero.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from typing import Any

# Cumulative per-model counters (Triton core), and what each becomes in the step's report.
COUNTERS = {
    "nv_inference_request_success": "requests",
    "nv_inference_request_failure": "failures",
    "nv_inference_request_duration_us": "request_ms",
    "nv_inference_queue_duration_us": "queue_ms",
    "nv_inference_compute_input_duration_us": "compute_input_ms",
    "nv_inference_compute_infer_duration_us": "compute_infer_ms",
    "nv_inference_compute_output_duration_us": "compute_output_ms",
}
PENDING = "nv_inference_pending_request_count"
TRT_LLM_PREFIXES = ("nv_trt_llm_", "nv_llm_")
# Headline figures of a window from those families: (family, label, category), as upstream names them.
WAITING = ("nv_trt_llm_request_metrics", "request_type", "waiting")
KV_FRACTION = ("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "fraction")
TOKEN_LEN = {"input_tokens_mean": "nv_llm_input_token_len", "output_tokens_mean": "nv_llm_output_token_len"}

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Series = tuple[str, tuple[tuple[str, str], ...]]


def parse_prometheus(text: str) -> dict[Series, float]:
    """Samples of a Prometheus text exposition: ``(name, sorted labels) -> value``."""
    out: dict[Series, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line.strip())
        if not m:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            continue
    return out


def series_name(series: Series) -> str:
    name, labels = series
    inner = ",".join(f"{k}={v}" for k, v in labels if k != "version")
    return f"{name}{{{inner}}}" if inner else name


def scrape(url: str, *, timeout: float = 5.0) -> dict[Series, float]:
    """One scrape of ``url``.

    Raises:
        OSError: the endpoint cannot be reached or answers with an error status.
    """
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse_prometheus(response.read().decode("utf-8", "replace"))


def window_figures(
    before: dict[Series, float], after: dict[Series, float], samples: list[dict[Series, float]]
) -> dict[str, Any]:
    """Server-side figures of one window: per model the requests it finished, mean request,
    queue and compute times per request (ms), the peak of pending requests; every
    ``nv_trt_llm_*`` series with its value before, after, and its peak during the window."""
    models: dict[str, dict[str, float]] = {}
    for (name, labels), value in after.items():
        if name not in COUNTERS:
            continue
        model = dict(labels).get("model", "?")
        models.setdefault(model, {})[name] = value - before.get((name, labels), 0.0)
    figures: dict[str, dict[str, float]] = {}
    for model, deltas in sorted(models.items()):
        done = deltas.get("nv_inference_request_success", 0.0)
        row: dict[str, float] = {
            "requests": done,
            "failures": deltas.get("nv_inference_request_failure", 0.0),
        }
        for name, key in COUNTERS.items():
            if key.endswith("_ms") and name in deltas:
                row[key] = deltas[name] / done / 1000 if done else 0.0
        peaks = [
            v
            for s in [before, *samples, after]
            for (n, lb), v in s.items()
            if n == PENDING and dict(lb).get("model") == model
        ]
        if peaks:
            row["pending_max"] = max(peaks)
        if any(row.get(k) for k in ("requests", "failures", "pending_max")):
            figures[model] = row
    trt: dict[str, dict[str, float]] = {}
    for series, value in sorted(after.items()):
        if series[0].startswith(TRT_LLM_PREFIXES):
            seen = [s[series] for s in [before, *samples, after] if series in s]
            trt[series_name(series)] = {"before": before.get(series, value), "after": value, "max": max(seen)}
    out = {"models": figures, "trt_llm": trt, "trt_llm_exported": bool(trt)}
    if trt:
        out["trt_llm_summary"] = _trt_llm_summary(before, after, samples)
    return out


def _trt_llm_summary(
    before: dict[Series, float], after: dict[Series, float], samples: list[dict[Series, float]]
) -> dict[str, float]:
    """Peak waiting requests and KV-cache fraction (summed over models), and the mean input and
    output tokens of the requests that ended in the window (histogram sum / count deltas)."""
    out: dict[str, float] = {}
    for key, (family, label, category) in {"waiting_max": WAITING, "kv_fraction_max": KV_FRACTION}.items():
        peaks = [
            sum(v for (n, lb), v in s.items() if n == family and dict(lb).get(label) == category)
            for s in [before, *samples, after]
            if any(n == family for n, _ in s)
        ]
        if peaks:
            out[key] = max(peaks)
    for key, family in TOKEN_LEN.items():
        total = [sum(v - before.get((n, lb), 0.0) for (n, lb), v in after.items() if n == f"{family}_{part}")
                 for part in ("sum", "count")]  # fmt: skip
        if total[1] > 0:
            out[key] = total[0] / total[1]
    return out


class MetricsWindow:
    """Scrapes ``url`` at ``start()``, every ``interval`` seconds in a thread, and at ``stop()``.

    A server without a metrics endpoint gives ``{"error": ...}`` and never fails the run.
    """

    def __init__(self, url: str | None, *, interval: float = 1.0, timeout: float = 5.0) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self._before: dict[Series, float] | None = None
        self._samples: list[dict[Series, float]] = []
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _try(self) -> dict[Series, float] | None:
        if self.url is None:
            return None
        try:
            return scrape(self.url, timeout=self.timeout)
        except (OSError, urllib.error.URLError, ValueError) as e:
            self._error = f"cannot scrape {self.url}: {e}"
            return None

    def start(self) -> None:
        self._before = self._try()
        if self._before is None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="metrics-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            sample = self._try()
            if sample is not None:
                self._samples.append(sample)

    def stop(self) -> dict[str, Any]:
        """The window's figures (see :func:`window_figures`), or ``{"error": ...}``."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self.url is None:
            return {"error": "metrics disabled (--metrics-url none)"}
        after = self._try() if self._before is not None else None
        if self._before is None or after is None:
            return {"error": self._error or "no metrics"}
        return {"url": self.url, **window_figures(self._before, after, self._samples)}
