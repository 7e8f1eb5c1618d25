"""The leader's command is exactly a `triton-llm launch` the real launcher accepts for the chart's topology.

Each test takes the rendered leader command, maps the pod's volume paths to temporary directories (an
engine dir with tp*pp rank files, as `engine pull` leaves it), adds --dry-run, and runs it with
.venv/bin/triton-llm under the environment the pod would get (rendered env, downward-API fields and, for
LWS, the variables the LWS controller injects). The printed mpirun plan must have world size tp*pp and
place ranks exactly on the pods the chart creates.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helm._render import NAMESPACE, container, helm_template, plain_env, pod_specs

TRITON_LLM = Path(sys.executable).parent / "triton-llm"


def _local_interface() -> str:
    names = [n for _, n in socket.if_nameindex() if n != "lo"]
    return names[0] if names else "lo"


def _fake_engine(root: Path, *, tp: int, pp: int) -> Path:
    engine = root / "engine"
    engine.mkdir()
    (engine / "config.json").write_text(
        json.dumps({"pretrained_config": {"mapping": {"tp_size": tp, "pp_size": pp}}})
    )
    for rank in range(tp * pp):
        (engine / f"rank{rank}.engine").write_bytes(b"")
    return engine


def _dry_run(
    argv: list[str], *, env: dict[str, str], tmp_path: Path, tp: int, pp: int
) -> tuple[list[str], dict[str, str]]:
    """Run the leader's launch command with --dry-run; returns the mpirun argv and the exports it prints."""
    argv = list(argv)
    assert argv[:2] == ["triton-llm", "launch"], argv
    argv[argv.index("--engine-dir") + 1] = str(_fake_engine(tmp_path, tp=tp, pp=pp))
    repo = tmp_path / "repo"
    repo.mkdir()
    argv[argv.index("--model-repo") + 1] = str(repo)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRITON_LLM_", "NCCL_", "LWS_"))}
    run_env.update(env)
    proc = subprocess.run(
        [str(TRITON_LLM), *argv[1:], "--dry-run"], capture_output=True, text=True, env=run_env, timeout=60
    )
    assert proc.returncode == 0, f"{shlex.join(argv)}\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    exports = dict(x.removeprefix("export ").split("=", 1) for x in lines if x.startswith("export "))
    mpirun = shlex.split(next(x for x in lines if x.split(" ", 1)[0].endswith("/mpirun")))
    assert mpirun[0].startswith("/")  # remote orted starts under the prefix of an absolute mpirun
    return mpirun, exports


