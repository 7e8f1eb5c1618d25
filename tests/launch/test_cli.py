"""``triton-llm launch`` and ``triton-llm agent``: dry-run output, bad input messages, agents."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.launch._group import http_ready
from triton_llm.cli import main
from triton_llm.launch.tritonserver import free_port

RECIPE = "smollm2-135m"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An existing (empty) model repository directory."""
    path = tmp_path / "repo"
    path.mkdir()
    return path


def _dry(capsys: pytest.CaptureFixture[str], repo: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    assert main(["launch", RECIPE, "--model-repo", str(repo), "--dry-run", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    env = dict(shlex.split(line)[1].split("=", 1) for line in lines[:-1])
    return shlex.split(lines[-1]), env


def test_local_dry_run(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    argv, env = _dry(capsys, repo, "--set", "parallelism.tp=3", "--bind-address", "127.0.0.1")
    assert argv[:3] == [shutil.which("mpirun"), "--host", "localhost:3"]  # absolute, as launch runs it
    assert argv.count("-n") == 3
    assert sum(a.startswith("--backend-config=python,shm-region-prefix-name=") for a in argv) == 3
    assert "--http-address=127.0.0.1" in argv
    assert "TRITONLLM_GROUP" in env and "PYTHONHOME" in env


def test_lws_dry_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:
    monkeypatch.setenv("LWS_LEADER_ADDRESS", "trt-0.trt.llm")
    monkeypatch.setenv("LWS_GROUP_SIZE", "3")
    monkeypatch.setenv("LWS_WORKER_INDEX", "0")
    argv, _ = _dry(capsys, repo, "--set", "parallelism.tp=3", "--lws", "--agent", "kubectl")
    assert argv[2] == "trt-0.trt.llm:1,trt-0-1.trt.llm:1,trt-0-2.trt.llm:1"
    agent = argv[argv.index("plm_rsh_agent") + 1]
    assert "agent kubectl-exec" in agent


def test_statefulset_dry_run(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    argv, _ = _dry(
        capsys,
        repo,
        *("--set", "parallelism.tp=3", "--statefulset", "trt", "--service", "hl", "--namespace", "llm"),
        *(
            "--ssh-port",
            "2222",
            "--transport",
            "allow_split_networks=true",
        ),
    )
    assert argv[2] == ",".join(f"trt-{i}.hl.llm.svc.cluster.local:1" for i in range(3))
    assert "-p 2222" in argv[argv.index("plm_rsh_args") + 1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "parallelism.tp=3", "--hostfile", "HOSTFILE"], "needs 3 slots but the hosts give 2"),
        (["--transport", "btl_tcp_if_include=nosuch7"], "'nosuch7'"),
        (["--transport", "nccl_ib_gid_index=3"], "transport.nccl_ib_hca"),
        (
            ["--set", "parallelism.tp=3", "--statefulset", "trt", "--transport", "btl_tcp_if_include=lo"],
            "loopback",
        ),
        (["--set", "parallelism.tp=3", "--engine-dir", "ENGINE"], "tp*pp = 3 ranks but"),
        (["--agent", "kubectl", "--ssh-key", "/k"], "only apply to --agent ssh"),
        (["--lws"], "--lws needs LWS_LEADER_ADDRESS"),
        (["--set", "parallelism.tpp=2"], "parallelism.tpp"),
    ],
)
def test_bad_input_exits_2_naming_the_mismatch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], needle: str
) -> None:
    hostfile = tmp_path / "hosts"
    hostfile.write_text("a slots=1\nb slots=1\n")
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "rank0.engine").write_bytes(b"x")
    args = [str(hostfile) if a == "HOSTFILE" else str(engine) if a == "ENGINE" else a for a in args]
    repo = tmp_path / "repo"
    repo.mkdir()
    assert main(["launch", RECIPE, "--model-repo", str(repo), "--dry-run", *args]) == 2
    assert needle in capsys.readouterr().err


