"""The CPU ``tensorrt_llm`` model exports TensorRT-LLM 1.2's metric families on the real Triton.

Every family, type, help text, label set and category value on Triton's /metrics equals the
``metrics`` key of the facts file (``tensorrtllm_backend_1_2.json``, read from the 1.2 backend's
``custom_metrics_reporter.cc``), histograms with their buckets; and under load the waiting
request count rises above 0 and falls back to 0 once the load is served.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from importlib import resources
from typing import Any

from tests.serve import _clients as c

FACTS = json.loads(
    resources.files("triton_llm.repository").joinpath("tensorrtllm_backend_1_2.json").read_text()
)
METRICS = FACTS["metrics"]
FAMILIES = METRICS["families"]
MODEL = "tensorrt_llm"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# The issue's table (issue 12), which the facts file must carry as upstream spells it.
ISSUE_TABLE = {
    "nv_trt_llm_request_metrics": (
        "gauge",
        "request_type",
        {"active", "max", "scheduled", "context", "waiting"},
    ),
    "nv_trt_llm_kv_cache_block_metrics": (
        "gauge",
        "kv_cache_block_type",
        {"max", "free", "used", "tokens_per", "reused", "fraction"},
    ),
    "nv_trt_llm_inflight_batcher_metrics": (
        "gauge",
        "inflight_batcher_specific_metric",
        {"total_context_tokens", "generation_requests", "micro_batch_id", "paused_requests"},
    ),
    "nv_trt_llm_general_metrics": ("gauge", "general_type", {"timestamp", "iteration_counter"}),
}


class Exposition:
    """Triton's /metrics text: types, help texts and samples per family."""

    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self.help: dict[str, str] = {}
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                name, kind = line[len("# TYPE ") :].split(" ", 1)
                self.types[name] = kind
            elif line.startswith("# HELP "):
                name, _, text_ = line[len("# HELP ") :].partition(" ")
                self.help[name] = text_
            elif line and not line.startswith("#"):
                m = _SAMPLE.match(line)
                assert m, f"unparsable /metrics line: {line!r}"
                self.samples.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))

    def series(self, name: str, model: str = MODEL) -> list[tuple[str, dict[str, str], float]]:
        """Samples of family ``name`` (histogram parts included) for ``model``."""
        parts = {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        return [(n, ls, v) for n, ls, v in self.samples if n in parts and ls.get("model") == model]

    def value(self, name: str, category: str) -> float:
        label = next(spec["category_label"] for spec in FAMILIES.values() if spec["name"] == name)
        found = [v for n, ls, v in self.series(name) if n == name and ls.get(label) == category]
        assert len(found) == 1, (name, category, found)
        return found[0]


def exposition(server: Any) -> Exposition:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=5) as r:
        return Exposition(r.read().decode())


def test_the_facts_file_carries_the_issue_table_and_both_histograms() -> None:
    by_name = {spec["name"]: spec for spec in FAMILIES.values()}
    for name, (kind, label, values) in ISSUE_TABLE.items():
        spec = by_name[name]
        assert (spec["kind"], spec["category_label"], set(spec["categories"])) == (kind, label, values)
    for name in ("nv_llm_input_token_len", "nv_llm_output_token_len"):
        assert by_name[name]["kind"] == "histogram"
        assert by_name[name]["buckets"] == [10.0, 50.0, 100.0, 500.0, 1000.0]
    assert METRICS["labels"]["every_series"] == ["model", "version"]
    for spec in FAMILIES.values():
        assert spec["labels"] == ["model", "version"] and spec["source"], spec["name"]


