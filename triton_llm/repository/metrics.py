"""Triton custom metrics of the CPU ``tensorrt_llm`` model, named as TensorRT-LLM 1.2 names them.

Every family's name, kind, help text, labels and buckets come from the ``metrics`` key of
``tensorrtllm_backend_1_2.json``: the eight families upstream's ``custom_metrics_reporter.cc``
creates, plus our additions (which say so). How the CPU runtime's state maps onto each
upstream value is in that key's ``cpu_twin`` notes. Metrics go through the python backend's
custom metrics API (``pb_utils.MetricFamily``), so Triton serves them on its /metrics port.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import threading
import time
from collections import Counter
from typing import Any

from triton_llm.runtime import RuntimeStats

FACTS_FILE = "tensorrtllm_backend_1_2.json"


@functools.cache
def _facts() -> dict[str, Any]:
    text = importlib.resources.files(__package__).joinpath(FACTS_FILE).read_text()
    return dict(json.loads(text))


def cancellation_facts() -> dict[str, Any]:
    """The ``cancellation`` section of the facts file (parsed once; treat as read-only)."""
    return dict(_facts()["cancellation"])


def metrics_facts() -> dict[str, Any]:
    """The ``metrics`` section of the facts file (parsed once; treat as read-only)."""
    return dict(_facts()["metrics"])


def metric_spec(key: str) -> dict[str, Any]:
    """One family's entry (name, kind, help, category_label, categories, labels[, buckets])."""
    return dict(metrics_facts()["families"][key])


def backend_default(parameter: str) -> int:
    """The 1.2 backend's default for ``cancellation_check_period_ms`` / ``stats_check_period_ms``."""
    return int(cancellation_facts()["tensorrtllm_backend_1_2"][parameter]["default"])


def _rss_bytes() -> int:
    """Resident set size of this process (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _Family:
    """One metric family with a metric per category, labelled model/version like upstream's."""

    def __init__(self, pb: Any, spec: dict[str, Any], labels: dict[str, str]) -> None:
        kinds = {
            "gauge": pb.MetricFamily.GAUGE,
            "counter": pb.MetricFamily.COUNTER,
            "histogram": pb.MetricFamily.HISTOGRAM,
        }
        self.spec = spec
        self._family = pb.MetricFamily(name=spec["name"], description=spec["help"], kind=kinds[spec["kind"]])
        self._labels = labels
        self._metrics: dict[str, Any] = {}
        for category in spec.get("categories", {}):
            self.metric(category)  # exported from the start, as upstream creates every metric up front

    def metric(self, category: str) -> Any:
        if category not in self._metrics:
            labels = {**self._labels, self.spec["category_label"]: category}
            buckets = self.spec.get("buckets")
            if buckets is None:
                self._metrics[category] = self._family.Metric(labels=labels)
            else:
                self._metrics[category] = self._family.Metric(labels=labels, buckets=list(buckets))
        return self._metrics[category]

    def set(self, values: dict[str, float]) -> None:
        for category, value in values.items():
            self.metric(category).set(float(value))


class RuntimeMetrics:
    """The CPU runtime's load, KV slots, token lengths and cancellations, as Triton metrics.

    Every metric call is an IPC round trip to the server, made from one thread only: the one
    that calls :meth:`update` (the stats poller). :meth:`cancelled` and :meth:`finished` only
    record, from any thread, and :meth:`update` reports them. Metric calls from several threads
    at once crashed Triton 2.51 (segfault / bad_alloc in libtriton_python) under 200 cancelling
    clients (tests/faults/test_cancel_storm.py).

    Args:
        pb: ``triton_python_backend_utils``.
        model: the Triton model name (label ``model``).
        version: the model version (label ``version``).
    """

    def __init__(self, pb: Any, *, model: str, version: str) -> None:
        labels = {"model": model, "version": version}
        self._families = {key: _Family(pb, metric_spec(key), labels) for key in metrics_facts()["families"]}
        self._lock = threading.Lock()
        self._cancelled: Counter[str] = Counter()
        self._lengths: list[tuple[int, int]] = []

    def _family(self, key: str) -> _Family:
        return self._families[key]

    def cancelled(self, reason: str) -> None:
        """Count one request the runtime stopped early.

        Raises:
            ValueError: ``reason`` is not a category of the family.
        """
        if reason not in self._family("cancelled_requests").spec["categories"]:
            raise ValueError(f"unknown cancellation reason {reason!r}")
        with self._lock:
            self._cancelled[reason] += 1

    def finished(self, *, input_tokens: int, output_tokens: int) -> None:
        """Record one ended request's lengths (TensorRT-LLM's reportCustomMetrics), for :meth:`update`."""
        with self._lock:
            self._lengths.append((input_tokens, output_tokens))

    def _report_recorded(self) -> None:
        with self._lock:
            cancelled, self._cancelled = self._cancelled, Counter()
            lengths, self._lengths = self._lengths, []
        family = self._family("cancelled_requests")
        for reason, count in cancelled.items():
            family.metric(reason).increment(float(count))
        inputs = self._family("input_token_len").metric("total_input_tokens")
        outputs = self._family("output_token_len").metric("total_output_tokens")
        for input_tokens, output_tokens in lengths:
            inputs.observe(float(input_tokens))
            outputs.observe(float(output_tokens))

    def update(self, stats: RuntimeStats) -> None:
        """Report what was recorded, then set the gauges from a runtime snapshot (the facts
        file's ``cpu_twin`` notes). Call it from one thread only."""
        self._report_recorded()
        self._family("request_metrics").set(
            {
                "active": stats.active,
                "max": stats.max_batch_size,
                "scheduled": stats.running,
                "context": stats.context,
                "waiting": stats.active - stats.running,
            }
        )
        slots, used = stats.max_batch_size, stats.running
        self._family("kv_cache_block_metrics").set(
            {
                "max": slots,
                "free": slots - used,
                "used": used,
                "tokens_per": stats.tokens_per_slot,
                "reused": 0,
                "fraction": used / slots if slots > 0 else 0.0,
            }
        )
        self._family("inflight_batcher_metrics").set(
            {
                "total_context_tokens": stats.context_tokens,
                "generation_requests": stats.generation,
                "micro_batch_id": 0,
                "paused_requests": 0,
            }
        )
        self._family("general_metrics").set(
            {
                "timestamp": stats.step_end_us or time.time_ns() // 1000,
                "iteration_counter": stats.iteration,
            }
        )
        self._family("runtime_memory_metrics").set({"cpu": _rss_bytes(), "gpu": 0, "pinned": 0})
        rank_slots = self._family("rank_slots")
        for rank, count in enumerate(stats.rank_slots):
            rank_slots.metric(str(rank)).set(float(count))
