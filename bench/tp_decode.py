"""Tensor-parallel decode: per-token time at tp=1 and tp=3 on one host, and tp=3 across network namespaces.

Every configuration runs the CPU runtime under ``mpirun`` through the project launcher
(:func:`triton_llm.launch.plan.plan_mpi` + :func:`triton_llm.launch.runner.run_group`), greedy-decodes
one request, and times each decode step on rank 0 together with the time rank 0 spends inside
``allreduce_`` during that step (the allreduce share = allreduce time / step time).

Run from the repository root as root (namespaces need CAP_NET_ADMIN)::

    python -m bench.tp_decode [--tokens 64] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SECTION = "tensor parallel decode"
RECIPE = "smollm2-135m"
PROMPT_IDS = list(range(100, 132))  # 32 fixed prompt tokens


# --- worker (runs in every rank under mpirun) --------------------------------------------------


class _TimedComm:
    """Wraps a TensorParallelComm and accumulates the seconds spent inside each collective."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.allreduce_s = 0.0
        self.other_s = 0.0

    @property
    def rank(self) -> int:
        return self.inner.rank

    @property
    def size(self) -> int:
        return self.inner.size

    def allreduce_(self, tensor: Any) -> None:
        t = time.perf_counter()
        self.inner.allreduce_(tensor)
        self.allreduce_s += time.perf_counter() - t

    def allgather(self, tensor: Any) -> Any:
        t = time.perf_counter()
        out = self.inner.allgather(tensor)
        self.other_s += time.perf_counter() - t
        return out

    def broadcast(self, obj: Any) -> Any:
        t = time.perf_counter()
        out = self.inner.broadcast(obj)
        self.other_s += time.perf_counter() - t
        return out


def worker(checkpoint: Path, *, tokens: int, threads: int, out: Path) -> None:
    """One rank: load the checkpoint, decode ``tokens`` tokens (rank 0 drives), write rank 0's timings."""
    from triton_llm.runtime import GenerationRequest, Generator, LocalComm, MpiComm, run_worker

    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    comm = _TimedComm(MpiComm() if size > 1 else LocalComm())
    gen = Generator(
        checkpoint, max_batch_size=1, max_input_len=256, max_seq_len=512, threads=threads, comm=comm
    )
    if comm.rank > 0:
        run_worker(gen)
        return
    gen.add(GenerationRequest("bench", PROMPT_IDS, tokens))
    steps: list[tuple[float, float]] = []
    first = True
    while gen.has_work():
        a0, t0 = comm.allreduce_s, time.perf_counter()
        events = gen.step()
        dt = time.perf_counter() - t0
        if not first and events:  # the first step is the prefill
            steps.append((dt, comm.allreduce_s - a0))
        first = False
    gen.close()
    out.write_text(json.dumps({"world_size": comm.size, "threads": threads, "steps": steps}))


# --- orchestration -----------------------------------------------------------------------------


def _triton_llm(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "triton_llm.cli", *args], capture_output=True, text=True, cwd=REPO, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"triton-llm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def checkpoint_for(tp: int, dest: Path) -> Path:
    """Build (or reuse) the cpu checkpoint of the default recipe at ``tp`` and restore it into ``dest``."""
    out = _triton_llm("engine", "build", RECIPE, "--set", f"parallelism.tp={tp}")
    match = re.search(r"^checkpoint: ([0-9a-f]{64})", out, re.M)
    if match is None:
        raise SystemExit(f"no checkpoint key in the build output:\n{out}")
    _triton_llm("engine", "pull", match.group(1), "--dest", str(dest))
    return dest


