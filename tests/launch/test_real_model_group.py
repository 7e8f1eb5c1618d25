"""The default model served by a real tp=3 Triton group: one host and across network namespaces.

Greedy text streamed from rank 0 must equal the tp=1 server's text exactly, and killing a rank
mid-stream must end the group non-zero within 10 s, give the client an error, and leave no
process or /dev/shm region behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mpi import NetnsCluster
from tests.launch.test_triton_group import _http_ready, _rank_server, _start, _wait_ready
from triton_llm.launch.agents import make_agent
from triton_llm.launch.cleanup import cleanup_local, group_processes
from triton_llm.launch.hosts import Host, local_hosts
from triton_llm.launch.plan import LaunchPlan, plan_triton_group
from triton_llm.launch.transport import TransportSettings
from triton_llm.launch.tritonserver import ensure_python_backend, find_triton, free_port, server_env

CLIENT = str(Path(__file__).resolve().parents[2] / "clients" / "stream_grpc.py")
PROMPT = "What is the capital of France? Answer in one sentence."
TP = 3


def _stream(prefix: list[str], url: str, *, max_tokens: int = 24) -> str:
    cmd = [*prefix, sys.executable, CLIENT, PROMPT, "--url", url, "--max-tokens", str(max_tokens)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def tp1_text(triton_server: Any) -> str:
    return _stream([], triton_server.grpc_url)


@pytest.fixture(scope="module")
def tp3_repo(cpu_engine_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from triton_llm.engine.pipeline import ensure_local_engine
    from triton_llm.repository import render_repository
    from triton_llm.settings import load_settings

    settings = load_settings(
        {"cache_dir": str(cpu_engine_cache)}, environ={}, config_file=Path("/nonexistent")
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        engine = ensure_local_engine(
            "smollm2-135m",
            settings=settings,
            overrides=[f"parallelism.tp={TP}"],
            backend="cpu",
            say=lambda _: None,
        )
    return render_repository(
        engine.engine_dir,
        serving=engine.recipe.serving,
        out=tmp_path_factory.mktemp("tp3") / "model_repository",
        tokenizer_dir=engine.tokenizer_dir,
        checkpoint_dir=engine.checkpoint_dir,
    )


def _kill_rank_mid_stream(
    plan: LaunchPlan, prefix: list[str], url: str, result: dict[str, int], thread: Any
) -> None:
    install = find_triton()
    cmd = [
        *prefix,
        sys.executable,
        CLIENT,
        "Write a long story about a dragon.",
        "--url",
        url,
        "--max-tokens",
        "400",
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as client:
        assert client.stdout is not None and client.stderr is not None
        assert client.stdout.read(8), "no text streamed before the kill"
        killed_at = time.monotonic()
        os.kill(_rank_server(install, plan, TP - 1), signal.SIGKILL)
        client.wait(timeout=30)
        thread.join(30)
        elapsed = time.monotonic() - killed_at
        stderr = client.stderr.read().decode()
    assert client.returncode == 1 and "error" in stderr, stderr
    assert result["code"] != 0
    assert elapsed < 10, elapsed
    assert group_processes(plan.group_id) == []
    assert list(Path("/dev/shm").glob(f"{plan.shm_prefix}*")) == []


def test_tp3_on_one_host_streams_the_tp1_text(
    mpi_env: str, tp3_repo: Path, tp1_text: str, tmp_path: Path
) -> None:
    install = find_triton()
    ensure_python_backend(install)
    http, grpc = free_port(), free_port()
    plan = plan_triton_group(
        install,
        model_repo=tp3_repo,
        tp=TP,
        pp=1,
        hosts=local_hosts(TP),
        environ=server_env(install),
        bind_address="127.0.0.1",
        http_port=http,
        grpc_port=grpc,
        metrics_port=free_port(),
        is_root=os.geteuid() == 0,
        group_id=f"greal{os.getpid()}",
    )
    thread, result = _start(plan, tmp_path / "group.log")
    try:
        _wait_ready(_http_ready(http), result, tmp_path / "group.log", timeout=300)
        assert _stream([], f"127.0.0.1:{grpc}") == tp1_text
        _kill_rank_mid_stream(plan, [], f"127.0.0.1:{grpc}", result, thread)
    finally:
        cleanup_local(plan.group_id, shm_prefix=plan.shm_prefix)  # never leave a group behind on failure


def test_tp3_across_namespaces_streams_the_tp1_text(
    netns_cluster: NetnsCluster, tp3_repo: Path, tp1_text: str, tmp_path: Path
) -> None:
    install = find_triton()
    ensure_python_backend(install)
    http, grpc = free_port(), free_port()
    plan = plan_triton_group(
        install,
        model_repo=tp3_repo,
        tp=TP,
        pp=1,
        hosts=[Host(h, 1) for h in netns_cluster.hosts],
        environ=server_env(install),
        agent=make_agent(str(netns_cluster.agent)),
        transport=TransportSettings(btl_tcp_if_include=("tl0",), oob_tcp_if_include=("tl0",)),
        bind_address="127.0.0.1",
        http_port=http,
        grpc_port=grpc,
        metrics_port=free_port(),
        is_root=os.geteuid() == 0,
        group_id=f"grealns{os.getpid()}",
        mpirun=str(netns_cluster.mpirun),
    )
    assert len(set(plan.rank_hosts)) == TP, "one rank per namespace"
    thread, result = _start(plan, tmp_path / "group.log")
    probe = [
        sys.executable,
        "-c",
        f"import urllib.request as u; u.urlopen('http://127.0.0.1:{http}/v2/health/ready')",
    ]
    _wait_ready(
        lambda: netns_cluster.run(0, *probe).returncode == 0, result, tmp_path / "group.log", timeout=300
    )
    in_ns0 = ["ip", "netns", "exec", netns_cluster.namespaces[0]]
    assert _stream(in_ns0, f"127.0.0.1:{grpc}") == tp1_text
    _kill_rank_mid_stream(plan, in_ns0, f"127.0.0.1:{grpc}", result, thread)