def test_help_has_examples_and_every_flag_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["launch", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--lws --agent kubectl" in out
    for flag in (
        "--hostfile",
        "--statefulset",
        "--agent",
        "--ssh-port",
        "--ssh-key",
        "--join-timeout",
        "--dry-run",
    ):
        assert flag in out


def test_kubectl_exec_agent_runs_kubectl(tmp_path: Path) -> None:
    fake = tmp_path / "kubectl"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n')
    fake.chmod(0o755)
    cmd = [sys.executable, "-m", "triton_llm.cli", "agent", "kubectl-exec", "--kubectl", str(fake)]
    proc = subprocess.run(
        [*cmd, "trt-0-1.trt.llm", "orted", "-mca", "x", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    args = [line.strip("[]") for line in proc.stdout.splitlines()]
    assert args == ["exec", "-i", "trt-0-1", "-n", "llm", "--", "sh", "-c", "orted -mca x 1"]


def test_agent_wait_exits_0_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "triton_llm.cli", "agent", "wait"], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    assert "ready" in proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 5
    proc.stderr.close()


def test_agent_ssh_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "ssh", "--port", "2022", "--dry-run"]) == 0
    assert capsys.readouterr().out.split() == ["/usr/sbin/sshd", "-D", "-e", "-p", "2022"]


# --- one validation path, and a repository rendered by launch itself -------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triton_llm.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_launch_rejects_a_recipe_exactly_as_engine_build_does(repo: Path) -> None:
    bad = [RECIPE, "--set", "parallelism.tp=2"]  # SmolLM2-135M has 9 attention heads
    build = _cli("engine", "build", *bad)
    assert build.returncode == 2 and "must divide the model's 9 attention heads" in build.stderr
    assert _cli("engine", "build", *bad, "--dry-run").stderr == build.stderr
    for extra in (["--dry-run"], ["--dry-run", "--model-repo", str(repo)], []):
        launch = _cli("launch", *bad, *extra)
        assert (launch.returncode, launch.stderr) == (2, build.stderr), extra


@pytest.mark.parametrize("extra", [["--dry-run"], []])
def test_a_model_repo_that_does_not_exist_is_an_error(tmp_path: Path, extra: list[str]) -> None:
    missing = tmp_path / "nope"
    launch = _cli("launch", RECIPE, "--model-repo", str(missing), *extra)
    assert launch.returncode == 2
    assert f"--model-repo {missing} does not exist" in launch.stderr


def test_dry_run_without_model_repo_builds_and_renders_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["launch", RECIPE, "--set", "parallelism.tp=3", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "triton-llm"
    argv = shlex.split(out.strip().splitlines()[-1])
    assert f"--model-repository={cache / 'repos' / '<fresh>' / 'model_repository'}" in argv
    assert f"rendered at launch into a fresh directory under {cache / 'repos'}" in err
    assert not (cache / "repos").exists() and not (cache / "store").exists()


def _processes_using(path: Path) -> list[int]:
    """Live processes whose command line mentions ``path``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_launch_without_model_repo_renders_the_repository_as_serve_does(
    mpi_env: str, cpu_engine: Any, cpu_engine_cache: Path, tmp_path: Path
) -> None:
    http, grpc, metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "TRITON_LLM_CACHE_DIR": str(cpu_engine_cache)}
    cmd = [sys.executable, "-m", "triton_llm.cli", "launch", RECIPE, "--bind-address", "127.0.0.1"]
    cmd += ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    log_path = tmp_path / "launch.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while not http_ready(http)():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        streamed = _cli("stream", "What is 2+2?", "--max-tokens", "8", "--url", f"127.0.0.1:{grpc}", env=env)
        assert streamed.returncode == 0 and streamed.stdout.strip(), streamed.stderr
        rendered = Path(log_path.read_text().split("model repository: ", 1)[1].split()[0])
        assert rendered.is_relative_to(cpu_engine_cache / "repos") and rendered.name == "model_repository"
        config = (rendered / "tensorrt_llm" / "config.pbtxt").read_text()
        assert 'backend: "python"' in config and str(cpu_engine.checkpoint_dir.resolve()) in config
        assert _processes_using(rendered), "the ranks serve the rendered repository"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _processes_using(rendered) == []
