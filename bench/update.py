"""What an engine update costs: ``repo update`` (hot swap) side by side with a restart on the new engine.

    .venv/bin/python -m bench.update [--clients 3]

Builds smollm2-135m (cpu backend) and a second engine key (``build.max_seq_len=1792``) in a
temporary cache, starts ``triton-llm serve`` on the first, and keeps ``--clients`` clients
streaming through the ensemble. Then:

- hot swap: ``triton-llm repo update --key B`` (its phase times), failed requests, and the
  resident memory of the server with its python-backend stubs (before, peak, after);
- peer: the usual way without updates, stop the server and ``serve`` the new key: the time
  until it is ready again and the requests that failed meanwhile.

Writes the "engine update" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._results import write_section

MiB = 1 << 20
PROMPT = b"Tell me a story about a lighthouse."


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_LLM_")}
    env.update(TRITON_LLM_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triton_llm.cli", *args], env=env, capture_output=True, text=True, check=False
    )


def _build(env: dict[str, str], *overrides: str) -> str:
    sets = [x for o in overrides for x in ("--set", o)]
    done = _cli(env, "engine", "build", "smollm2-135m", "--backend", "cpu", *sets)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return re.findall(r"engine: ([0-9a-f]{64})", done.stdout)[-1]


class Server:
    """``triton-llm serve KEY`` in the background."""

    def __init__(self, env: dict[str, str], key: str, log: Path) -> None:
        import socket

        def port() -> int:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return int(s.getsockname()[1])

        self.grpc = port()
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "triton_llm.cli", "serve", key, "--openai-port", "0"),
                    *(
                        "--http-port",
                        str(port()),
                        "--grpc-port",
                        str(self.grpc),
                        "--metrics-port",
                        str(port()),
                    ),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, seen: int) -> None:
        while self.log.read_bytes().count(b"ready: gRPC") <= seen:
            if self.proc.poll() is not None:
                raise SystemExit(self.log.read_text()[-3000:])
            time.sleep(0.2)

    def rss(self) -> int:
        import psutil

        total = 0
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += p.memory_info().rss
        return total

    def stop(self) -> None:
        """SIGTERM (serve stops Triton); the whole process tree is killed if it is not gone in 60 s."""
        import psutil

        tree = [psutil.Process(self.proc.pid)]
        with contextlib.suppress(psutil.NoSuchProcess):
            tree += tree[0].children(recursive=True)
        self.proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=60)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self.proc.wait(timeout=30)


def _stream(url: str) -> tuple[bool, set[str]]:
    import numpy as np
    import tritonclient.grpc as grpcclient

    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    keys: set[str] = set()
    try:
        client = grpcclient.InferenceServerClient(url)
        client.start_stream(callback=lambda result, error: results.put((result, error)))
    except Exception:  # the server is down (the restart peer): a failed request
        return False, keys
    inputs = []
    for name, value, dtype in (
        ("text_input", np.array([[PROMPT]], dtype=object), "BYTES"),
        ("max_tokens", np.array([[24]], dtype=np.int32), "INT32"),
        ("stream", np.array([[True]]), "BOOL"),
    ):
        t = grpcclient.InferInput(name, list(value.shape), dtype)
        t.set_data_from_numpy(value)
        inputs.append(t)
    ok = True
    try:
        client.async_stream_infer("ensemble", inputs, enable_empty_final_response=True)
        while True:
            result, error = results.get(timeout=120)
            if error is not None:
                ok = False
                break
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
            keys.add(result.as_numpy("engine_key").reshape(-1)[0].decode())
    except Exception:  # unavailable, reset stream, timeout: all count as failed
        ok = False
    finally:
        with contextlib.suppress(Exception):
            client.stop_stream()
            client.close()
    return ok, keys


class Load:
    def __init__(self, server: Server, clients: int) -> None:
        self.server = server
        self.ok = 0
        self.failed = 0
        self.mixed = 0
        self.rss: list[int] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        self.threads.append(threading.Thread(target=self._sample, daemon=True))

    def _client(self) -> None:
        while not self.stop.is_set():
            ok, keys = _stream(f"127.0.0.1:{self.server.grpc}")
            if not ok:
                self.failed += 1
                time.sleep(0.2)
            else:
                self.ok += 1
                self.mixed += len(keys) > 1

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.rss.append(self.server.rss())
            time.sleep(0.25)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        time.sleep(3)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=180)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.update")
    parser.add_argument("--clients", type=int, default=3, help="streaming clients during the update")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-update-") as tmp:
        cache = Path(tmp) / "cache"
        env = _env(cache)
        print("building two engine keys", flush=True)
        a = _build(env)
        b = _build(env, "build.max_seq_len=1792")
        log = Path(tmp) / "serve.log"
        server = Server(env, a, log)
        try:
            server.wait_ready(0)
            time.sleep(3)
            idle = server.rss()
            with Load(server, args.clients) as load:
                before = server.rss()
                start = time.monotonic()
                done = _cli(env, "repo", "update", "--key", b)
                swap_s = time.monotonic() - start
                time.sleep(3)
                after = server.rss()
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            phases = dict(re.findall(r"(\w+) ([0-9.]+)s", done.stdout.splitlines()[-1]))
            swap = {"ok": load.ok, "failed": load.failed, "mixed": load.mixed, "peak": max(load.rss)}
            # peer: stop and serve the new key
            with Load(server, args.clients) as load:
                start = time.monotonic()
                server.stop()
                server = Server(env, b, log)
                server.wait_ready(1)
                restart_s = time.monotonic() - start
                time.sleep(3)
            restart = {"ok": load.ok, "failed": load.failed}
        finally:
            with contextlib.suppress(Exception):
                server.stop()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    timing = ", ".join(f"{k} {v} s" for k, v in phases.items() if k != "total")
    peak = swap["peak"]
    body = "\n".join(
        [
            f"Command: `.venv/bin/python -m bench.update --clients {args.clients}` ({stamp}; smollm2-135m,",
            "cpu backend, engine A then B = `--set build.max_seq_len=1792`; "
            f"{args.clients} clients streaming 24 tokens back to back",
            f"through the ensemble during each; {os.cpu_count()} cores shared with other work, 1-minute load "
            f"average {os.getloadavg()[0]:.1f} at the end, so absolute times are noisy). RSS = tritonserver "
            "+ its python-backend stubs.",
            "",
            "| | hot swap (`repo update`) | peer: stop + `serve` the new key |",
            "| --- | --- | --- |",
            f"| wall time | {swap_s:.1f} s ({timing}) | {restart_s:.1f} s until ready |",
            f"| requests completed / failed | {swap['ok']} / {swap['failed']} (streams with two keys: "
            f"{swap['mixed']}) | {restart['ok']} / {restart['failed']} |",
            f"| server RSS | idle {idle / MiB:.0f} MiB, under load {before / MiB:.0f} MiB, peak "
            f"{peak / MiB:.0f} MiB (+{(peak - before) / MiB:.0f} MiB: both engines resident), after "
            f"{after / MiB:.0f} MiB | one engine at a time |",
            "",
            f"Ratio: the hot swap takes {swap_s / restart_s:.1f}x the restart's wall time and fails "
            f"{swap['failed']} requests against {restart['failed']}; it needs the second engine's memory "
            "while both versions are loaded.",
        ]
    )
    print(body)
    write_section("engine update", body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
