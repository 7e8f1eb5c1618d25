"""The tritonserver command line serves what the shipped dashboard reads."""

from __future__ import annotations

import json
from pathlib import Path

from triton_llm.launch.tritonserver import TritonInstall, tritonserver_argv

DASHBOARD = Path(__file__).resolve().parents[2] / "helm" / "triton-llm" / "dashboards" / "triton-llm.json"
INSTALL = TritonInstall(
    binary=Path("/opt/tritonserver/bin/tritonserver"), backend_dir=Path("/b"), root=Path("/")
)


def test_rank0_enables_the_latency_histograms_the_dashboard_reads() -> None:
    # Triton >= 2.52 exports nv_inference_first_response_histogram_ms only with this metrics
    # config; 2.51 (the CPU twin's) accepts and ignores the key.
    assert "nv_inference_first_response_histogram_ms" in DASHBOARD.read_text()
    json.loads(DASHBOARD.read_text())
    rank0 = tritonserver_argv(INSTALL, model_repo=Path("/repo"))
    assert "--metrics-config=histogram_latencies=true" in rank0
    worker = tritonserver_argv(INSTALL, model_repo=Path("/repo"), rank=1, world_size=2)
    assert not any(a.startswith("--metrics-config") for a in worker)  # ranks > 0 export no metrics
