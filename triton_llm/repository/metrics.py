"""Triton custom metrics of the CPU ``tensorrt_llm`` model, named as TensorRT-LLM 1.2 names them.

Every family's name, kind, help text and labels come from the ``metrics`` table in
``tensorrtllm_backend_1_2.json`` (upstream's ``custom_metrics_reporter.cc`` for the
``nv_trt_llm_*`` families it reports; our additions say so). To report another upstream
family (e.g. ``nv_trt_llm_kv_cache_block_metrics``), add its entry to that table and set it
in :meth:`RuntimeMetrics.update`. Metrics go through the python backend's custom metrics API
(``pb_utils.MetricFamily``), so Triton serves them on its /metrics port with its own.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

from triton_llm.runtime import RuntimeStats

FACTS_FILE = "tensorrtllm_backend_1_2.json"


@functools.cache
def cancellation_facts() -> dict[str, Any]:
    """The ``cancellation`` section of the facts file (parsed once; treat as read-only)."""
    text = importlib.resources.files(__package__).joinpath(FACTS_FILE).read_text()
    return dict(json.loads(text)["cancellation"])


def metric_spec(key: str) -> dict[str, Any]:
    """One family's entry (name, kind, help, category_label, labels) from the facts table."""
    return dict(cancellation_facts()["metrics"][key])


def backend_default(parameter: str) -> int:
    """The 1.2 backend's default for ``cancellation_check_period_ms`` / ``stats_check_period_ms``."""
    return int(cancellation_facts()["tensorrtllm_backend_1_2"][parameter]["default"])


class _Family:
    """One metric family with a metric per category, labelled model/version like upstream's."""

    def __init__(self, pb: Any, spec: dict[str, Any], labels: dict[str, str]) -> None:
        kinds = {"gauge": pb.MetricFamily.GAUGE, "counter": pb.MetricFamily.COUNTER}
        self.spec = spec
        self._family = pb.MetricFamily(name=spec["name"], description=spec["help"], kind=kinds[spec["kind"]])
        self._labels = labels
        self._metrics: dict[str, Any] = {}

    def metric(self, category: str) -> Any:
        if category not in self._metrics:
            labels = {**self._labels, self.spec["category_label"]: category}
            self._metrics[category] = self._family.Metric(labels=labels)
        return self._metrics[category]


class RuntimeMetrics:
    """The CPU runtime's load and cancellations, as Triton metrics.

    Args:
        pb: ``triton_python_backend_utils``.
        model: the Triton model name (label ``model``).
        version: the model version (label ``version``).
    """

    def __init__(self, pb: Any, *, model: str, version: str) -> None:
        labels = {"model": model, "version": version}
        self._requests = _Family(pb, metric_spec("request_metrics"), labels)
        self._cancelled = _Family(pb, metric_spec("cancelled_requests"), labels)
        self._rank_slots = _Family(pb, metric_spec("rank_slots"), labels)
        for reason in self._cancelled.spec["categories"]:
            self._cancelled.metric(reason)  # exported as 0 from the start

    def cancelled(self, reason: str) -> None:
        """Count one request the runtime stopped early.

        Raises:
            ValueError: ``reason`` is not a category of the family.
        """
        if reason not in self._cancelled.spec["categories"]:
            raise ValueError(f"unknown cancellation reason {reason!r}")
        self._cancelled.metric(reason).increment(1)

    def update(self, stats: RuntimeStats) -> None:
        """Set the gauges from a runtime snapshot."""
        values = {
            "active": stats.active,
            "max": stats.max_batch_size,
            "scheduled": stats.running,
            "context": stats.context,
            "waiting": stats.queued,
        }
        for category, value in values.items():
            self._requests.metric(category).set(float(value))
        for rank, slots in enumerate(stats.rank_slots):
            self._rank_slots.metric(str(rank)).set(float(slots))
