"""A rank of a tp=3 Triton group killed 10 times in a row, each time at a random moment.

The group is the real launcher (``run_group``: mpirun, one tritonserver per rank, python
backend stubs joined to MPI COMM_WORLD) serving the tensor-parallel stand-in model of
tests/launch/triton_models, whose stream is an allreduce over every rank (so it only flows
while the whole group lives); it starts in a few seconds, which keeps 10 rounds within the
suite's time. The default model's group is killed the same way in
tests/launch/test_real_model_group.py.

Each round kills a random rank (0, 1 or 2) at a random moment: while the group starts, while it
is idle, or while a client streams. What must hold every time: the group exits non-zero within
10 s of the kill, a streaming client gets an error (no hang), and no process of the group and no
/dev/shm region of its ranks is left. p50 and p99 of the exit times are printed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.launch._group import http_ready, plan_group, start_group
from triton_llm.launch.cleanup import cleanup_local, group_processes
from triton_llm.launch.plan import LaunchPlan
from triton_llm.launch.tritonserver import TritonInstall, ensure_python_backend, find_triton

LAUNCH_TESTS = Path(__file__).resolve().parents[1] / "launch"
MODELS = LAUNCH_TESTS / "triton_models"
CLIENT = str(LAUNCH_TESTS / "stream_client.py")
TP, ROUNDS, LIMIT = 3, 10, 10.0


def _rank_pid(install: TritonInstall, plan: LaunchPlan, rank: int, timeout: float) -> int:
    """The tritonserver pid of ``rank``, waiting for it to exist (it may still be starting)."""
    marker = f"shm-region-prefix-name={plan.shm_prefix}{rank}_".encode()
    deadline = time.monotonic() + timeout
    while True:
        for pid in group_processes(plan.group_id):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(str(install.binary).encode()) and marker in cmdline:
                return pid
        assert time.monotonic() < deadline, f"rank {rank} never started"
        time.sleep(0.05)


def _round(install: TritonInstall, i: int, rng: random.Random, tmp_path: Path) -> tuple[str, int, float]:
    plan, http, grpc = plan_group(install, MODELS, tp=TP, group_id=f"fk{os.getpid()}r{i}")
    log = tmp_path / f"group{i}.log"
    thread, result = start_group(plan, log)
    moment, rank = rng.choice(["starting", "idle", "streaming"]), rng.randrange(TP)
    client = None
    try:
        if moment == "starting":
            pid = _rank_pid(install, plan, rank, timeout=60)
            time.sleep(rng.uniform(0.0, 1.5))
        else:
            deadline = time.monotonic() + 120
            while not http_ready(http)():
                assert "code" not in result and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            pid = _rank_pid(install, plan, rank, timeout=5)
            if moment == "idle":
                time.sleep(rng.uniform(0.0, 1.0))
            else:
                client = subprocess.Popen(
                    [sys.executable, CLIENT, f"127.0.0.1:{grpc}", "1000"], stdout=subprocess.PIPE, text=True
                )
                assert client.stdout is not None
                for _ in range(rng.randint(1, 20)):
                    assert client.stdout.readline(), "the stream ended before the kill"
        killed_at = time.monotonic()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # a rank that died on its own is a failure of its own
            tail = log.read_text()[-3000:]
            raise AssertionError(f"round {i}: rank {rank} was gone before the kill:\n{tail}") from None
        thread.join(LIMIT + 20)
        elapsed = time.monotonic() - killed_at
        where = f"round {i} ({moment}, rank {rank})"
        assert not thread.is_alive(), f"{where}: the group is still running {elapsed:.1f}s after the kill"
        assert result["code"] != 0, f"{where}: a group with a killed rank exited 0"
        if client is not None:
            assert client.stdout is not None
            tail = client.stdout.read().splitlines()
            assert client.wait(timeout=LIMIT) == 1 and "error" in json.loads(tail[-1]), (where, tail)
        assert group_processes(plan.group_id) == [], where
        assert list(Path("/dev/shm").glob(f"{plan.shm_prefix}*")) == [], where
        return moment, rank, elapsed
    finally:
        if client is not None:
            if client.poll() is None:
                client.kill()
                client.wait()
            assert client.stdout is not None
            client.stdout.close()
        cleanup_local(plan.group_id, shm_prefix=plan.shm_prefix)  # never leave a group behind on failure


def test_a_rank_killed_10_times_ends_the_group_within_10s_each_time(mpi_env: str, tmp_path: Path) -> None:
    install = find_triton()
    ensure_python_backend(install)
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    rounds = [_round(install, i, rng, tmp_path) for i in range(ROUNDS)]
    times = sorted(t for _, _, t in rounds)
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    report = f"seed {seed}: group exit after a rank kill p50 {p50:.2f}s p99 {p99:.2f}s; rounds {rounds}"
    print(report)
    assert max(times) < LIMIT, report
