"""The chart runs for real: its tp=3 LeaderWorkerSet group as podman pods, with real sshd and mpirun.

The group (1 leader + 2 workers, one rank per pod, ssh agent, engine pulled from an S3 server) must
serve the same greedy text as the tp=1 server, pass the chart's own ``helm test`` pod, end within 10 s
of losing a worker, and come back when it is recreated as the LWS controller would recreate it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._kube import Pod, assign_dns, search_domains
from tests.deploy._twin import REPO_ROOT, podman
from tests.deploy.conftest import MAX_TOKENS, PROMPT, Group, group_pods, start_group, stop_group
from tests.fixtures.s3 import free_port
from tests.helm._render import NAMESPACE, RELEASE

CLIENT = REPO_ROOT / "clients" / "stream_grpc.py"
# The first test also sets the group up: on a cold, shared 2-core machine the image build alone can take
# 6+ minutes, then two engine builds, three engine pulls and the group's start.
pytestmark = pytest.mark.timeout(2700)


def _stream_through_service(group: Group) -> str:
    """Stream from a client container on the twin network, through the leader Service's DNS name and port."""
    (service,) = [
        o
        for o in group.rendered
        if o["kind"] == "Service"
        and (o["spec"].get("selector") or {}).get("app.kubernetes.io/component") == "leader"
    ]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    url = f"{service['metadata']['name']}.{NAMESPACE}.svc:{port}"
    argv = ["run", "--rm", "--network", group.twin.network, "--dns-option", "ndots:5"]
    for domain in search_domains(NAMESPACE):
        argv += ["--dns-search", domain]
    argv += ["-v", f"{CLIENT}:/client/stream_grpc.py:ro", group.twin.image]
    argv += ["python3", "/client/stream_grpc.py", PROMPT, "--url", url, "--max-tokens", str(MAX_TOKENS)]
    proc = podman(*argv, check=False, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-3000:]}\nleader:\n{group.leader_log()}"
    return proc.stdout


def _tp1_text(triton_server: Any) -> str:
    argv = [
        sys.executable,
        str(CLIENT),
        PROMPT,
        "--url",
        triton_server.grpc_url,
        "--max-tokens",
        str(MAX_TOKENS),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_streamed_completion_through_the_service_equals_the_tp1_server(
    group: Group, triton_server: Any
) -> None:
    text = _stream_through_service(group)
    assert text.strip(), "the group streamed no text"
    assert text == _tp1_text(triton_server)


def test_the_charts_helm_test_pod_passes(group: Group) -> None:
    hooks = [
        o for o in group.rendered if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
    ]
    assert [o["kind"] for o in hooks] == ["Pod"]
    obj = hooks[0]
    pod = Pod(
        name=obj["metadata"]["name"],
        namespace=NAMESPACE,
        labels=obj["metadata"].get("labels") or {},
        annotations=obj["metadata"].get("annotations") or {},
        spec=obj["spec"],
    )
    assign_dns([pod], [], namespace=NAMESPACE)
    code, log = group.twin.run_to_completion(pod, timeout=300, log_dir=group.logs / "helm-test")
    assert code == 0, f"helm test pod exited {code}:\n{log[-3000:]}"
    assert log.strip()


def test_a_killed_worker_ends_the_leader_within_10s_and_the_recreated_group_serves(group: Group) -> None:
    worker = group.pods[-1]
    before = _stream_through_service(group)
    podman("kill", "--signal", "KILL", worker.containers["rank-agent"])
    killed = time.monotonic()
    leader = group.leader.containers["triton"]
    deadline = killed + 10
    while group.twin.state(leader)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    status, code = group.twin.state(leader)
    elapsed = time.monotonic() - killed
    assert status != "running", (
        f"leader still running {elapsed:.1f}s after a worker died:\n{group.leader_log()}"
    )
    assert code != 0, f"leader exited 0 after a worker died:\n{group.leader_log()}"
    # RecreateGroupOnPodRestart: the controller deletes the leader, so every pod of the group is recreated.
    stop_group(group)
    group.restarts += 1
    start_group(group)
    assert [p.pod.name for p in group.pods] == [p.name for p in group_pods(group.rendered)]
    assert _stream_through_service(group) == before


# --- rollout: a second group on the next key, gated, then the old group deleted -------------------------


def _kubelet_ready(group: Group, running: Any, published: dict[int, int]) -> bool:
    """The pod's Ready condition as the kubelet would set it: every container running, and every
    ``readinessProbe.httpGet`` answering 200-399 (Kubernetes pkg/probe/http). Probes run through the
    host ports the test published for the pod; a probe whose port is not published counts as failing."""
    for c in running.pod.spec["containers"]:
        if group.twin.state(running.containers[c["name"]])[0] != "running":
            return False
        get = (c.get("readinessProbe") or {}).get("httpGet")
        if not get:
            continue
        port = get["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in c["ports"] if p["name"] == port)
        if port not in published:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{published[port]}{get['path']}", timeout=3) as r:
                if not 200 <= r.status < 400:
                    return False
        except OSError:
            return False
    return True


def _pod_json(group: Group, running: Any, published: dict[int, int]) -> dict[str, Any]:
    pod = running.pod
    ready = "True" if _kubelet_ready(group, running, published) else "False"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels,
                     "annotations": pod.annotations},
        "spec": pod.spec,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]},
    }  # fmt: skip