def test_every_family_type_label_and_value_on_metrics_equals_the_facts_file(triton_server: Any) -> None:
    # one finished request, so the histograms have an observation and every family has its series
    arrays = c.token_inputs([1, 2, 3, 4, 5], 3)
    assert c.grpc_stream(triton_server.grpc_url, MODEL, arrays, output="output_ids").error is None
    time.sleep(0.3)  # > stats_check_period_ms
    got = exposition(triton_server)
    for key, spec in FAMILIES.items():
        name, label = spec["name"], spec["category_label"]
        assert got.types.get(name) == spec["kind"], key
        assert got.help.get(name) == spec["help"], key
        series = got.series(name)
        assert series, f"{name} is not exported for {MODEL}"
        for part, labels, _ in series:
            extra = {"le"} if part == f"{name}_bucket" else set()
            assert set(labels) == {"model", "version", label} | extra, (name, labels)
            assert labels["version"] == "1"
        categories = {labels[label] for _, labels, _ in series}
        if "categories" in spec:
            assert categories == set(spec["categories"]), name
        if spec["kind"] == "histogram":
            les = sorted({float(ls["le"]) for n, ls, _ in series if n == f"{name}_bucket"})
            assert les == [*spec["buckets"], float("inf")], name
    # every nv_trt_llm_* / nv_llm_* family the model exports is in the facts file
    exported = {n for n in got.types if n.startswith(("nv_trt_llm_", "nv_llm_")) and got.series(n)}
    assert exported == {spec["name"] for spec in FAMILIES.values()}


def test_waiting_rises_under_load_then_falls_back_to_zero(triton_server: Any) -> None:
    """16 streams on 8 KV slots: 8 wait, the KV fraction reaches 1, then all return to 0."""
    before = exposition(triton_server)
    hist_before = _histogram(before, "nv_llm_output_token_len")
    iterations_before = before.value("nv_trt_llm_general_metrics", "iteration_counter")
    max_slots = int(before.value("nv_trt_llm_request_metrics", "max"))
    streams, tokens = 2 * max_slots, 24
    samples: list[Exposition] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(exposition(triton_server))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    results: list[Any] = [None] * streams

    def run(i: int) -> None:
        results[i] = c.grpc_stream(
            triton_server.grpc_url, MODEL, c.token_inputs([1, 2, 3, 4, 5 + i], tokens), output="output_ids"
        )

    clients = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    try:
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=300)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and exposition(triton_server).value(
            "nv_trt_llm_request_metrics", "active"
        ):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        sampler.join()
    assert all(r is not None and r.error is None for r in results), [r.error for r in results if r]
    waiting = [s.value("nv_trt_llm_request_metrics", "waiting") for s in samples]
    fraction = [s.value("nv_trt_llm_kv_cache_block_metrics", "fraction") for s in samples]
    assert max(waiting) >= max_slots // 2, f"the waiting count never rose: {waiting}"
    assert max(fraction) == 1.0, fraction
    after = exposition(triton_server)
    assert after.value("nv_trt_llm_request_metrics", "waiting") == 0
    assert after.value("nv_trt_llm_request_metrics", "active") == 0
    assert after.value("nv_trt_llm_kv_cache_block_metrics", "used") == 0
    assert after.value("nv_trt_llm_kv_cache_block_metrics", "free") == max_slots
    assert after.value("nv_trt_llm_general_metrics", "iteration_counter") >= iterations_before + tokens
    hist_after = _histogram(after, "nv_llm_output_token_len")
    assert hist_after["count"] - hist_before["count"] == streams
    assert hist_after["sum"] - hist_before["sum"] == streams * tokens
    # 24 tokens fall in the le=50 bucket and above, not in le=10
    assert hist_after[50.0] - hist_before[50.0] == streams
    assert hist_after[10.0] - hist_before[10.0] == 0


def _histogram(got: Exposition, name: str) -> dict[Any, float]:
    out: dict[Any, float] = defaultdict(float)
    for n, labels, value in got.series(name):
        if n == f"{name}_bucket":
            out[float(labels["le"])] = value
        elif n == f"{name}_sum":
            out["sum"] = value
        elif n == f"{name}_count":
            out["count"] = value
    return out