@contextmanager
def namespaces(n: int) -> Iterator[tuple[list[str], Path, Path]]:
    """n host namespaces on a private bridge (10.77.1.0/24); yields (hosts, agent, mpirun wrapper)."""
    prefix = f"tlbench{os.getpid() % 10000}"
    switch, created = f"{prefix}sw", []
    tmp = Path(tempfile.mkdtemp(prefix="tp-decode-"))

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        ip("netns", "add", switch)
        created.append(switch)
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "br0", "up")
        hosts, cases = [], []
        for i in range(n):
            ns, host = f"{prefix}h{i}", f"10.77.1.{i + 1}"
            ip("netns", "add", ns)
            created.append(ns)
            ip("link", "add", "tl0", "netns", ns, "type", "veth", "peer", "name", f"p{i}", "netns", switch)
            ip("-n", ns, "addr", "add", f"{host}/24", "dev", "tl0")
            for dev in ("tl0", "lo"):
                ip("-n", ns, "link", "set", dev, "up")
            ip("-n", switch, "link", "set", f"p{i}", "master", "br0")
            ip("-n", switch, "link", "set", f"p{i}", "up")
            hosts.append(host)
            cases.append(f"  {host}) ns={ns};;")
        agent = tmp / "agent"
        agent.write_text(
            '#!/bin/sh\nhost="$1"; shift\ncase "$host" in\n' + "\n".join(cases) + "\n  *) exit 255;;\nesac\n"
            'exec ip netns exec "$ns" sh -c "$*"\n'
        )
        mpirun = tmp / "mpirun"
        mpirun.write_text(f'#!/bin/sh\nexec ip netns exec {prefix}h0 mpirun "$@"\n')
        for f in (agent, mpirun):
            f.chmod(0o755)
        yield hosts, agent, mpirun
    finally:
        for ns in reversed(created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def run_config(
    name: str, checkpoint: Path, *, tp: int, tokens: int, threads: int, work: Path, netns: bool = False
) -> dict[str, Any]:
    """Run one configuration through the launcher and summarize rank 0's step timings."""
    from triton_llm.launch.agents import make_agent
    from triton_llm.launch.hosts import Host, local_hosts
    from triton_llm.launch.plan import group_id_for, plan_mpi
    from triton_llm.launch.runner import run_group
    from triton_llm.launch.transport import TransportSettings

    out = work / f"{name}.json"
    argv = [sys.executable, "-m", "bench.tp_decode", "--worker", str(checkpoint), "--tokens", str(tokens)]
    argv += ["--threads", str(threads), "--out", str(out)]
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    gid = group_id_for("bench", name, os.getpid())
    with namespaces(tp) if netns else _nothing() as cluster:
        kwargs: dict[str, Any] = {"hosts": local_hosts(tp)}
        if cluster is not None:
            hosts, agent, mpirun = cluster
            kwargs = {
                "hosts": [Host(h, 1) for h in hosts],
                "agent": make_agent(str(agent)),
                "transport": TransportSettings(btl_tcp_if_include=("tl0",), oob_tcp_if_include=("tl0",)),
                "mpirun": str(mpirun),
                "yield_when_idle": tp > (os.cpu_count() or 1),  # the "hosts" share this machine's cores
            }
        plan = plan_mpi(
            [argv] * tp,
            environ=environ,
            group_id=gid,
            is_root=os.geteuid() == 0,
            local_cpus=os.cpu_count(),
            **kwargs,
        )
        code = run_group(plan, environ=os.environ, join_timeout=30)
    if code != 0 or not out.is_file():
        raise SystemExit(f"{name}: the group exited with {code}")
    steps = json.loads(out.read_text())["steps"]
    step_ms = [s * 1000 for s, _ in steps]
    share = [a / s for s, a in steps if s > 0]
    return {
        "name": name,
        "tp": tp,
        "threads": threads,
        "median_ms": statistics.median(step_ms),
        "p90_ms": sorted(step_ms)[int(0.9 * (len(step_ms) - 1))],
        "allreduce_share": statistics.median(share),
        "tokens": len(steps),
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def render(rows: list[dict[str, Any]], *, command: str, load: float) -> str:
    """The RESULTS.md section body."""
    base = rows[0]["median_ms"]
    lines = [
        f"Command: `{command}` (CPU runtime, {RECIPE}, greedy, 32-token prompt, batch 1; "
        f"{os.cpu_count()} cores on this machine, so tp=3 ranks share cores; 1-minute load average "
        f"{load:.1f} when the run started, so absolute times are noisy).",
        "",
        "| configuration | tp | torch threads/rank | decode step median (ms) | p90 (ms) | vs tp=1 "
        "| allreduce share of step |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['tp']} | {r['threads']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} "
            f"| {r['median_ms'] / base:.2f}x | {r['allreduce_share'] * 100:.0f}% |"
        )
    lines += [
        "",
        "Allreduce share = time rank 0 spends inside `allreduce_` during a decode step / the step time "
        "(median over steps; it includes waiting for the slowest rank). Each configuration is one "
        "`mpirun` group started by `triton_llm.launch`; the namespace run crosses veth + bridge over TCP. "
        "With 3 ranks on 2 cores the launcher sets `mpi_yield_when_idle` (without it a tp=3 step took "
        "~2.5 s: ranks spinning in MPI starved the computing ones).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tp_decode", description=__doc__)
    p.add_argument(
        "--tokens", type=int, default=64, help="decode steps per configuration (default: %(default)s)"
    )
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing RESULTS.md")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, tokens=args.tokens, threads=args.threads, out=args.out)
        return 0
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tp-decode-") as tmp:
        work = Path(tmp)
        ckpt1 = checkpoint_for(1, work / "ckpt-tp1")
        ckpt3 = checkpoint_for(3, work / "ckpt-tp3")
        rows = [
            run_config("tp=1, one host", ckpt1, tp=1, tokens=args.tokens, threads=cores, work=work),
            run_config("tp=1, one host, 1 thread", ckpt1, tp=1, tokens=args.tokens, threads=1, work=work),
            run_config("tp=3, one host", ckpt3, tp=3, tokens=args.tokens, threads=1, work=work),
            run_config(
                "tp=3, 3 namespaces", ckpt3, tp=3, tokens=args.tokens, threads=1, work=work, netns=True
            ),
        ]
    command = "python -m bench.tp_decode" + (f" --tokens {args.tokens}" if args.tokens != 64 else "")
    body = render(rows, command=command, load=load)
    if args.no_write:
        print(body)
    else:
        from bench._results import write_section

        write_section(SECTION, body)
        print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
