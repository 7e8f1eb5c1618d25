"""The default model served by a real tp=3 Triton group: one host and across network namespaces.

Greedy text streamed from rank 0 must equal the tp=1 server's text exactly; on one host, plain
clients that cancel their streams on the leader free the slots on every rank (each rank counts
the slots it computes, ``nv_trt_llm_rank_active_slots`` on the leader's /metrics); killing a
rank mid-stream must end the group non-zero within 10 s, give the client an error, and leave no
process or /dev/shm region behind.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mpi import NetnsCluster
from tests.launch._group import (
    http_ready,
    netns_cluster_ready,
    plan_group,
    rank_server,
    start_group,
    wait_ready,
)
from tests.serve import _clients
from triton_llm.launch.cleanup import cleanup_local, group_processes
from triton_llm.launch.plan import LaunchPlan
from triton_llm.launch.tritonserver import ensure_python_backend, find_triton

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
    from triton_llm.engine.local import ensure_local_engine
    from triton_llm.repository import render_engine
    from triton_llm.settings import load_settings

    settings = load_settings(
        {"cache_dir": str(cpu_engine_cache)},
        environ={"HF_HUB_OFFLINE": "1"},
        config_file=Path("/nonexistent"),
    )
    engine = ensure_local_engine(
        "smollm2-135m",
        settings=settings,
        overrides=[f"parallelism.tp={TP}"],
        backend="cpu",
        say=lambda _: None,
    )
    return render_engine(engine, tmp_path_factory.mktemp("tp3") / "model_repository")


def _rank_slots(metrics: str) -> dict[str, float]:
    samples = _clients.scrape(metrics)
    return {
        dict(labels)["rank"]: value
        for (name, labels), value in samples.items()
        if name == "nv_trt_llm_rank_active_slots"
    }


def _cancelling_clients_free_every_rank(plan: LaunchPlan, grpc_url: str) -> None:
    """4 plain tritonclient streams through the ensemble, each cancelled after a random number of
    tokens: while they run every rank computes their slots, and within 4 decode steps (at least
    2 s) of the last cancellation the leader reports no active request and no rank a busy slot.
    Through the ensemble the cancellation reaches tensorrt_llm with the next token's
    postprocessing step and leaves the batch at the step after (model_repository/README.md)."""
    import tritonclient.grpc as grpcclient

    port = next(a.split("=", 1)[1] for a in plan.argv if a.startswith("--metrics-port="))
    metrics = f"127.0.0.1:{port}"
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    arrays = _clients.text_inputs("Write a long story about a dragon.", 200)
    clients, busy, step = [], [], 0.0
    try:
        for _ in range(4):
            events: queue.Queue[object] = queue.Queue()
            client = grpcclient.InferenceServerClient(grpc_url)
            clients.append(client)
            client.start_stream(callback=lambda result, error, q=events: q.put(error or result))
            client.async_stream_infer("ensemble", _clients.infer_inputs(arrays))
            last = None
            for _ in range(rng.randint(2, 4)):
                assert not isinstance(events.get(timeout=120), Exception), f"seed {seed}"
                now = time.monotonic()
                step = max(step, now - last) if last is not None else step
                last = now
            time.sleep(0.3)  # one stats period
            busy.append(_rank_slots(metrics))
    finally:
        for client in clients:
            client.stop_stream(cancel_requests=True)
            client.close()
    idle, waited = _clients.wait_idle(metrics, timeout=max(2.0, 4 * step))
    slots = _rank_slots(metrics)
    report = (
        f"seed {seed}: active={idle} after {waited:.2f}s (decode step up to {step:.2f}s), "
        f"rank slots {slots}, while streaming {busy}"
    )
    assert all(sorted(b) == ["0", "1", "2"] and all(v > 0 for v in b.values()) for b in busy), report
    assert idle == 0 and slots == {str(r): 0.0 for r in range(TP)}, report


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
        os.kill(rank_server(install, plan, TP - 1), signal.SIGKILL)
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
    _serve_stream_kill(tp3_repo, tp1_text, tmp_path, group_id=f"greal{os.getpid()}", netns=None)


def test_tp3_across_namespaces_streams_the_tp1_text(
    netns_cluster: NetnsCluster, tp3_repo: Path, tp1_text: str, tmp_path: Path
) -> None:
    _serve_stream_kill(tp3_repo, tp1_text, tmp_path, group_id=f"grealns{os.getpid()}", netns=netns_cluster)


def _serve_stream_kill(
    repo: Path, tp1_text: str, tmp_path: Path, *, group_id: str, netns: NetnsCluster | None
) -> None:
    install = find_triton()
    ensure_python_backend(install)
    plan, http, grpc = plan_group(install, repo, tp=TP, group_id=group_id, netns=netns)
    assert len(set(plan.rank_hosts)) == (TP if netns else 1)
    thread, result = start_group(plan, tmp_path / "group.log")
    ready = http_ready(http) if netns is None else netns_cluster_ready(netns, http)
    prefix = [] if netns is None else ["ip", "netns", "exec", netns.namespaces[0]]
    try:
        wait_ready(ready, result, tmp_path / "group.log", timeout=300)
        assert _stream(prefix, f"127.0.0.1:{grpc}") == tp1_text
        if netns is None:
            _cancelling_clients_free_every_rank(plan, f"127.0.0.1:{grpc}")
        _kill_rank_mid_stream(plan, prefix, f"127.0.0.1:{grpc}", result, thread)
    finally:
        cleanup_local(plan.group_id, shm_prefix=plan.shm_prefix)  # never leave a group behind on failure
