"""The runner against real mpirun: exit codes, signal forwarding, fail-fast, cleanup, join timeout."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from triton_llm.errors import LaunchError
from triton_llm.launch.agents import make_agent
from triton_llm.launch.cleanup import group_processes
from triton_llm.launch.hosts import Host, local_hosts
from triton_llm.launch.plan import plan_mpi
from triton_llm.launch.runner import run_group

PROGRAM = str(Path(__file__).with_name("rank_program.py"))


def _plan(n: int, *args: str, group: str, shm_prefix: str = "", hosts: list[Host] | None = None, agent=None):
    return plan_mpi(
        [[sys.executable, PROGRAM, *args]] * n,
        hosts=hosts or local_hosts(n),
        environ=os.environ,
        group_id=group,
        shm_prefix=shm_prefix,
        agent=agent,
        is_root=os.geteuid() == 0,
        mpirun=shutil.which("mpirun") or "mpirun",
    )


def _wait_for(paths: list[Path], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            raise AssertionError(f"never appeared: {[str(p) for p in paths if not p.exists()]}")
        time.sleep(0.05)


@pytest.mark.parametrize("code", [0, 7])
def test_exit_code_of_the_group(mpi_env: str, code: int) -> None:
    group = f"gexit{code}{os.getpid()}"
    assert (
        run_group(_plan(3, "exit", str(code), "2", group=group), environ=os.environ, join_timeout=5) == code
    )
    assert group_processes(group) == []


def test_sigterm_is_forwarded_to_every_rank(mpi_env: str, tmp_path: Path) -> None:
    group = f"gterm{os.getpid()}"
    ready = [tmp_path / f"ready{r}" for r in range(3)]

    def _send() -> None:
        _wait_for(ready)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=_send, daemon=True)
    sender.start()
    start = time.monotonic()
    code = run_group(
        _plan(3, "wait", str(tmp_path), group=group), environ=os.environ, join_timeout=5, kill_grace=10
    )
    sender.join(5)
    assert all((tmp_path / f"term{r}").read_text() == "SIGTERM" for r in range(3))
    assert time.monotonic() - start < 30
    assert code != 0  # mpirun reports a terminated job as failed, so a restart policy sees it
    assert group_processes(group) == []


def test_killed_rank_ends_the_group_fast_and_cleans_up(mpi_env: str, tmp_path: Path) -> None:
    group = f"gdie{os.getpid()}"
    prefix = f"tllm_test_{os.getpid()}_r"
    ready = [tmp_path / f"ready{r}" for r in range(3)]
    result: dict[str, float] = {}

    def _watch() -> None:
        _wait_for(ready)
        result["ready"] = time.monotonic()

    watcher = threading.Thread(target=_watch, daemon=True)
    watcher.start()
    code = run_group(
        _plan(3, "die", "1", str(tmp_path), prefix, group=group, shm_prefix=prefix),
        environ=os.environ,
        join_timeout=5,
    )
    ended = time.monotonic()
    watcher.join(5)
    assert code != 0
    # rank 1 kills itself 1 s after it is ready; the group (mpirun + cleanup) must be gone within 10 s
    assert ended - result["ready"] < 11, ended - result["ready"]
    stubs = [int(p.read_text().split()[1]) for p in ready]
    for pid in stubs:
        assert not Path(f"/proc/{pid}").exists() or b"sleep" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert group_processes(group) == []
    assert list(Path("/dev/shm").glob(f"{prefix}*")) == []


def test_host_that_never_joins_is_named(mpi_env: str, tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.write_text(
        '#!/bin/sh\n[ "$1" = ghost-1 ] && { echo "no route to ghost-1" >&2; exit 255; }\n'
        'shift\nexec sh -c "$*"\n'
    )
    agent.chmod(0o755)
    hosts = [Host("localhost", 1), Host("ghost-1", 1)]
    plan = _plan(2, "exit", "0", "0", group="gjoin", hosts=hosts, agent=make_agent(str(agent)))
    start = time.monotonic()
    with pytest.raises(LaunchError) as e:
        run_group(plan, environ=os.environ, join_timeout=2)
    assert time.monotonic() - start < 10
    assert "host ghost-1 never joined" in str(e.value) and "no route to ghost-1" in str(e.value)


def test_missing_mpirun_is_a_launch_error(tmp_path: Path) -> None:
    plan = plan_mpi(
        [["true"]], hosts=local_hosts(1), environ={}, group_id="gmissing", mpirun=str(tmp_path / "nope")
    )
    with pytest.raises(LaunchError, match="cannot start"):
        run_group(plan, environ=os.environ)
