"""Pure parts of ``triton-llm bench``: schedules, lengths, SLO bounds, statistics, /metrics."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from triton_llm.bench.load import Step, parse_positive_list, plan_steps, poisson_arrivals
from triton_llm.bench.metrics import parse_prometheus, series_name, window_figures
from triton_llm.bench.prompts import LengthDist, parse_length
from triton_llm.bench.records import RequestRecord
from triton_llm.bench.slo import Bound, apply_slo, highest_passing, parse_slo, request_is_good
from triton_llm.bench.stats import percentile, summarize_step
from triton_llm.errors import UsageError


def test_poisson_gaps_are_exponential_with_the_requested_rate() -> None:
    rate = 20.0
    times = poisson_arrivals(rate, count=20000, seed=7)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0.0 and len(times) == 20000
    assert statistics.mean(gaps) == pytest.approx(1 / rate, rel=0.03)
    # exponential: standard deviation equals the mean, P(gap < mean) = 1 - 1/e, no memory
    assert statistics.pstdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, abs=0.03)
    assert sum(g < 1 / rate for g in gaps) / len(gaps) == pytest.approx(1 - math.exp(-1), abs=0.01)
    late = [g for g in gaps if g > 1 / rate]
    assert statistics.mean(late) - 1 / rate == pytest.approx(1 / rate, rel=0.05)
    # counts per 1 s window are Poisson(rate): variance equals the mean
    counts = [0] * int(times[-1])
    for t in times:
        if int(t) < len(counts):
            counts[int(t)] += 1
    assert statistics.mean(counts) == pytest.approx(rate, rel=0.03)
    assert statistics.pvariance(counts) == pytest.approx(rate, rel=0.15)


def test_poisson_duration_and_seed() -> None:
    times = poisson_arrivals(5.0, duration=100.0, seed=1)
    assert all(t < 100.0 for t in times)
    assert len(times) == pytest.approx(500, rel=0.15)
    assert times == poisson_arrivals(5.0, duration=100.0, seed=1)
    assert times != poisson_arrivals(5.0, duration=100.0, seed=2)


def test_plan_steps() -> None:
    assert plan_steps(concurrency=[1, 4], requests=10) == [Step(1, None, 10), Step(4, None, 10)]
    assert [s.label for s in plan_steps(rates=[0.5, 2], duration=30)] == ["rate=0.5/s", "rate=2/s"]
    assert plan_steps(requests=3) == [Step(concurrency=1, requests=3)]


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"concurrency": [1], "rates": [1.0], "requests": 1}, "--request-rate"),
        ({"concurrency": [1], "requests": 1, "duration": 1.0}, "--duration"),
        ({"concurrency": [1]}, "--requests"),
        ({"concurrency": [1], "requests": 0}, "--requests"),
        ({"concurrency": [1], "duration": 0.0}, "--duration"),
    ],
)
def test_plan_steps_rejects(kwargs: dict, flag: str) -> None:
    with pytest.raises(UsageError) as e:
        plan_steps(**kwargs)
    assert e.value.field == flag and flag in str(e.value)


def test_positive_lists() -> None:
    assert parse_positive_list("1, 2,16", flag="--concurrency") == [1, 2, 16]
    assert parse_positive_list("0.5,2", flag="--request-rate", kind=float) == [0.5, 2.0]
    for bad in ("0", "1,,2", "a", "-1", "1.5"):
        with pytest.raises(UsageError, match="--concurrency"):
            parse_positive_list(bad, flag="--concurrency")


def test_lengths() -> None:
    rng = random.Random(0)
    assert parse_length("64", flag="--max-tokens") == LengthDist("fixed", 64)
    uniform = parse_length("uniform:10,20", flag="--max-tokens")
    assert {uniform.sample(rng) for _ in range(500)} == set(range(10, 21))
    normal = parse_length("normal:100,10", flag="--max-tokens")
    values = [normal.sample(rng) for _ in range(4000)]
    assert statistics.mean(values) == pytest.approx(100, abs=1)
    assert statistics.pstdev(values) == pytest.approx(10, abs=0.7)
    assert min(parse_length("normal:1,50", flag="-x").sample(rng) for _ in range(200)) >= 1
    for bad in ("0", "uniform:5,2", "normal:5", "64,2", "poisson:3,1", "", "x"):
        with pytest.raises(UsageError, match="--max-tokens"):
            parse_length(bad, flag="--max-tokens")


def test_slo_parsing() -> None:
    assert parse_slo("ttft_p99=200ms, itl_p50=0.05s,e2e_p90=1500") == [
        Bound("ttft", 99, 0.2),
        Bound("itl", 50, 0.05),
        Bound("e2e", 90, 1.5),
    ]
    for bad in (
        "ttft_p95=1",
        "tpot_p99=1",
        "ttft=1",
        "ttft_p99=fast",
        "ttft_p99=0",
        "ttft_p99=1,ttft_p99=2",
        "",
    ):
        with pytest.raises(UsageError, match="--slo"):
            parse_slo(bad)


def test_percentile_matches_linear_interpolation() -> None:
    import numpy as np

    values = [random.Random(3).random() for _ in range(101)] + [5.0, 0.0]
    for q in (0, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(percentile([], 50))


def _record(index: int, ttft: float, itl: float, tokens: int, *, error: str | None = None) -> RequestRecord:
    r = RequestRecord(step=0, index=index, start=10.0 + index)
    if error:
        r.error = error
        return r
    for k in range(tokens):
        r.add_chunk(r.start + ttft + k * itl, 1)
    r.end = r.start + ttft + (tokens - 1) * itl + 0.001
    return r


def test_record_latencies() -> None:
    r = _record(0, 0.05, 0.01, 9)
    assert r.ttft == pytest.approx(0.05)
    assert r.itl == pytest.approx(0.01)
    assert r.e2e == pytest.approx(0.131)
    bundled = RequestRecord(step=0, index=0, start=0.0)
    bundled.add_chunk(0.1, 3)  # a first response with 3 tokens: ITL divides by the 4 that came after it
    bundled.add_chunk(0.2, 4)
    assert bundled.itl == pytest.approx(0.1 / 4)
    assert _record(0, 0.05, 0.01, 1).itl is None


def test_step_summary_and_slo() -> None:
    records = [_record(i, 0.05 + 0.01 * i, 0.01, 10) for i in range(10)] + [
        _record(10, 0, 0, 0, error="timeout")
    ]
    s = summarize_step(0, "c=4", 4, records)
    assert (s.requests, s.completed, s.errors) == (11, 10, {"timeout": 1})
    assert s.latency["ttft"].p50 == pytest.approx(0.095)
    assert s.latency["ttft"].p99 == pytest.approx(0.05 + 0.01 * 8.91)
    assert s.output_tokens == 100
    assert s.window == pytest.approx(max(r.end for r in records if r.end) - 10.0)
    assert s.output_tokens_per_s == pytest.approx(100 / s.window)
    bounds = parse_slo("ttft_p50=100ms")
    assert request_is_good(records[0], bounds) and not request_is_good(records[9], bounds)
    apply_slo(s, records, bounds)
    assert s.good == 6 and s.slo_met is False  # a step with errors never meets the SLO
    clean = summarize_step(1, "c=1", 1, records[:10])
    apply_slo(clean, records[:10], bounds)
    assert clean.slo_met is True
    assert highest_passing([clean, s]) is clean
    assert highest_passing([s]) is None


METRICS_BEFORE = """# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="ensemble",version="1"} 10
nv_inference_request_success{model="tensorrt_llm",version="1"} 10
nv_inference_queue_duration_us{model="tensorrt_llm",version="1"} 1000
nv_inference_compute_infer_duration_us{model="tensorrt_llm",version="1"} 50000
nv_inference_pending_request_count{model="tensorrt_llm",version="1"} 0
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 0
"""
METRICS_AFTER = (
    METRICS_BEFORE.replace("} 10\n", "} 30\n").replace("} 1000", "} 41000").replace("} 50000", "} 2050000")
)


def test_prometheus_parse_and_window() -> None:
    before, after = parse_prometheus(METRICS_BEFORE), parse_prometheus(METRICS_AFTER)
    key = (
        "nv_trt_llm_request_metrics",
        (("model", "tensorrt_llm"), ("request_type", "active"), ("version", "1")),
    )
    assert before[key] == 0
    assert series_name(key) == "nv_trt_llm_request_metrics{model=tensorrt_llm,request_type=active}"
    during = parse_prometheus(METRICS_BEFORE.replace('active",version="1"} 0', 'active",version="1"} 7'))
    pending = 'nv_inference_pending_request_count{model="tensorrt_llm",version="1"} 3'
    during.update(parse_prometheus(pending))
    fig = window_figures(before, after, [during])
    trt = fig["models"]["tensorrt_llm"]
    assert trt["requests"] == 20
    assert trt["queue_ms"] == pytest.approx(2.0)  # 40 ms of queueing over 20 requests
    assert trt["compute_infer_ms"] == pytest.approx(100.0)
    assert trt["pending_max"] == 3
    assert fig["models"]["ensemble"]["requests"] == 20
    assert fig["trt_llm"]["nv_trt_llm_request_metrics{model=tensorrt_llm,request_type=active}"]["max"] == 7
    bare = window_figures(
        parse_prometheus("nv_gpu_utilization 0\n"), parse_prometheus("nv_gpu_utilization 1\n"), []
    )
    assert bare == {"models": {}, "trt_llm": {}, "trt_llm_exported": False}


def _trt_text(waiting: float, fraction: float, out_sum: float, in_sum: float, count: float) -> str:
    """A CPU-model /metrics excerpt with the given values (labels as the model exports them)."""
    m = 'model="tensorrt_llm",version="1"'
    out, inp = 'response_metric_type="total_output_tokens"', 'response_metric_type="total_input_tokens"'
    return "\n".join(
        [
            f'nv_trt_llm_request_metrics{{{m},request_type="waiting"}} {waiting}',
            f'nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="fraction",{m}}} {fraction}',
            f'nv_llm_output_token_len_bucket{{le="10",{m},{out}}} {count}',
            f"nv_llm_output_token_len_sum{{{m},{out}}} {out_sum}",
            f"nv_llm_output_token_len_count{{{m},{out}}} {count}",
            f"nv_llm_input_token_len_sum{{{m},{inp}}} {in_sum}",
            f"nv_llm_input_token_len_count{{{m},{inp}}} {count}",
        ]
    )


def test_the_window_summarises_the_tensorrt_llm_families() -> None:
    """Peak waiting and KV fraction from the samples; mean token lengths of the window's requests."""
    before = parse_prometheus(_trt_text(0, 0, 8, 5, 1))
    during = parse_prometheus(_trt_text(6, 0.75, 8, 5, 1))
    after = parse_prometheus(_trt_text(0, 0, 248, 205, 11))
    fig = window_figures(before, after, [during])
    assert (
        "nv_llm_output_token_len_sum{model=tensorrt_llm,response_metric_type=total_output_tokens}"
        in fig["trt_llm"]
    )
    assert fig["trt_llm_summary"] == {
        "waiting_max": 6,
        "kv_fraction_max": 0.75,
        "input_tokens_mean": 20.0,
        "output_tokens_mean": 24.0,
    }
