"""The rollout's gates, run for real: the official Kubernetes client against a stub API server that
speaks the API's JSON, and the smoke prompt through the API server's pod proxy to a real Triton."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helm._render import NAMESPACE
from tests.rollout._apiserver import ApiState
from tests.rollout.conftest import NEW, OLD, RELEASE, chart_lws, group_pod_json
from triton_llm.errors import RolloutError
from triton_llm.rollout import plan_rollout, run_plan
from triton_llm.rollout.cluster import Cluster, ClusterEffects, connect


def effects(kubeconfig: Path, *, helm: str = "helm", lines: list[str] | None = None) -> ClusterEffects:
    api, namespace = connect(kubeconfig=str(kubeconfig))
    cluster = Cluster(api=api, namespace=namespace)
    say = lines.append if lines is not None else lambda _: None
    return ClusterEffects(cluster, cluster.release_lws(RELEASE), helm=helm, poll_seconds=0.05, say=say)


def test_a_group_becomes_ready_when_its_recreated_pods_carry_the_key_and_pass_their_probes(
    helm: Path, api: tuple[ApiState, Path]
) -> None:
    state, kubeconfig = api
    old, new = chart_lws(helm, key=OLD), chart_lws(helm, key=NEW)
    state.lws.append(new)
    state.pods = group_pod_json(old, 0) + group_pod_json(old, 1)
    lines: list[str] = []
    fx = effects(kubeconfig, lines=lines)
    with pytest.raises(RolloutError, match=f"group 1 ready on {NEW[:12]} not reached in 0s") as e:
        fx.await_group(1, key=NEW, timeout=0)
    assert f"runs engine {OLD[:12]}, not {NEW[:12]}" in str(e.value)
    # The controller recreated group 1 on the new template; its probes do not pass yet.
    state.pods = group_pod_json(old, 0) + group_pod_json(new, 1, ready=False)
    with pytest.raises(RolloutError, match="is not Ready"):
        fx.await_group(1, key=NEW, timeout=0)
    state.pods = group_pod_json(old, 0) + group_pod_json(new, 1)
    fx.await_group(1, key=NEW, timeout=5)
    # Group 0 still runs the old key: the gate of group 0 must not pass.
    with pytest.raises(RolloutError, match="rel-triton-llm-lws-0"):
        fx.await_group(0, key=NEW, timeout=0)
    assert any(line.startswith("  waiting: pod") for line in lines)


def test_surge_groups_are_gone_only_when_no_pod_above_the_replicas_is_left(
    helm: Path, api: tuple[ApiState, Path]
) -> None:
    state, kubeconfig = api
    new = chart_lws(helm, key=NEW)
    state.lws.append(new)
    state.pods = group_pod_json(new, 0) + group_pod_json(new, 1) + group_pod_json(new, 2)
    fx = effects(kubeconfig)
    with pytest.raises(RolloutError, match="surge pods left: rel-triton-llm-lws-2, rel-triton-llm-lws-2-1"):
        fx.await_gone(2, timeout=0)
    state.pods = [
        p for p in state.pods if p["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/group-index"] != "2"
    ]
    fx.await_gone(2, timeout=5)


def test_the_smoke_prompt_reaches_the_leaders_triton_through_the_pod_proxy(
    helm: Path, api: tuple[ApiState, Path], triton_server: Any
) -> None:
    state, kubeconfig = api
    new = chart_lws(helm, key=NEW)
    state.lws.append(new)
    state.pods = group_pod_json(new, 1)
    state.pod_backends["rel-triton-llm-lws-1:8000"] = f"http://{triton_server.http_url}"
    text = effects(kubeconfig).smoke(1)
    assert text.strip()
    proxied = [p for m, p, _ in state.requests if m == "POST"]
    assert proxied == [
        f"/api/v1/namespaces/{NAMESPACE}/pods/rel-triton-llm-lws-1:8000/proxy/v2/models/ensemble/generate"
    ]


def test_a_leader_the_proxy_cannot_reach_fails_the_smoke_gate(helm: Path, api: tuple[ApiState, Path]) -> None:
    state, kubeconfig = api
    new = chart_lws(helm, key=NEW)
    state.lws.append(new)
    state.pods = group_pod_json(new, 1)
    state.pod_backends["rel-triton-llm-lws-1:8000"] = "http://127.0.0.1:9"  # nothing listens on discard
    with pytest.raises(RolloutError, match="the API server answered 503"):
        effects(kubeconfig).smoke(1)


def test_a_failed_helm_upgrade_stops_the_rollout_before_any_gate(
    helm: Path, api: tuple[ApiState, Path]
) -> None:
    """The real helm, against the same API server, finds no release there and fails; nothing after it runs."""
    state, kubeconfig = api
    old = chart_lws(helm, key=OLD)
    state.lws.append(old)
    fx = effects(kubeconfig, helm=str(helm))
    plan = plan_rollout(
        fx.state, NEW, release=RELEASE, chart=str(Path(__file__).parents[2] / "helm" / "triton-llm"),
        kube_args=["--kubeconfig", str(kubeconfig)],
    )  # fmt: skip
    seen = len(state.requests)
    announced: list[str] = []
    with pytest.raises(RolloutError, match=r"step 1/10 failed: helm upgrade failed") as e:
        run_plan(plan, fx, say=announced.append)
    assert "--undo" in str(e.value)
    assert announced == [f"[1/10] {plan.steps[0].describe()}"]
    helm_calls = state.requests[seen:]
    assert helm_calls, "helm never reached the API server"
    assert not [p for _, p, _ in helm_calls if p.endswith("/pods")], "a gate ran after the failed upgrade"
