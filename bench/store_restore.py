"""Pull entries from ``rclone serve s3`` on loopback: ``triton-llm engine pull`` vs s5cmd, awscli, rclone.

Run: ``.venv/bin/python -m bench.store_restore`` (writes the "store restore" section of
bench/RESULTS.md). Two entries are published to a fresh rclone server under bench/data/:
the default checkpoint (``triton-llm engine build smollm2-135m``, cpu backend, against that
store) and a 1 GiB entry of 4 random 256 MiB rank files. Every tool then copies the entry's data
into an empty directory as a fresh process (start-up included), in rounds that rotate the tool
order; ``sync`` runs before each copy so no tool pays for another's page-cache writeback. Ours is
the real CLI with default settings and verifies the sha256 of every byte; the peers verify
nothing. Client CPU is user+sys of the tool's process (``RUSAGE_CHILDREN``); server CPU is the
rclone process's, from /proc. The server and data are removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench._results import write_section

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "store_restore"
BIN = Path(sys.executable).parent
MiB = 1 << 20
ACCESS, SECRET = "bench-access", "bench-secret"
BUCKET, PREFIX = "bench", "store"
RANDOM_KEY = "be0c4" * 12 + "abcd"
COMMAND = ".venv/bin/python -m bench.store_restore"
TOOLS = ("ours", "s5cmd", "awscli", "rclone", "unverified")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_rclone(root: Path, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    root.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "rclone"), "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key",
             f"{ACCESS},{SECRET}", "--config", os.devnull, "--dir-cache-time", "1h", str(root)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"rclone serve s3 exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            return endpoint, proc
        except urllib.error.HTTPError:
            return endpoint, proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("rclone serve s3 did not start")


def _env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "TRITON_LLM_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        RCLONE_CONFIG=os.devnull, RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=endpoint, RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ACCESS,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET,
        TRITON_LLM_STORE=f"s3://{BUCKET}/{PREFIX}", TRITON_LLM_CONFIG=os.devnull,
        XDG_CACHE_HOME=str(DATA / "cache"), HF_HUB_OFFLINE="1",
    )  # fmt: skip
    return env


def _server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    wall: float
    cpu: float
    server_cpu: float


@dataclass
class Entry:
    name: str
    stage: str
    key: str
    data_prefix: str
    size: int
    runs: dict[str, list[Run]] = field(default_factory=lambda: {t: [] for t in TOOLS})
    noop: list[float] = field(default_factory=list)


def _timed(argv: list[str], env: dict[str, str], server_pid: int) -> tuple[Run, str]:
    before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), _server_cpu(server_pid)
    t = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    after, server_after = resource.getrusage(resource.RUSAGE_CHILDREN), _server_cpu(server_pid)
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Run(elapsed, cpu, server_after - server_before), out.stdout


def _tree(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".triton-llm-entry")
    }


def _same_tree(a: Path, b: Path) -> bool:
    ta, tb = _tree(a), _tree(b)
    return ta.keys() == tb.keys() and all(_file_eq(ta[k], tb[k]) for k in ta)


def _file_eq(x: Path, y: Path) -> bool:
    if x.stat().st_size != y.stat().st_size:
        return False
    with open(x, "rb") as f, open(y, "rb") as g:
        while True:
            bx, by = f.read(16 * MiB), g.read(16 * MiB)
            if bx != by:
                return False
            if not bx:
                return True


def _warm(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(16 * MiB):
                    pass


def _make_random(src: Path, *, rank_size: int, ranks: int) -> None:
    src.mkdir(parents=True, exist_ok=True)
    (src / "config.json").write_text(f'{{"architecture": "LlamaForCausalLM", "tp_size": {ranks}}}\n')
    for r in range(ranks):
        with open(src / f"rank{r}.engine", "wb") as f:
            for _ in range(rank_size // (16 * MiB)):
                f.write(os.urandom(16 * MiB))
            f.write(os.urandom(rank_size % (16 * MiB)))


def _build_checkpoint(env: dict[str, str]) -> str:
    """Build the default recipe against the bench store; returns the checkpoint key."""
    out = subprocess.run(
        [str(BIN / "triton-llm"), "engine", "build", "smollm2-135m", "--backend", "cpu"],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"engine build failed: {out.stderr[-2000:]}")
    match = re.search(r"^checkpoint: ([0-9a-f]{64})", out.stdout, re.M)
    if not match:
        raise RuntimeError(f"no checkpoint key in the build output:\n{out.stdout}")
    return match.group(1)


def _publish_entries(env: dict[str, str], names: list[str], rank_mib: int) -> list[Entry]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        import boto3

        from triton_llm.settings import load_settings
        from triton_llm.store import open_store, publish, read_manifest

        boto3.session.Session().client("s3").create_bucket(Bucket=BUCKET)
        settings = load_settings()
        store = open_store(settings.store_uri(), settings=settings)
        entries = []
        for name in names:
            if name == "checkpoint":
                stage, key, label = "checkpoint", _build_checkpoint(env), "default checkpoint (smollm2-135m)"
            else:
                src = DATA / "src"
                _make_random(src, rank_size=rank_mib * MiB, ranks=4)
                stage, key, label = "engine", RANDOM_KEY, f"4 x {rank_mib} MiB random ranks"
                publish(store, src, stage=stage, key=key, fingerprint_inputs={}, versions={},
                        transfer=settings.transfer)  # fmt: skip
                shutil.rmtree(src)
            m = read_manifest(store, stage=stage, key=key)
            assert m is not None
            entries.append(
                Entry(label, stage, key, f"{PREFIX}/{stage}/{key}/data/{m.upload_id}", m.total_size)
            )
        # rclone serve s3 computes each object's MD5 ETag on first access; one listing primes
        # that cache so no tool pays it inside its timing.
        boto3.session.Session().client("s3").list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)
        return entries
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _commands(entry: Entry, endpoint: str, dest: Path) -> dict[str, list[str]]:
    src = f"s3://{BUCKET}/{entry.data_prefix}"
    return {
        "ours": [str(BIN / "triton-llm"), "engine", "pull", entry.key, "--dest", str(dest)],
        "s5cmd": [str(BIN / "s5cmd"), "--endpoint-url", endpoint, "cp", f"{src}/*", f"{dest}/"],
        "awscli": [str(BIN / "aws"), "s3", "cp", "--recursive", "--only-show-errors", f"{src}/", str(dest)],
        "rclone": [str(BIN / "rclone"), "copy", f"bench:{BUCKET}/{entry.data_prefix}", str(dest)],
        "unverified": [sys.executable, "-m", "bench._pull_unverified", "engine", "pull", entry.key,
                       "--dest", str(dest)],
    }  # fmt: skip


def _measure(entry: Entry, endpoint: str, env: dict[str, str], server_pid: int, reps: int) -> None:
    out = DATA / "out"
    for rep in range(reps):
        order = TOOLS[rep % len(TOOLS) :] + TOOLS[: rep % len(TOOLS)]
        for tool in order:
            dest = out / tool
            shutil.rmtree(dest, ignore_errors=True)
            os.sync()
            run, _ = _timed(_commands(entry, endpoint, dest)[tool], env, server_pid)
            entry.runs[tool].append(run)
            if rep == 0 and not _same_tree(DATA / "server" / BUCKET / entry.data_prefix, dest):
                raise RuntimeError(f"{tool} restored different bytes for {entry.name}")
            print(f"{entry.name[:24]:24s} {tool:6s} round {rep + 1}: {run.wall:.2f} s "
                  f"{entry.size / run.wall / 1e6:.0f} MB/s cpu {run.cpu:.2f} s", flush=True)  # fmt: skip
    for _ in range(max(5, reps)):
        run, stdout = _timed(_commands(entry, endpoint, out / "ours")["ours"], env, server_pid)
        if "already verified" not in stdout:
            raise RuntimeError(f"the no-op pull did not skip: {stdout}")
        entry.noop.append(run.wall)


def _startup(reps: int = 15) -> tuple[float, float]:
    """Median whole-process wall seconds of ``triton-llm --version`` and of a bare ``python -c pass``."""

    def median(argv: list[str]) -> float:
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    return median([str(BIN / "triton-llm"), "--version"]), median([sys.executable, "-c", "pass"])


def _sha256_cpu_per_gb() -> float:
    """CPU seconds hashlib's sha256 needs per GB on this machine (one thread, 1 MiB updates)."""
    data = memoryview(os.urandom(1 << 20))
    h = hashlib.sha256()
    start = time.process_time()
    for _ in range(512):
        h.update(data)
    return (time.process_time() - start) / (512 * (1 << 20) / 1e9)


