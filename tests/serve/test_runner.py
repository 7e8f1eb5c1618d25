"""The Triton runner on a real tritonserver: readiness, signals, and no leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from triton_llm.errors import ServeError
from triton_llm.launch.tritonserver import TritonServer, free_port, shm_leftovers

ECHO_CONFIG = """
name: "echo"
backend: "python"
max_batch_size: 4
input [ { name: "IN", data_type: TYPE_INT32, dims: [ 1 ] } ]
output [ { name: "OUT", data_type: TYPE_INT32, dims: [ 1 ] } ]
instance_group [ { count: 1, kind: KIND_CPU } ]
"""
ECHO_MODEL = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        {init}

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x)]))
        return out
"""


def make_repo(root: Path, *, init: str = "pass") -> Path:
    model = root / "repo" / "echo"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(ECHO_CONFIG)
    (model / "1" / "model.py").write_text(ECHO_MODEL.replace("{init}", init))
    return root / "repo"


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (server and python stubs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def test_start_ready_stop_leaves_no_processes_or_shm(tmp_path):
    server = TritonServer(make_repo(tmp_path), environ=os.environ, log_path=tmp_path / "server.log")
    with server:
        server.wait_ready(timeout=120)
        assert len(processes_with(server.shm_prefix)) >= 2  # tritonserver + the echo stub
        assert shm_leftovers(server.shm_prefix)
        assert server.http_url.startswith("127.0.0.1:")
    assert server.proc is not None and server.proc.returncode == 0
    assert processes_with(server.shm_prefix) == []
    assert shm_leftovers(server.shm_prefix) == []


def test_a_model_that_fails_to_load_is_an_error_with_the_log(tmp_path):
    repo = make_repo(tmp_path, init='raise RuntimeError("weights are corrupt: boom")')
    server = TritonServer(repo, environ=os.environ, log_path=tmp_path / "server.log")
    server.start()
    with pytest.raises(ServeError, match=r"(?s)before it was ready.*weights are corrupt: boom"):
        server.wait_ready(timeout=120)
    assert processes_with(server.shm_prefix) == []
    assert shm_leftovers(server.shm_prefix) == []


RUNNER = """
import os
import sys
from pathlib import Path
from triton_llm.launch.tritonserver import TritonServer, run_foreground

server = TritonServer(Path(sys.argv[1]), environ=os.environ, log_path=Path(sys.argv[2]))
ready = lambda s: print("READY", s.shm_prefix, flush=True)
sys.exit(run_foreground(server, ready_timeout=120, on_ready=ready))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_foreground_runner_forwards_signals_and_cleans_up(tmp_path, sig):
    repo = make_repo(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(RUNNER), str(repo), str(tmp_path / "server.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    with proc:
        line = proc.stdout.readline()
        assert line.startswith("READY"), (tmp_path / "server.log").read_text()
        prefix = line.split()[1]
        assert processes_with(prefix)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
    assert processes_with(prefix) == []
    assert shm_leftovers(prefix) == []


def test_serve_cli_end_to_end(cpu_engine, cpu_engine_cache, tmp_path):
    """`triton-llm serve` restores the session's engine, serves it, answers, and stops on SIGINT."""
    from triton_llm.client import GenerateParams, LLMClient

    ports = [free_port() for _ in range(4)]
    env = {**os.environ, "TRITON_LLM_CACHE_DIR": str(cpu_engine_cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "triton_llm.cli",
            "serve",
            "smollm2-135m",
            "--backend",
            "cpu",
            "--http-port",
            str(ports[0]),
            "--grpc-port",
            str(ports[1]),
            "--metrics-port",
            str(ports[2]),
            "--repo-dir",
            str(tmp_path / "repo"),
            "--openai-port",
            str(ports[3]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            lines.append(line)
            if line.startswith("ready:"):
                break
        assert lines and lines[-1].startswith("ready:"), "".join(lines[-40:])
        with LLMClient(f"127.0.0.1:{ports[1]}") as client:
            done = client.generate("What is the capital of France?", GenerateParams(max_tokens=12))
        assert "Paris" in done.text and 0 < done.tokens <= 12
        import openai

        with openai.OpenAI(base_url=f"http://127.0.0.1:{ports[3]}/v1", api_key="-", max_retries=0) as oai:
            assert [m.id for m in oai.models.list().data] == ["smollm2-135m"]  # the recipe's name
            chat = oai.chat.completions.create(
                model="smollm2-135m", messages=[{"role": "user", "content": "What is the capital of France?"}]
            )
        assert "Paris" in chat.choices[0].message.content
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0, proc.stdout.read()[-3000:]
    finally:
        if proc.poll() is None:  # a failed assertion: let the CLI stop its server before giving up
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    assert processes_with(str(tmp_path / "repo")) == []
    assert processes_with(f"--port {ports[3]}") == []  # the OpenAI frontend stopped with serve
