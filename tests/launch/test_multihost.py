"""Multi-host groups on one machine: network namespaces joined by a bridge act as the hosts.

mpirun runs inside host 0 (the leader); the agent enters the other namespaces, as ssh or
kubectl exec would reach other nodes or pods. Traffic stays on 10.77.0.0/24 inside the namespaces.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from tests.fixtures.mpi import NetnsCluster
from triton_llm.launch.agents import make_agent
from triton_llm.launch.cleanup import group_processes
from triton_llm.launch.hosts import read_hostfile
from triton_llm.launch.plan import plan_mpi
from triton_llm.launch.runner import run_group
from triton_llm.launch.transport import TransportSettings, check_transport

PROGRAM = str(Path(__file__).with_name("rank_program.py"))


def _plan(cluster: NetnsCluster, tmp_path: Path, *args: str, group: str, shm_prefix: str = ""):
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("".join(f"{h} slots=1\n" for h in cluster.hosts))
    transport = TransportSettings(
        btl_tcp_if_include=(cluster.interface,), oob_tcp_if_include=(cluster.interface,)
    )
    return plan_mpi(
        [[sys.executable, PROGRAM, *args]] * len(cluster.hosts),
        hosts=read_hostfile(hostfile),
        environ=os.environ,
        group_id=group,
        agent=make_agent(str(cluster.agent)),
        transport=transport,
        is_root=os.geteuid() == 0,
        shm_prefix=shm_prefix,
        mpirun=str(cluster.mpirun),
    )


def test_transport_check_sees_the_leader_interfaces(netns_cluster: NetnsCluster) -> None:
    code = (
        "import json; from triton_llm.launch.transport import local_interfaces as f; print(json.dumps(f()))"
    )
    proc = netns_cluster.run(0, sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    interfaces = json.loads(proc.stdout)
    assert netns_cluster.interface in interfaces
    check_transport(TransportSettings(btl_tcp_if_include=("tl0",)), interfaces=interfaces, multi_host=True)


def test_allreduce_across_namespaces(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    group = f"gnet{os.getpid()}"
    plan = _plan(netns_cluster, tmp_path, "allreduce", str(tmp_path), group=group)
    assert plan.remote_hosts == netns_cluster.hosts[1:]
    assert run_group(plan, environ=os.environ, join_timeout=10) == 0
    n = len(netns_cluster.hosts)
    results = [(tmp_path / f"result{r}").read_text().split() for r in range(n)]
    assert [int(total) for total, _ in results] == [n * (n + 1) // 2] * n
    # each rank ran in its own namespace: the rank's tl0 address is its host's
    assert [addr for _, addr in results] == netns_cluster.hosts
    assert group_processes(group) == []


def test_rank_killed_on_a_remote_host_ends_the_group(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    group = f"gnetdie{os.getpid()}"
    prefix = f"tllm_nettest_{os.getpid()}_r"
    ready = [tmp_path / f"ready{r}" for r in range(len(netns_cluster.hosts))]
    seen: dict[str, float] = {}

    def _watch() -> None:
        while not all(p.exists() for p in ready):
            time.sleep(0.05)
        seen["ready"] = time.monotonic()

    threading.Thread(target=_watch, daemon=True).start()
    plan = _plan(netns_cluster, tmp_path, "die", "2", str(tmp_path), prefix, group=group, shm_prefix=prefix)
    code = run_group(plan, environ=os.environ, join_timeout=10)
    elapsed = time.monotonic() - seen["ready"]
    assert code != 0
    assert elapsed < 11, elapsed
    assert group_processes(group) == []
    assert list(Path("/dev/shm").glob(f"{prefix}*")) == []
