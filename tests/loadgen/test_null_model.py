"""``triton-llm bench`` against a real Triton serving the null model, whose timing is known.

The null model answers 50 ms after a request arrives and then every 10 ms, so measured TTFT
and ITL must sit just above those values; the allowances cover Triton, the python backend
and a shared 2-core machine, not the tool's arithmetic (a wrong ITL divisor or a TTFT taken
from the wrong response would be off by a whole 10 ms step or more).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.loadgen.conftest import ITL_MS, TTFT_MS
from triton_llm.bench.load import poisson_arrivals
from triton_llm.cli import main

TOKENS = 8


def _prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"text": f"prompt {i}"}) + "\n" for i in range(5)))
    return path


def _bench(server: Any, tmp_path: Path, *args: str, protocol: str = "grpc") -> tuple[int, dict]:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    out = tmp_path / "out"
    code = main(
        [
            "bench",
            "--protocol", protocol,
            "--url", url,
            "--model", "null_llm",
            "--prompts", str(_prompts(tmp_path)),
            "--max-tokens", str(TOKENS),
            "--metrics-url", f"http://127.0.0.1:{server.metrics_port}/metrics",
            "--out", str(out),
            *args,
        ]
    )  # fmt: skip
    return code, json.loads((out / "bench.json").read_text())


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_known_ttft_and_itl(
    protocol: str, null_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, run = _bench(null_server, tmp_path, "--concurrency", "1,4", "--requests", "16", protocol=protocol)
    assert code == 0
    assert [s["step"]["concurrency"] for s in run["steps"]] == [1, 4]
    for step in run["steps"]:
        summary, requests = step["summary"], step["requests"]
        assert summary["completed"] == 16 and summary["errors"] == {}
        assert len(requests) == 16
        assert all(r["output_tokens"] == TOKENS and len(r["chunks"]) == TOKENS for r in requests)
        ttft, itl = summary["latency"]["ttft"], summary["latency"]["itl"]
        assert TTFT_MS / 1000 <= ttft["p50"] <= (TTFT_MS + 15) / 1000, ttft
        assert (ITL_MS - 0.5) / 1000 <= itl["p50"] <= (ITL_MS + 2) / 1000, itl
        e2e = summary["latency"]["e2e"]["p50"]
        assert e2e == pytest.approx(ttft["p50"] + (TOKENS - 1) * itl["p50"], abs=0.01)
        # the server's own count of the window's requests, from /metrics
        assert summary["server"]["models"]["null_llm"]["requests"] == 16
        assert summary["server"]["trt_llm_exported"] is False
        assert summary["output_tokens_per_s"] == pytest.approx(16 * TOKENS / summary["window"])
    out = capsys.readouterr().out
    assert "ttft_p99" in out and "c=4" in out and "no nv_trt_llm_* metrics" in out


def test_outputs_parse(null_server: Any, tmp_path: Path) -> None:
    code, run = _bench(null_server, tmp_path, "--concurrency", "2", "--requests", "6")
    assert code == 0
    record = run["steps"][0]["requests"][0]
    assert set(record) >= {"start", "end", "chunks", "ttft", "itl", "e2e", "output_tokens", "error"}
    assert record["end"] > record["chunks"][-1][0] - 1e-9 > record["start"] >= 0
    png = tmp_path / "out" / "bench.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(png).shape
    assert width > height > 300
    assert not list((tmp_path / "out").glob("*.incomplete*"))


def test_slo_exit_codes(null_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, run = _bench(
        null_server, tmp_path, "--concurrency", "1,4", "--requests", "8", "--slo", "ttft_p99=2s"
    )
    assert code == 0
    assert "highest load that meets it: c=4" in capsys.readouterr().out
    assert all(s["summary"]["good"] == 8 for s in run["steps"])
    # nothing can answer faster than the model's 50 ms
    code, run = _bench(
        null_server, tmp_path, "--concurrency", "1,4", "--requests", "8", "--slo", "ttft_p50=20ms"
    )
    assert code == 1
    assert "no step met it" in capsys.readouterr().out
    assert all(s["summary"]["good"] == 0 and s["summary"]["slo_met"] is False for s in run["steps"])


def test_poisson_rate_sends_on_schedule(null_server: Any, tmp_path: Path) -> None:
    rate, n = 20.0, 40
    code, run = _bench(
        null_server, tmp_path, "--request-rate", str(rate), "--requests", str(n), "--seed", "3"
    )
    assert code == 0
    step = run["steps"][0]
    requests = step["requests"]
    plan = poisson_arrivals(rate, count=n, seed=3)  # step 0 uses seed + 0
    scheduled = [r["scheduled"] - requests[0]["scheduled"] for r in requests]
    assert scheduled == pytest.approx(plan, abs=1e-9)
    # sends follow the schedule; a loaded client machine shows up as send lag in the report
    lags = [r["start"] - r["scheduled"] for r in requests]
    assert min(lags) >= 0
    assert step["summary"]["send_lag"]["p50"] < 0.005
    assert step["summary"]["send_lag"]["max"] == pytest.approx(max(lags))
    # open loop: at 20/s with 120 ms requests, several are in flight at once
    in_flight = max(sum(r["start"] <= q["start"] < r["end"] for r in requests) for q in requests)
    assert in_flight >= 3


def test_errors_by_kind_and_exit_1(null_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    prompts = tmp_path / "fail.jsonl"
    prompts.write_text('{"text": "!fail"}\n')
    # gRPC carries the model's error in the stream; Triton's generate_stream answers it with HTTP 400
    for protocol, kind in (("grpc", "server_error"), ("http", "rejected")):
        url = null_server.grpc_url if protocol == "grpc" else null_server.http_url
        code = main(
            ["bench", "--protocol", protocol, "--url", url, "--model", "null_llm", "--prompts", str(prompts),
             "--requests", "3", "--metrics-url", "none", "--out", str(tmp_path / protocol), "--no-plot"]
        )  # fmt: skip
        assert code == 1
        run = json.loads((tmp_path / protocol / "bench.json").read_text())
        assert run["steps"][0]["summary"]["errors"] == {kind: 3}
        assert "asked to fail" in run["steps"][0]["requests"][0]["error_message"]
        assert "no request succeeded" in capsys.readouterr().err


def test_unknown_model_is_a_clear_error(
    null_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(
        ["bench", "--url", null_server.grpc_url, "--model", "nope", "--prompts", str(_prompts(tmp_path))]
    )
    assert code == 1
    assert "nope" in capsys.readouterr().err