def _report(entries: list[Entry], reps: int, load: tuple[float, float], startup: tuple[float, float]) -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())  # fmt: skip
    from triton_llm.settings import TransferSettings

    tr = TransferSettings()
    lines = [
        f"Command: `{COMMAND}` ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{os.cpu_count()} CPUs, {cpu}; shared with other jobs: 1-min load average {load[0]:.1f} at "
        f"start, {load[1]:.1f} at end, so absolute numbers are noisy: compare the per-round ratios).",
        "",
        "Each tool copies a stored entry from `rclone serve s3` on 127.0.0.1 (page cache warm) into an "
        f"empty directory, as a fresh process; {reps} rounds, tool order rotated each round, `sync` before "
        "each copy. **ours** = `triton-llm engine pull KEY --dest DIR` with default settings "
        f"(concurrency {tr.max_concurrency}, buffer {tr.io_buffer_size // 1024} KiB, parts as published: "
        f"{tr.part_size // MiB} MiB): it reads the manifest and checks the sha256 of every byte while "
        "streaming. s5cmd = `s5cmd cp 's3://.../*' DIR/` with defaults; awscli = `aws s3 cp --recursive`; "
        "rclone = `rclone copy`; they verify nothing. **unverified** = ours with the sha256 skipped "
        "(`bench/_pull_unverified.py`, bench only, not a mode of the product): what verification costs "
        "here. MB = 10^6 bytes; CPU is user+sys, start-up included; server CPU is rclone's for that copy.",
        "",
        f"Verification is not free: sha256 (hashlib/OpenSSL) costs {_sha256_cpu_per_gb():.2f} CPU s per GB "
        "on this CPU, which the peers do not spend; the client and the server share the same 2 cores.",
    ]
    for e in entries:
        ours = e.runs["ours"]
        lines += ["", f"### {e.name}: {e.size / 1e6:.0f} MB ({e.stage} {e.key[:12]})", "",
                  "| tool | median s | MB/s | client CPU s/GB | server CPU s | ours faster by (per round) |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for tool in TOOLS:
            runs = e.runs[tool]
            wall = statistics.median(r.wall for r in runs)
            cpu_gb = statistics.median(r.cpu for r in runs) / (e.size / 1e9)
            server = statistics.median(r.server_cpu for r in runs)
            ratios = "-" if tool == "ours" else ", ".join(
                f"{p.wall / o.wall:.2f}x" for o, p in zip(ours, runs, strict=True))  # fmt: skip
            rate = e.size / wall / 1e6
            lines.append(f"| {tool} | {wall:.2f} | {rate:.0f} | {cpu_gb:.2f} | {server:.2f} | {ratios} |")
        for peer, goal in (("s5cmd", 1.0), ("awscli", 1.5), ("rclone", 1.0)):
            per_round = [p.wall / o.wall for o, p in zip(ours, e.runs[peer], strict=True)]
            ratio, worst = statistics.median(per_round), min(per_round)
            lines.append(
                f"- ours / {peer}: median of per-round ratios **{ratio:.2f}x** (goal >= {goal}), "
                f"worst round {worst:.2f}x"
            )
        unverified = e.runs["unverified"]
        per_round = [p.wall / u.wall for u, p in zip(unverified, e.runs["s5cmd"], strict=True)]
        hash_wall = statistics.median(o.wall - u.wall for o, u in zip(ours, unverified, strict=True))
        hash_cpu = statistics.median(o.cpu - u.cpu for o, u in zip(ours, unverified, strict=True))
        lines.append(
            f"- unverified / s5cmd: median of per-round ratios **{statistics.median(per_round):.2f}x**; "
            f"verifying costs ours {hash_wall:.2f} s of wall and {hash_cpu:.2f} client CPU s (medians of "
            "per-round differences)"
        )
        noop, noop_max = statistics.median(e.noop), max(e.noop)
        lines.append(
            "- no-op pull (already verified: manifest read + stat check), whole process: "
            f"median **{noop:.2f} s**, max {noop_max:.2f} s (goal < 0.3 s)"
        )
    version, bare = startup
    lines += [
        "",
        f"CLI start-up: `triton-llm --version` {version:.3f} s whole process (median of 15), "
        f"bare `python -c pass` {bare:.3f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write its RESULTS.md section."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="rounds per entry (default: %(default)s)")
    ap.add_argument(
        "--entries", default="checkpoint,random", help="checkpoint and/or random (comma-separated)"
    )
    ap.add_argument("--rank-mib", type=int, default=256, help="size of each random rank file, MiB")
    ap.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep bench/data/store_restore afterwards")
    args = ap.parse_args(argv)

    shutil.rmtree(DATA, ignore_errors=True)
    load_start = os.getloadavg()[0]
    endpoint, proc = _start_rclone(DATA / "server", DATA / "rclone.log")
    try:
        env = _env(endpoint)
        entries = _publish_entries(env, args.entries.split(","), args.rank_mib)
        _warm(DATA / "server")
        for entry in entries:
            _measure(entry, endpoint, env, proc.pid, args.reps)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(DATA, ignore_errors=True)
    body = _report(entries, args.reps, (load_start, os.getloadavg()[0]), _startup())
    print(body)
    if not args.no_write:
        write_section("store restore", body)


if __name__ == "__main__":
    main()
