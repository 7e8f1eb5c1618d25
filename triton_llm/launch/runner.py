"""Run a launch plan: check hosts joined, run mpirun, forward signals, clean up, return the exit code.

The exit code is mpirun's (``128 + N`` if it died of signal N), so a container whose entrypoint
is ``triton-llm launch`` fails when the group fails and Kubernetes restarts the group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from triton_llm.errors import LaunchError
from triton_llm.launch.agents import Agent
from triton_llm.launch.cleanup import CleanupReport, cleanup_local
from triton_llm.launch.plan import LaunchPlan


def wait_for_hosts(
    hosts: Sequence[str],
    agent: Agent,
    *,
    timeout: float,
    probe: Sequence[str] = ("true",),
    probe_timeout: float = 10.0,
    interval: float = 1.0,
) -> None:
    """Run ``probe`` (default ``true``) on every host through the agent until all answer.

    Raises:
        LaunchError: a host did not answer within ``timeout`` seconds; names the host and the last error.
    """
    deadline = time.monotonic() + timeout
    pending = list(hosts)
    last: dict[str, str] = {}
    while True:
        for host in list(pending):
            remaining = max(0.5, min(probe_timeout, deadline - time.monotonic()))
            try:
                proc = subprocess.run(
                    [*agent.argv(), host, *probe],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=remaining,
                    check=False,
                )
                if proc.returncode == 0:
                    pending.remove(host)
                else:
                    last[host] = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            except subprocess.TimeoutExpired:
                last[host] = f"no answer within {remaining:.0f}s"
            except OSError as e:
                last[host] = str(e)
        if not pending:
            return
        if time.monotonic() >= deadline:
            host = pending[0]
            raise LaunchError(
                f"host {host} never joined: not reachable through the {agent.kind} agent within {timeout:g}s"
                f" ({last.get(host, 'no answer')})"
                + (f"; also missing: {', '.join(pending[1:])}" if len(pending) > 1 else ""),
                value=host,
                hint="check that the worker runs its agent (sshd / agent wait), or raise --join-timeout",
            )
        time.sleep(interval)


def cleanup_group(plan: LaunchPlan, *, grace: float = 2.0, remote_timeout: float = 15.0) -> CleanupReport:
    """End the group's leftovers here and, through the agent, on every remote host."""
    report = cleanup_local(plan.group_id, shm_prefix=plan.shm_prefix, grace=grace)
    if plan.agent is not None:
        for host in plan.remote_hosts:
            command = [sys.executable, "-m", "triton_llm.launch.cleanup", plan.group_id, plan.shm_prefix]
            try:
                subprocess.run(
                    [*plan.agent.argv(), host, *command],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=remote_timeout,
                    check=False,
                )
            except (subprocess.TimeoutExpired, OSError) as e:
                print(f"triton-llm launch: cleanup on {host} failed: {e}", file=sys.stderr)
    return report


def run_group(
    plan: LaunchPlan,
    *,
    environ: Mapping[str, str],
    join_timeout: float = 300.0,
    kill_grace: float = 15.0,
    stdout: IO[Any] | None = None,
    stderr: IO[Any] | None = None,
) -> int:
    """Run the group in the foreground and return its exit code.

    SIGTERM and SIGINT sent to this process are forwarded to mpirun (which forwards them to every
    rank); if mpirun is still alive ``kill_grace`` seconds later its session is killed. After any
    exit, leftovers (ranks, python-backend stubs, ``/dev/shm/<prefix>*``) are removed.

    Args:
        plan: from :func:`~triton_llm.launch.plan.plan_triton_group` or `plan_mpi`.
        environ: the environment mpirun starts from (``Settings.environ``); the plan's ``env`` goes on top.
        join_timeout: seconds for every remote host to answer through the agent.
        kill_grace: seconds between a forwarded signal and SIGKILL.
        stdout: where mpirun's output goes (default: inherited).
        stderr: where mpirun's errors go (default: inherited).

    Returns:
        mpirun's exit code, or 128 + N if it died of signal N.

    Raises:
        LaunchError: a remote host never joined, or mpirun could not start.
    """
    probe = ["mkdir", "-p", plan.mpi_shm_dir] if plan.mpi_shm_dir else ["true"]
    if plan.remote_hosts and plan.agent is not None:
        wait_for_hosts(plan.remote_hosts, plan.agent, timeout=join_timeout, probe=probe)
    if plan.mpi_shm_dir:
        os.makedirs(plan.mpi_shm_dir, exist_ok=True)
    env = {**environ, **plan.env}
    try:
        proc = subprocess.Popen(plan.argv, env=env, start_new_session=True, stdout=stdout, stderr=stderr)
    except OSError as e:
        raise LaunchError(f"cannot start {plan.argv[0]}: {e}", hint="install Open MPI (make apt)") from e

    def _kill_later() -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    timers: list[threading.Timer] = []

    def _forward(signum: int, frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)
            timer = threading.Timer(kill_grace, _kill_later)
            timer.daemon = True
            timer.start()
            timers.append(timer)

    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _forward) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled above in the main thread
                _forward(signal.SIGINT, None)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for timer in timers:
            timer.cancel()
        if proc.poll() is None:
            _kill_later()
            proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything mpirun left in its session
        cleanup_group(plan)
    return code if code >= 0 else 128 - code