def _stream_from(group: Group, host: str) -> str:
    argv = ["run", "--rm", "--network", group.twin.network, "--dns-option", "ndots:5"]
    for domain in search_domains(NAMESPACE):
        argv += ["--dns-search", domain]
    argv += ["-v", f"{CLIENT}:/client/stream_grpc.py:ro", group.twin.image]
    argv += [
        "python3",
        "/client/stream_grpc.py",
        PROMPT,
        "--url",
        f"{host}:8001",
        "--max-tokens",
        str(MAX_TOKENS),
    ]
    proc = podman(*argv, check=False, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_a_surge_group_on_the_next_key_passes_the_rollout_gates_then_the_old_group_goes(
    group: Group, helm: Path, tmp_path: Path
) -> None:
    """What the twin can express of `triton-llm rollout` (one group, maxSurge 1): the chart re-rendered as
    the rollout's first `helm upgrade` renders it (next key, previous key, partition 1), the surge group 1
    the LWS controller would create from it, gated by the rollout's own code (official Kubernetes client,
    an API server stub whose pod states come from the twin's containers, the smoke prompt through its pod
    proxy); then group 0 deleted as the controller deletes it at partition 0, and group 1 still serving.
    Not expressed: the controller's choice of groups (the test starts and deletes them itself), the
    Service moving to group 1 (the twin's Service reaches one pod), recreating group 0 on the next key."""
    from tests.deploy.conftest import render, twin_values
    from tests.rollout._apiserver import ApiState, api_server, write_kubeconfig
    from triton_llm.errors import RolloutError
    from triton_llm.rollout.cluster import Cluster, ClusterEffects, connect

    assert group.next_key and group.next_key != group.key
    before = _stream_through_service(group)
    values = twin_values(group.twin.image, group.next_key)
    values["engine"]["previousKey"] = group.key
    values["workload"]["lws"] = {"maxSurge": 1, "partition": 1}
    rendered = render(helm, values, tmp_path)
    (lws,) = [o for o in rendered if o["kind"] == "LeaderWorkerSet"]
    lws["metadata"]["namespace"] = NAMESPACE
    surge_pods = group_pods(rendered, group=1, client_service=False)
    leader_http, leader_openai = free_port(), free_port()
    published: dict[str, dict[int, int]] = {surge_pods[0].name: {8000: leader_http, 9000: leader_openai}}
    published[group.leader.pod.name] = {8000: group.http_port}
    surge: list[Any] = []
    state = ApiState(lws=[lws])
    state.pod_source = lambda: [
        _pod_json(group, r, published.get(r.pod.name, {})) for r in [*group.pods, *surge]
    ]
    state.pod_backends[f"{surge_pods[0].name}:8000"] = f"http://127.0.0.1:{leader_http}"
    with api_server(state) as url:
        api, namespace = connect(
            kubeconfig=str(write_kubeconfig(tmp_path / "kubeconfig", url, namespace=NAMESPACE))
        )
        cluster = Cluster(api=api, namespace=namespace)
        lines: list[str] = []
        gates = ClusterEffects(cluster, cluster.release_lws(RELEASE), poll_seconds=2, say=lines.append)
        with pytest.raises(RolloutError, match="group 1 has no pods yet"):
            gates.await_group(1, key=group.next_key, timeout=0)
        for i, pod in enumerate(surge_pods):
            ports = [f"127.0.0.1:{h}:{c}" for c, h in published.get(pod.name, {}).items()]
            surge.append(
                group.twin.start_pod(pod, node=f"node-{3 + i}", publish=ports, log_dir=group.logs / "surge")
            )
        gates.await_group(1, key=group.next_key, timeout=600)
        assert gates.smoke(1).strip()
        with pytest.raises(RolloutError, match=f"runs engine {group.key[:12]}, not {group.next_key[:12]}"):
            gates.await_group(0, key=group.next_key, timeout=0)
        leader = surge_pods[0]
        assert _stream_from(group, f"{leader.name}.{leader.subdomain}.{NAMESPACE}.svc") == before
        # partition 0: the controller deletes the old group (SIGTERM, then the grace period).
        for running in list(group.pods):
            group.twin.delete_pod(running, grace=10)
        group.pods = []
        with pytest.raises(RolloutError, match="group 0 has no pods yet"):
            gates.await_group(0, key=group.next_key, timeout=0)
        assert _stream_from(group, f"{leader.name}.{leader.subdomain}.{NAMESPACE}.svc") == before
