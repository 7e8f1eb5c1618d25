"""A real tp=3 Triton group under mpirun: one host and across network namespaces.

The model (tests/launch/triton_models/tensorrt_llm) joins MPI COMM_WORLD in every rank's
python-backend stub and streams allreduce results computed by all ranks, so a stream only
flows while the whole group is alive. Killing a rank mid-stream must end the group non-zero
within 10 s, give the streaming client an error, and leave no process or /dev/shm region behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.fixtures.mpi import NetnsCluster
from tests.launch._group import (
    http_ready,
    netns_cluster_ready,
    plan_group,
    rank_server,
    start_group,
    wait_ready,
)
from triton_llm.launch.cleanup import group_processes
from triton_llm.launch.plan import LaunchPlan
from triton_llm.launch.tritonserver import TritonInstall, ensure_python_backend, find_triton, free_port

HERE = Path(__file__).resolve().parent
MODELS = HERE / "triton_models"
CLIENT = str(HERE / "stream_client.py")
TP = 3


def _expected(i: int) -> int:
    """The model's allreduce: rank r contributes r*1000 + i (rank 0 contributes i)."""
    return sum(r * 1000 + i for r in range(TP))


def _stream_then_kill(
    install: TritonInstall,
    plan: LaunchPlan,
    client: list[str],
    result: dict[str, int],
    thread: threading.Thread,
) -> None:
    """A full stream, then a stream during which rank 2 is killed."""
    full = subprocess.run([*client, "12"], capture_output=True, text=True, timeout=60)
    events = [json.loads(line) for line in full.stdout.splitlines()]
    assert full.returncode == 0, full.stdout + full.stderr
    assert [e["value"] for e in events if "value" in e] == [_expected(i) for i in range(12)]
    assert events[-1] == {"final": True, "count": 12}

    proc = subprocess.Popen([*client, "400", "5"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    for line in proc.stdout:
        if "kill" in line:
            break
    killed_at = time.monotonic()
    os.kill(rank_server(install, plan, 2), signal.SIGKILL)
    proc.stdin.write("\n")
    proc.stdin.close()
    tail = proc.stdout.read().splitlines()
    proc.wait(timeout=30)
    proc.stdout.close()
    thread.join(30)
    elapsed = time.monotonic() - killed_at
    assert proc.returncode == 1 and "error" in json.loads(tail[-1]), (
        tail
    )  # an error, not a hang or a clean end
    assert result["code"] != 0
    assert elapsed < 10, elapsed
    assert group_processes(plan.group_id) == []
    assert list(Path("/dev/shm").glob(f"{plan.shm_prefix}*")) == []


def test_tp3_group_on_one_host(mpi_env: str, tmp_path: Path) -> None:
    install = find_triton()
    ensure_python_backend(install)
    plan, http, grpc = plan_group(install, MODELS, tp=TP, group_id=f"gtri{os.getpid()}")
    thread, result = start_group(plan, tmp_path / "group.log")
    wait_ready(http_ready(http), result, tmp_path / "group.log")
    _stream_then_kill(install, plan, [sys.executable, CLIENT, f"127.0.0.1:{grpc}"], result, thread)


def test_tp3_group_across_namespaces(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    install = find_triton()
    ensure_python_backend(install)
    plan, http, grpc = plan_group(
        install, MODELS, tp=TP, group_id=f"gtrins{os.getpid()}", netns=netns_cluster
    )
    assert plan.rank_hosts == netns_cluster.hosts
    thread, result = start_group(plan, tmp_path / "group.log")
    wait_ready(netns_cluster_ready(netns_cluster, http), result, tmp_path / "group.log")
    client = ["ip", "netns", "exec", netns_cluster.namespaces[0], sys.executable, CLIENT, f"127.0.0.1:{grpc}"]
    _stream_then_kill(install, plan, client, result, thread)


def test_cli_group_stops_on_sigterm_and_leaves_nothing(mpi_env: str, tmp_path: Path) -> None:
    http, grpc, metrics = free_port(), free_port(), free_port()
    cmd = [sys.executable, "-m", "triton_llm.cli", "launch", "smollm2-135m", "--set", f"parallelism.tp={TP}"]
    cmd += ["--model-repo", str(MODELS), "--bind-address", "127.0.0.1", "--http-port", str(http)]
    cmd += ["--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, check=True).stdout.splitlines()
    group = next(line.split("=", 1)[1] for line in dry if line.startswith("export TRITONLLM_GROUP="))
    mpirun_line = dry[-1]
    assert "btl_vader_backing_directory" in mpirun_line
    log = (tmp_path / "cli.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not http_ready(http)():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "cli.log").read_text()[
                -3000:
            ]
            time.sleep(0.3)
        full = subprocess.run(
            [sys.executable, CLIENT, f"127.0.0.1:{grpc}", "4"], capture_output=True, text=True
        )
        assert full.returncode == 0, full.stdout + full.stderr
        assert any(Path("/dev/shm").glob(f"tllm_{group}_r*")), "ranks should hold shm regions while serving"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert code != 0  # a terminated group never reports success
    assert group_processes(group) == []
    assert list(Path("/dev/shm").glob(f"tllm_{group}_r*")) == []
