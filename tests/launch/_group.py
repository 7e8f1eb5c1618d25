"""Helpers for tests that run a real Triton group under mpirun: plan, start, wait, find a rank."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.mpi import NetnsCluster
from triton_llm.launch.agents import make_agent
from triton_llm.launch.cleanup import group_processes
from triton_llm.launch.hosts import Host, local_hosts
from triton_llm.launch.plan import LaunchPlan, plan_triton_group
from triton_llm.launch.runner import run_group
from triton_llm.launch.transport import TransportSettings
from triton_llm.launch.tritonserver import TritonInstall, free_port, server_env


def plan_group(
    install: TritonInstall,
    model_repo: Path,
    *,
    tp: int,
    group_id: str,
    netns: NetnsCluster | None = None,
) -> tuple[LaunchPlan, int, int]:
    """A tp-rank group on this host, or one rank per namespace host; returns (plan, http, grpc)."""
    http, grpc = free_port(), free_port()
    multi_host: dict[str, object] = {}
    if netns is not None:
        multi_host = {
            "hosts": [Host(h, 1) for h in netns.hosts],
            "agent": make_agent(str(netns.agent)),
            "transport": TransportSettings(btl_tcp_if_include=("tl0",), oob_tcp_if_include=("tl0",)),
            "mpirun": str(netns.mpirun),
        }
    plan = plan_triton_group(
        install,
        model_repo=model_repo,
        tp=tp,
        pp=1,
        hosts=multi_host.pop("hosts", local_hosts(tp)),  # type: ignore[arg-type]
        environ=server_env(install, base=os.environ),
        bind_address="127.0.0.1",
        http_port=http,
        grpc_port=grpc,
        metrics_port=free_port(),
        is_root=os.geteuid() == 0,
        group_id=group_id,
        **multi_host,  # type: ignore[arg-type]
    )
    return plan, http, grpc


def start_group(plan: LaunchPlan, log: Path) -> tuple[threading.Thread, dict[str, int]]:
    result: dict[str, int] = {}
    out = log.open("wb")

    def _run() -> None:
        try:
            result["code"] = run_group(
                plan, environ=os.environ, join_timeout=20, stdout=out, stderr=subprocess.STDOUT
            )
        finally:
            out.close()

    thread = threading.Thread(target=_run, daemon=True)
    thread.start()
    return thread, result


def wait_ready(is_ready: Callable[[], bool], result: dict[str, int], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not is_ready():
        if "code" in result or time.monotonic() > deadline:
            raise AssertionError(f"group not ready (exit {result.get('code')}):\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def rank_server(install: TritonInstall, plan: LaunchPlan, rank: int) -> int:
    marker = f"shm-region-prefix-name={plan.shm_prefix}{rank}_".encode()
    for pid in group_processes(plan.group_id):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if cmdline.startswith(str(install.binary).encode()) and marker in cmdline:
            return pid
    raise AssertionError(f"no tritonserver for rank {rank}")


def http_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    return ready


def netns_cluster_ready(cluster: NetnsCluster, http: int) -> Callable[[], bool]:
    """Readiness of rank 0 (in the first namespace) on its HTTP port."""
    probe = [
        sys.executable,
        "-c",
        f"import urllib.request as u; u.urlopen('http://127.0.0.1:{http}/v2/health/ready')",
    ]
    return lambda: cluster.run(0, *probe).returncode == 0