def _plan(mpirun: list[str]) -> tuple[list[tuple[str, int]], int]:
    """(hosts with slots from --host, number of ranks = MPMD '-n 1' programs)."""
    hosts = [
        (h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in mpirun[mpirun.index("--host") + 1].split(",")
    ]
    ranks = sum(int(mpirun[i + 1]) for i, a in enumerate(mpirun) if a in ("-n", "-np"))
    return hosts, ranks


@pytest.mark.parametrize(
    ("tp", "pp", "gpus_per_node", "replicas"), [(16, 1, 8, 2), (8, 2, 4, 1), (4, 1, 2, 1)]
)
def test_lws_leader_plan_spans_every_pod_of_its_group(
    tp, pp, gpus_per_node, replicas, helm, base_values, tmp_path
):
    iface = _local_interface()
    rendered = helm_template(
        helm,
        set_values={
            **base_values,
            "parallelism.tp": str(tp),
            "parallelism.pp": str(pp),
            "gpusPerNode": str(gpus_per_node),
            "replicas": str(replicas),
            "network.nccl.socketIfname": iface,  # the launcher checks the interface exists on this host
            "launcher.ssh.existingSecret": "group-ssh",
        },
    )
    lws = rendered.one("LeaderWorkerSet")
    name, size = lws["metadata"]["name"], lws["spec"]["leaderWorkerTemplate"]["size"]
    group = replicas - 1  # the last group's leader
    leader = container(pod_specs(rendered)["leader"])
    # What the LWS controller injects into every pod of group `group` (leader: worker index 0).
    lws_env = {
        "LWS_LEADER_ADDRESS": f"{name}-{group}.{name}.{NAMESPACE}",
        "LWS_GROUP_SIZE": str(size),
        "LWS_WORKER_INDEX": "0",
    }
    env = plain_env(leader, field_refs={"metadata.name": f"{name}-{group}", "metadata.namespace": NAMESPACE})
    mpirun, exports = _dry_run(leader["command"], env={**env, **lws_env}, tmp_path=tmp_path, tp=tp, pp=pp)
    hosts, ranks = _plan(mpirun)
    assert ranks == tp * pp
    expected = [f"{name}-{group}.{name}.{NAMESPACE}"] + [
        f"{name}-{group}-{i}.{name}.{NAMESPACE}" for i in range(1, size)
    ]
    assert [h for h, _ in hosts] == expected
    assert all(slots == gpus_per_node for _, slots in hosts)
    # ranks reach workers over ssh on the port and key the workers' sshd and Secret use
    rsh_args = mpirun[mpirun.index("plm_rsh_args") + 1]
    assert "-p 2222" in rsh_args and "-i /etc/triton-llm/ssh/ssh-privatekey" in rsh_args
    # the chart's NCCL settings reach every rank, remote ones included (exported and forwarded with -x)
    assert exports["NCCL_SOCKET_IFNAME"] == iface
    assert mpirun[mpirun.index("NCCL_SOCKET_IFNAME") - 1] == "-x"


def test_statefulset_leader_plan_uses_the_pods_the_chart_names(helm, base_values, tmp_path):
    tp, pp, gpn = 4, 3, 4
    rendered = helm_template(
        helm,
        set_values={
            **base_values,
            "workload.kind": "statefulset",
            "launcher.agent": "kubectl",
            "parallelism.tp": str(tp),
            "parallelism.pp": str(pp),
            "gpusPerNode": str(gpn),
            "network.nccl.socketIfname": _local_interface(),
        },
    )
    workers = rendered.one("StatefulSet")
    headless = workers["spec"]["serviceName"]
    leader_pod = rendered.one("Deployment")["spec"]["template"]
    leader = container(leader_pod)
    env = plain_env(leader, field_refs={"metadata.name": "leader-pod-xyz", "metadata.namespace": NAMESPACE})
    mpirun, _ = _dry_run(leader["command"], env=env, tmp_path=tmp_path, tp=tp, pp=pp)
    hosts, ranks = _plan(mpirun)
    assert ranks == tp * pp
    domain = f"{headless}.{NAMESPACE}.svc.cluster.local"
    start = workers["spec"]["ordinals"]["start"]
    worker_pods = [
        f"{workers['metadata']['name']}-{i}" for i in range(start, start + workers["spec"]["replicas"])
    ]
    assert [h for h, _ in hosts] == [f"{leader_pod['spec']['hostname']}.{domain}"] + [
        f"{p}.{domain}" for p in worker_pods
    ]
    assert re.search(r"kubectl", mpirun[mpirun.index("plm_rsh_agent") + 1])


def test_single_node_leader_runs_every_rank_locally(helm, base_values, tmp_path):
    rendered = helm_template(
        helm,
        set_values={
            **base_values,
            "workload.kind": "deployment",
            "parallelism.tp": "4",
            "gpusPerNode": "4",
            "network.nccl.socketIfname": _local_interface(),
        },
    )
    leader = container(pod_specs(rendered)["leader"])
    env = plain_env(leader, field_refs={"metadata.name": "p", "metadata.namespace": NAMESPACE})
    mpirun, _ = _dry_run(leader["command"], env=env, tmp_path=tmp_path, tp=4, pp=1)
    hosts, ranks = _plan(mpirun)
    assert ranks == 4 and len(hosts) == 1 and "plm_rsh_agent" not in mpirun
