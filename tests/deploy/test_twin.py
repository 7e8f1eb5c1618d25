"""The chart runs for real: its tp=3 LeaderWorkerSet group as podman pods, with real sshd and mpirun.

The group (1 leader + 2 workers, one rank per pod, ssh agent, engine pulled from an S3 server) must
serve the same greedy text as the tp=1 server, pass the chart's own ``helm test`` pod, end within 10 s
of losing a worker, and come back when it is recreated as the LWS controller would recreate it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from tests.deploy._kube import Pod, assign_dns, search_domains
from tests.deploy._twin import REPO_ROOT, podman
from tests.deploy.conftest import MAX_TOKENS, PROMPT, Group, group_pods, start_group, stop_group
from tests.helm._render import NAMESPACE

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
