"""Spec of the chart's rollout settings, OpenAI frontend sidecar, autoscaling, routing and dashboard."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.processes import stop
from tests.helm._render import CHART_DIR, NAMESPACE, RELEASE, container, helm_template, pod_specs
from triton_llm.cli import build_parser
from triton_llm.rollout import ENGINE_KEY_ANNOTATION, PREVIOUS_KEY_ANNOTATION, lws_state

FULLNAME = f"{RELEASE}-triton-llm"
KEY = "ab" * 32
OLD = "cd" * 32
ENGINE_TYPE = "llm-d.ai/engine-type"


def render(helm: Path, base_values: dict[str, str], **extra: str):
    return helm_template(helm, set_values={**base_values, "launcher.agent": "kubectl", **extra})


# --- rollout settings ---------------------------------------------------------------------------------


def test_the_lws_carries_what_triton_llm_rollout_reads_back(helm, base_values) -> None:
    r = render(helm, base_values, **{"engine.previousKey": OLD, "workload.lws.partition": "1",
                                     "workload.lws.maxSurge": "1", "replicas": "3"})  # fmt: skip
    lws = r.one("LeaderWorkerSet")
    assert lws["metadata"]["annotations"][PREVIOUS_KEY_ANNOTATION] == OLD
    pods = pod_specs(r)
    for role in ("leader", "worker"):
        assert pods[role]["metadata"]["annotations"][ENGINE_KEY_ANNOTATION] == base_values["engine.key"]
    rolling = lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]
    assert (rolling["partition"], rolling["maxSurge"]) == (1, 1)
    state = lws_state({**lws, "metadata": {**lws["metadata"], "namespace": NAMESPACE}})
    assert (state.replicas, state.partition, state.max_surge, state.http_port) == (3, 1, 1, 8000)
    assert (state.key, state.previous_key) == (base_values["engine.key"], OLD)


def test_no_previous_key_annotation_before_the_first_rollout(helm, base_values) -> None:
    lws = render(helm, base_values).one("LeaderWorkerSet")
    assert PREVIOUS_KEY_ANNOTATION not in (lws["metadata"].get("annotations") or {})
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]["partition"] == 0


# --- OpenAI frontend sidecar ----------------------------------------------------------------------------


def test_the_frontend_runs_beside_the_leader_only_and_is_ready_on_v1_models(helm, base_values) -> None:
    pods = pod_specs(render(helm, base_values))
    leader_names = [c["name"] for c in pods["leader"]["spec"]["containers"]]
    assert leader_names == ["triton", "openai-frontend"]
    assert [c["name"] for c in pods["worker"]["spec"]["containers"]] == ["rank-agent"]
    front = container(pods["leader"], "openai-frontend")
    assert front["command"][:4] == ["triton-llm", "frontend", "--triton", "127.0.0.1:8001"]
    assert front["ports"] == [{"name": "openai", "containerPort": 9000, "protocol": "TCP"}]
    assert front["readinessProbe"]["httpGet"] == {"path": "/v1/models", "port": "openai"}
    sc = front["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"]


def test_the_frontend_command_is_valid_for_the_real_cli(helm, base_values) -> None:
    front = container(pod_specs(render(helm, base_values))["leader"], "openai-frontend")
    args = build_parser(front["command"][1:]).parse_args(front["command"][1:])
    assert (args.triton, args.host, args.port, args.model_name) == (
        "127.0.0.1:8001",
        "0.0.0.0",
        9000,
        RELEASE,
    )


def test_frontend_disabled_removes_the_sidecar_and_its_ports(helm, base_values) -> None:
    r = render(helm, base_values, **{"frontend.enabled": "false"})
    assert [c["name"] for c in pod_specs(r)["leader"]["spec"]["containers"]] == ["triton"]
    assert "openai" not in [p["name"] for p in r.one("Service", FULLNAME)["spec"]["ports"]]
    policy = r.one("NetworkPolicy", f"{FULLNAME}-clients")
    assert "openai" not in [p["port"] for p in policy["spec"]["ingress"][0]["ports"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_rendered_frontend_command_serves_v1_models_in_front_of_a_real_triton(
    helm, base_values, triton_server: Any, tmp_path: Path
) -> None:
    """The sidecar's exact argv (only the Triton address and port swapped for the test server's)."""
    argv = container(pod_specs(render(helm, base_values))["leader"], "openai-frontend")["command"]
    port = _free_port()
    argv = [a.replace("127.0.0.1:8001", triton_server.grpc_url) for a in argv]
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    log = tmp_path / "frontend.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "triton_llm.cli", *argv[1:]], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    models = json.load(r)
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the frontend never answered /v1/models"
                time.sleep(0.3)
        assert [m["id"] for m in models["data"]] == [RELEASE]
    finally:
        stop(proc, grace=30)


# --- autoscaling ---------------------------------------------------------------------------------------


def test_the_hpa_scales_on_waiting_requests_and_kv_cache_utilisation(helm, base_values) -> None:
    r = render(helm, base_values, **{"autoscaling.enabled": "true"})
    metrics = r.one("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [(m["pods"]["metric"]["name"], m["pods"]["target"]["averageValue"]) for m in metrics] == [
        ("triton_llm_waiting_requests", "4"),
        ("triton_llm_kv_cache_utilization", "800m"),
    ]
    rules = r.one("PrometheusRule")["spec"]["groups"][0]["rules"]
    assert [x["record"] for x in rules] == [
        "triton_llm:waiting_requests:avg2m",
        "triton_llm:kv_cache_utilization:avg2m",
    ]
    used, total = rules[1]["expr"].split(" / ")
    assert 'kv_cache_block_type="used"' in used and 'kv_cache_block_type="max"' in total
    for side in (used, total):
        assert f'namespace="{NAMESPACE}", pod=~"{FULLNAME}-.*", model="tensorrt_llm"' in side


def test_kv_cache_scaling_off_leaves_the_waiting_requests_alone(helm, base_values) -> None:
    r = render(helm, base_values, **{"autoscaling.enabled": "true", "autoscaling.kvCache.enabled": "false"})
    metrics = r.one("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [m["pods"]["metric"]["name"] for m in metrics] == ["triton_llm_waiting_requests"]


def test_keda_replaces_the_hpa_and_queries_the_recorded_series(helm, base_values) -> None:
    r = render(helm, base_values, **{"autoscaling.enabled": "true", "autoscaling.keda.enabled": "true",
                                     "autoscaling.targetWaitingRequests": "2500m"})  # fmt: skip
    assert not r.of_kind("HorizontalPodAutoscaler")
    so = r.one("ScaledObject")
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": f"{FULLNAME}-lws",
    }  # fmt: skip
    triggers = {t["name"]: t["metadata"] for t in so["spec"]["triggers"]}
    assert triggers["waiting-requests"]["threshold"] == "2.5"
    assert triggers["kv-cache-utilization"]["threshold"] == "0.8"
    recorded = {x["record"] for x in r.one("PrometheusRule")["spec"]["groups"][0]["rules"]}
    for t in triggers.values():
        series = re.match(r"sum\(([^{]+)\{", t["query"])
        assert series and series.group(1) in recorded, t["query"]


# --- Gateway API Inference Extension -------------------------------------------------------------------


def test_the_inference_pool_selects_leaders_on_the_frontend_port_and_the_route_sends_v1_to_it(
    helm, base_values
) -> None:
    pool_values = {
        "inferencePool.enabled": "true",
        "inferencePool.endpointPicker.name": "epp",
        "inferencePool.httpRoute.gatewayName": "gw",
    }
    r = render(helm, base_values, **pool_values)
    pool = r.one("InferencePool")
    pods = pod_specs(r)
    assert pods["leader"]["metadata"]["labels"][ENGINE_TYPE] == "triton-tensorrt-llm"
    assert ENGINE_TYPE not in pods["worker"]["metadata"]["labels"]
    selector = pool["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pods["leader"]["metadata"]["labels"].items()
    assert not selector.items() <= pods["worker"]["metadata"]["labels"].items()
    front = container(pods["leader"], "openai-frontend")
    assert pool["spec"]["targetPorts"] == [{"number": front["ports"][0]["containerPort"]}]
    assert pool["spec"]["endpointPickerRef"] == {
        "name": "epp",
        "port": {"number": 9002},
        "failureMode": "FailClose",
    }
    route = r.one("HTTPRoute")
    assert route["spec"]["parentRefs"][0]["name"] == "gw"
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert rule["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": pool["metadata"]["name"]}
    ]


def test_without_the_pool_no_engine_type_label_and_no_routing_objects(helm, base_values) -> None:
    r = render(helm, base_values)
    assert ENGINE_TYPE not in pod_specs(r)["leader"]["metadata"]["labels"]
    assert not r.of_kind("InferencePool") and not r.of_kind("HTTPRoute")


# --- dashboard -----------------------------------------------------------------------------------------


def _dashboard(helm, base_values, **extra: str) -> dict[str, Any]:
    cm = render(helm, base_values, **extra).one("ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    return json.loads(cm["data"]["triton-llm.json"])


def test_the_dashboard_configmap_is_the_charts_dashboard_file(helm, base_values) -> None:
    shipped = json.loads((CHART_DIR / "dashboards" / "triton-llm.json").read_text())
    assert _dashboard(helm, base_values) == shipped
    titles = [p["title"] for p in shipped["panels"]]
    assert titles == [
        "Time to first token",
        "Time per output token (mean)",
        "Queue: requests in the in-flight batcher",
        "KV cache utilisation",
        "Throughput",
        "Errors",
    ]


def test_dashboard_off_or_monitoring_off_ships_no_configmap(helm, base_values) -> None:
    for extra in ({"monitoring.dashboard.enabled": "false"}, {"monitoring.enabled": "false"}):
        names = [o["metadata"]["name"] for o in render(helm, base_values, **extra).of_kind("ConfigMap")]
        assert f"{FULLNAME}-dashboard" not in names


@pytest.mark.parametrize("folder", ["LLM serving"])
def test_the_dashboard_folder_is_an_annotation(helm, base_values, folder: str) -> None:
    cm = render(helm, base_values, **{"monitoring.dashboard.folder": folder}).one(
        "ConfigMap", f"{FULLNAME}-dashboard"
    )
    assert cm["metadata"]["annotations"] == {"grafana_folder": folder}
